"""Reply sentiment: what a reply says about interest and objections.

``SentimentAnalyzer().analyze(...)`` asks the configured OpenAI model for a structured answer (the reply, our
original message and the lead context, all PII-redacted first) and falls back to the rule classifier below when
no model is configured or the call fails in any way (``source="rules"``, the reason in ``extra``).

Conventions (the LLM prompt, the rules and tests/data/labelled_replies.jsonl all follow them):

* category, by priority: ``unsubscribe`` (asks to be removed or to stop contact) > ``out_of_office`` (auto-replies,
  even a friendly one) > ``objection`` (a reason not to go ahead) > ``interested`` > ``neutral``.
* objection type: the stated reason (competitor, authority, price, no_need) beats a deferral (timing), which beats a
  flat no (not_interested): "no budget this year, revisit in 2026" is price. Budget is price even when temporary.
  An unsubscribe carries the objection it states, else not_interested; other categories carry none.
* sentiment label: ``interested`` is positive; out-of-office and neutral replies are neutral; timing and authority
  objections are neutral ("not now" and "not me" leave the door open); price, competitor, no_need and
  not_interested objections and unsubscribes are negative, except that openness stated *after* the objection
  ("we use Outreach, but I'd be open to a comparison") makes it neutral. A polite opener *before* it ("we'd love
  to, but...") does not.
* interest level: high = yes, a call, a demo, times; medium = asks us to send information, or "maybe" ("maybe, send
  more info" is positive/medium: it asks for something, a bare question does not); low = questions without
  commitment, acknowledgements, timing and authority objections; none = rejections, unsubscribes, auto-replies.
  ``interest_signal`` is True for high and medium.
* score ranges: positive 0.5..1, neutral -0.2..0.5, negative -1..-0.2.
"""

import dataclasses
import json
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

import openai
import pydantic
from django.conf import settings

from agents.decisions.llm import openai_client
from outcomes.redaction import Redactor, restore

logger = logging.getLogger("rex.sentiment")


@dataclass(frozen=True)
class ReplyAnalysis:
    sentiment_score: float  # -1..1
    sentiment_label: str  # positive | neutral | negative
    interest_signal: bool
    interest_level: str  # high | medium | low | none
    objection_detected: bool
    objection_type: str  # none | price | timing | authority | competitor | not_interested | no_need
    reasoning: str
    # What kind of reply: interested | objection | neutral | unsubscribe | out_of_office
    category: str = "neutral"
    source: str = "rules"  # rules | llm
    extra: dict = field(default_factory=dict)

    def outcome_fields(self) -> dict:
        """The OutcomeLabel sentiment fields (``outcomes.tracker.SENTIMENT_FIELDS``)."""
        return {
            "sentiment_label": self.sentiment_label,
            "reply_sentiment_score": self.sentiment_score,
            "interest_signal": self.interest_signal,
            "interest_level": self.interest_level,
            "objection_detected": self.objection_detected,
            "objection_type": self.objection_type,
            "sentiment_reasoning": self.reasoning,
        }


# --- Reply text -----------------------------------------------------------------------------------

# Mail clients quote our message (unsubscribe footer included) under the reply; only the reply is classified.
QUOTE_START = re.compile(
    r"(?im)^[ \t]*(?:on\b[^\n]{0,200}(?:\n[^\n]{0,200})?\bwrote:[ \t]*$"
    r"|-{2,}[ \t]*original message[ \t]*-{2,}|_{8,}[ \t]*$|from:[^\n]+\n[ \t]*(?:sent|date|to):)"
)
DEVICE_FOOTER = re.compile(r"(?im)^[ \t]*sent from my [^\n]*$")
PUNCTUATION = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})


def reply_body(text: str) -> str:
    """The reply without the quoted thread under it and without "Sent from my iPhone"."""
    match = QUOTE_START.search(text)
    body = text[: match.start()] if match and match.start() > 0 else text
    lines = [line for line in body.splitlines() if not line.lstrip().startswith(">")]
    return DEVICE_FOOTER.sub("", "\n".join(lines)).strip()


def _normalise(text: str) -> str:
    return re.sub(r"[ \t\u00a0]+", " ", text.translate(PUNCTUATION).lower())


# --- Rule cues ------------------------------------------------------------------------------------

UNSUBSCRIBE, OUT_OF_OFFICE, MEETING, INTEREST = "unsubscribe", "out_of_office", "meeting", "interest"
PRICE, TIMING, AUTHORITY, COMPETITOR = "price", "timing", "authority", "competitor"
NOT_INTERESTED, NO_NEED = "not_interested", "no_need"
SPECIFIC_OBJECTIONS = (COMPETITOR, PRICE, AUTHORITY, NO_NEED)  # ties go to the earlier one
INTEREST_KINDS = (MEETING, INTEREST)
THRESHOLD = 1.0  # a kind counts once its cues add up to this; weaker cues (0.5) need company
# In a question these cues count half: "we use HubSpot, does it integrate?" asks, it does not object. Deferrals
# ("ping me in October?") and stop requests ("can you not email me?") are often phrased as questions and keep theirs.
ASKED_NOT_OBJECTED = (COMPETITOR, PRICE, NO_NEED)

DAY = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day)?|tomorrow|next week"
MONTH = (
    r"jan(?:uary)?|feb(?:ruary)?|march|april|may|june|july|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|"
    r"dec(?:ember)?"
)
ROLE = (
    r"(?:vp|vice president|director|head|manager|boss|cfo|ceo|cro|cto|coo|cmo|founder|owner|procurement|"
    r"purchasing|supervisor|partner|chief [a-z]+ officer|revops|sales ops|ops team|it|legal|finance)"
    r"(?: department| team)?"
)
COMPETITORS = (
    r"(?:outreach(?:\.io)?|salesloft|hubspot(?: sales hub)?|apollo(?:\.io)?|gong|clari|zoominfo|lemlist|clay|"
    r"instantly(?:\.ai)?|smartlead|reply\.io|mailshake|woodpecker|yesware|mixmax|groove|outplay|klenty|"
    r"seamless(?:\.ai)?|lusha|cognism|salesforce engage|sales engagement|high velocity sales|pipedrive|close\.com|"
    r"6sense|drift|marketo|pardot|highspot|vidyard|chorus|amplemarket|saleshandy|quickmail|regie|lavender|hunter\.io|leadiq)"
)
USING = (
    r"(?:use|uses|using|used|rolled out|roll out|went with|going with|gone with|chose|picked|switched to|moved to|"
    r"migrated to|partnered with|working with|pay for|paying for|standardi[sz]ed on|invested in|contract with|"
    r"(?:built|run|running) (?:[\w-]+ ){0,2}on|(?:signed|renewed) (?:[\w-]+ ){0,3}with|"
    r"(?:we're|we are|we've been|we have been|team is)(?: already| currently| now| all)? on)"
)
TOOL = r"(?:vendor|provider|tool|solution|platform|partner|agency|system|product|service|software|setup|stack)"


@dataclass(frozen=True)
class _Cue:
    kind: str
    weight: float
    negatable: bool  # a negation just before it switches it off (an interest cue becomes not_interested)
    pattern: re.Pattern


def _cues(kind: str, *patterns: str, weight: float = 1.0, negatable: bool = False) -> list[_Cue]:
    return [_Cue(kind, weight, negatable, re.compile(pattern)) for pattern in patterns]


CUES = [
    *_cues(
        UNSUBSCRIBE,
        r"\bunsubscribe\b",
        r"\b(?:remove|delete|scrub) (?:me|us|my (?:e-?mail|address|name|details|info\w*|number|contact\w*)|"
        r"this (?:e-?mail )?address)\b",
        r"\b(?:take|get|drop) (?:me|us|my (?:e-?mail|address|name)) (?:off|out of)\b",
        r"\b(?:remove|delete|scrub|erase)\b[^.?!]{0,40}\b(?:from|off) (?:your|the|this|all) (?:\w+ )?(?:list|lists|"
        r"system|database|crm|records?|sequence|mailing|emails?|cadence)\b",
        r"\bnot (?:e-?mail|contact|message|text) me\b|\b(?:asked|told) you (?:\w+ )?(?:to stop|not to)\b",
        r"\b(?:don't|do not) follow up\b(?! (?:until|till|before|for|in|after|next)\b)",
        r"\b(?:stop|quit|cease) (?:e-?mailing|contacting|messaging|texting|calling|spamming|sending|writing|"
        r"reaching out|following up|bugging|pestering)\b",
        r"\b(?:do not|don't|dont|never) (?:e-?mail|contact|message|text|call|write to|reach out to) (?:me|us)\b",
        r"\bopt(?:ed|ing)?[- ]?(?:me |us )?out\b",
        r"\bno more (?:e-?mails|messages)\b|\bleave me alone\b",
        r"\b(?:this is|that's|stop|quit|more) spam(?:ming)?\b|\bspammer\b|\breport (?:you|this)\b",
    ),
    *_cues(UNSUBSCRIBE, r"\b(?:never|didn't|did not) sign(?:ed)? up\b", weight=0.5),
    *_cues(
        OUT_OF_OFFICE,
        r"\bout of (?:the )?office\b|\bout-of-office\b|\booo\b|\bnicht im b\u00fcro\b",
        r"\bautomatic reply\b|\bauto[- ]?(?:reply|response|responder)\b",
        r"\bon (?:(?:annual|parental|maternity|paternity|medical|sick|sabbatical|bereavement|extended|"
        r"family) )?leave\b",
        r"\b(?:i'm|i am|currently|is|will be) (?:\w+ )?on (?:vacation|holiday|holidays|pto)\b|\baway (?:from (?:the|"
        r"my) (?:office|desk)|at (?:a|the) "
        r"(?:conference|offsite|trade show|event))\b",
        r"\blimited (?:access to e-?mail|connectivity|access)\b|\bno access to e-?mail\b|"
        r"\bchecking e-?mail intermittently\b",
        r"\b(?:upon|on) my return\b|\bwhen i (?:return|get back|am back|'m back)\b",
        r"\b(?:i'll|i will|i'm|i am) (?:be )?(?:out|away|off|offline|travel+ing)\b[^.]{0,30}\b(?:until|till|through|"
        r"returning)\b",
        r"\bslow to (?:respond|reply)\b",
        r"\bdelayed (?:responses?|replies)\b|\b(?:i have|i've) changed roles\b",
        r"\bwithout (?:e-?mail|internet) access\b",
        r"\b(?:mailbox|inbox) is (?:no longer|not) (?:being )?(?:monitored|checked|read)\b|\bno longer monitored\b",
        r"\bwill not be (?:forwarded|read)\b|\bon (?:sabbatical|furlough)\b",
    ),
    *_cues(
        PRICE,
        r"\btoo (?:expensive|pricey|costly|steep|rich for)\b",
        r"\b(?:no|zero|without|lack the|out of) budget\b|\b(?:don't|do not|dont) have (?:the |a |any )?budget\b",
        r"\bbudgets? (?:\w+ ){0,2}(?:cut|slashed|frozen|tight|spent|gone|exhausted|maxed)\b|\bbudget freeze\b",
        r"\b(?:outside|beyond|over|not in) (?:of )?(?:our|the|my) (?:budget|price range)\b|\bout of (?:our|"
        r"my) (?:price )?range\b",
        r"\b(?:can't|cannot|can not|couldn't|could not|unable to) (?:afford|justify (?:the |that |this |"
        r"your )?(?:cost|spend|price|expense|investment))\b",
        r"\b(?:cost|price|pricing|fee|quote)s? (?:is|are|was|were) (?:too high|too steep|steep|prohibitive|"
        r"a (?:big )?(?:problem|issue|concern|blocker|dealbreaker))\b",
        r"\b(?:cost|price|pricing|money|budget) is (?:the|an|our) (?:issue|problem|concern|blocker|sticking point)\b",
        r"\b(?:spend(?:ing)?|purchasing) freeze\b|\bcan't take on (?:any )?(?:new |more )?(?:spend|spending|costs?|"
        r"expenses?)\b",
        r"\bhard to (?:see|justify) the (?:roi|cost|value|price)\b|\bnot worth the (?:cost|price|money|spend|"
        r"investment)\b",
        r"\bjustify (?:that|the|this|your) (?:price|cost|spend|pricing)\b",
        r"\b(?:charg\w*|costs?|pric\w*)\b[^.]{0,40}\bmore than (?:we|i) (?:pay|spend)\b",
        r"\b(?:over|because of|due to|given) (?:the )?(?:cost|price|pricing|budget)\b",
        r"\b(?:under|below|less than|closer to|at most|max) \$\d",
        negatable=True,
    ),
    *_cues(PRICE, r"\b(?:cheaper|discount)\b", negatable=True),
    *_cues(PRICE, r"\b(?:expensive|pricey|overpriced|costly)\b", weight=0.5, negatable=True),
    *_cues(
        TIMING,
        r"\b(?:next|following|coming) (?:quarter|year|fiscal(?: year)?|fy|budget cycle|half)\b",
        r"\b(?:circle|check|touch) back\b|\brevisit\b",
        r"\b(?:reach|ping|follow|try|hit)(?: me| us)?(?: up| out)?(?: again)? (?:in|after|next|around|once|later|"
        r"closer to)\b",
        r"\bhear from you (?:again )?(?:in|after|next|later)\b",
        r"\bnot (?:a|our|my) (?:top )?priority\b|\b(?:isn't|is not|aren't) (?:a|our) (?:top )?priority\b|"
        r"\blow(?:er)? priority\b",
        r"\b(?:bad|wrong|poor|terrible) timing\b|\btiming (?:is|isn't|is not|just isn't) (?:bad|off|tough|tricky|"
        r"right)\b",
        r"\b(?:not|isn't|is not) (?:the )?(?:right|best|ideal|good) time\b|\bnot (?:right )?now\b",
        r"\b(?:in|after|until|till) (?:a few|a couple(?: of)?|several|\d+|two|three|six) (?:weeks|months)\b",
        r"\b(?:until|till|after|before|post|once)\b[^.,;]{0,30}\b(?:done|over|finish\w*|wrap\w*|launch\w*|rollout|"
        r"migration|holidays|new year|board meeting|funding|reorg|renewal|closes|settles|complete\w*)\b",
        r"\bpick (?:this|it|things) (?:back )?up\b|\b(?:too|a (?:little|bit|tad)|still) (?:early|soon)\b|\bnot yet\b|"
        r"\bin a (?:year|few years)\b",
        r"\b(?:ask|try|ping|contact|e-?mail) me (?:again )?(?:once|when|after|in)\b",
        r"\bcheck in (?:with me )?(?:then|later|after|around|in)\b",
        r"\bpriorities (?:for \w+ )?(?:are|is) (?:locked|set|full|fixed|already set)\b",
        negatable=False,
    ),
    *_cues(
        TIMING,
        r"\b(?:later|down the road|down the line|in the future|another time)\b",
        rf"\bin (?:the )?(?:spring|summer|fall|autumn|winter|{MONTH})\b|\bq[1-4]\b|\bh[12]\b",
        r"\b(?:heads[- ]down|slammed|swamped|buried|underwater|stretched thin|too busy|fully booked|at capacity|"
        r"mid-\w+|in the middle of|hiring freeze|reorg|hectic|chaotic|too much going on)\b",
        rf"\b(?:around|by|after|until|till|before) (?:early |mid |late |the end of )?(?:the )?(?:spring|summer|fall|"
        rf"autumn|winter|{MONTH})\b",
        r"\b(?:drop me a (?:note|line)|get back in touch|reconnect|reach out|follow up|check in)\b(?! (?:to|with) )",
        r"\b(?:right now|at the moment|at this time|for now|this (?:quarter|year|month))\b",
        weight=0.5,
    ),
    *_cues(
        AUTHORITY,
        r"\bnot (?:the|a|your) (?:right|best|correct|appropriate|relevant) (?:person|contact|guy|one)\b",
        r"\bwrong (?:person|contact|guy|department|team)\b",
        r"\b(?:not|isn't|is not)(?: really)? my (?:department|area|call|decision|role|responsibility|remit)\b",
        r"\b(?:suggest|recommend) (?:contacting|reaching out to|talking to|speaking (?:to|with)|e-?mailing)\b",
        r"\b(?:above|beyond) my pay ?grade\b|\bmoved to (?:a )?(?:different|another|new) (?:team|role|department|"
        r"company)\b",
        r"\byou(?:'d|'ll| would| will| might| may| should)? (?:want|need|have) to (?:talk|speak|reach out|connect|"
        r"get in touch)\b",
        rf"\b(?:try|contact|reach out to|talk to|speak (?:to|with)|e-?mail|ask|ping|you want) (?:our|my|the) {ROLE}\b",
        r"\brun (?:it|this|that) (?:by|past)\b",
        r"\b(?:sign[- ]?off|approval|buy[- ]in|green light|go[- ]ahead) from\b",
        rf"\b(?:check|clear) (?:it |this |that )?with my {ROLE}\b",
        r"\b(?:decision|call)s? (?:sits|is|lies|rests) with\b|\bmakes? the (?:calls?|decisions?)\b|\bsigns? off on\b",
        r"\b(?:is|are) (?:run|owned|handled|managed|decided|bought) by (?:our|my|the|a)\b|\breports? to\b",
        r"\b(?:reach(?:ing)? out|talk(?:ing)?|speak(?:ing)?|writ(?:e|ing)) to (?:him|her|them) (?:directly|instead)\b",
        r"\b(?:would|will|has to|needs to|have to) (?:decide|approve|sign off|make that call)\b",
        r"\b(?:don't|do not) (?:make|own|control|handle) (?:the |any |those |these )?(?:\w+ )?(?:decisions?|calls?|"
        r"purchas\w*|budget)\b",
        r"\bretired\b|\bsomeone else (?:has|is in|took|handles|owns)\b|\bmy old (?:role|job|position)\b",
        rf"\b(?:up to|a question for|a decision for) (?:our|my|the) {ROLE}\b|\b(?:don't|do not) have the (?:authority|"
        rf"power)\b",
        r"\b(?:don't|do not|doesn't|won't) (?:get|have) (?:a|any) say\b|\bnot (?:the|a) decision[- ]maker\b",
        r"\bno longer (?:the|a|your) (?:right |best )?(?:contact|person|point of contact)\b|\bi(?:'ve| have)? left\b",
        r"\bno longer (?:with|at|work(?:ing)? (?:at|for|with))\b|\b(?:i'm|i am) just an? (?:sdr|bdr|intern|assistant|"
        r"analyst)\b",
    ),
    *_cues(
        AUTHORITY,
        r"\b(?:forward(?:ing|ed)?|pass(?:ing|ed)? (?:it|this) (?:along|on)|cc'?d|cc'?ing|loop(?:ing|ed)? in)\b",
        r"(?<!we )(?<!i )\b(?:owns|handles|manages) (?:our|the|all)\b|\b(?:purchasing|procurement)\b",
        r"\bnot sure why (?:i|i'm|i am) (?:got|get|getting|received|receiving)\b|\bnot me\b|\bdecides? on\b",
        weight=0.5,
    ),
    *_cues(
        COMPETITOR,
        rf"\b{USING} (?:[\w-]+ )?{COMPETITORS}\b|\b(?:an?|the) {COMPETITORS} shop\b",
        weight=1.5,
        negatable=True,
    ),
    *_cues(
        COMPETITOR,
        rf"\b(?:already|currently) (?:have|use|using|work with|working with|pay for|paying for|got) (?:a |an |"
        rf"another |our |some )?(?:[\w-]+ )?(?:{TOOL}|company|firm)\b",
        rf"\b(?:happy|satisfied|content) with (?:our|the) (?:current |existing )?{TOOL}\b",
        rf"\b(?:went|going|gone|go) with (?:a|an|another|someone|somebody|a different) (?:[\w-]+ )?(?:{TOOL}|company|"
        rf"option|competitor)\b",
        r"\bunder contract\b|\b(?:signed|renewed|inked) (?:a |an )?(?:[\w-]+ )?(?:deal|contract|agreement)\b",
        rf"\b(?:we've got|we have|we use|we work with|we're working with) (?:a|an) (?:[\w-]+ )?{TOOL} (?:doing|"
        rf"that does|that handles|handling|for (?:this|that|it))\b",
        rf"\b(?:our|an|a) (?:[\w-]+ )?{TOOL}(?: who| that| which)? (?:runs|handles|does|manages|takes care of|"
        rf"covers)\b",
        rf"\bwe (?:partner|work) with (?:a|an) (?:[\w-]+ )?{TOOL}\b",
        negatable=True,
    ),
    *_cues(
        COMPETITOR,
        r"\blocked in\b|\b(?:not looking to|no plans? to|don't want to|won't) switch\b|\bswitching (?:would|isn't|"
        r"is not)\b",
        weight=0.5,
    ),
    *_cues(
        NOT_INTERESTED,
        r"\bno,? (?:thanks|thank you|thx)\b|\bthanks,? but no\b|\b(?:nope|nah)\b|\bhard pass\b",
        r"\b(?:we'?ll|i'?ll|i will|we will|going to|gonna|have to|we'?d|i'?d) pass\b(?! (?:it|this|that|your)\b)",
        r"\bnot (?:a|the) (?:good |great |right )?fit\b|\b(?:don't|do not|doesn't|does not) (?:think )?(?:it's |"
        r"this is )?(?:a )?(?:good |great )?fit\b",
        r"\b(?:not|isn't|is not) (?:really )?for (?:us|me)\b|\bnot (?:looking|in the market) (?:for|to|at)\b",
        r"\bnot (?:going|planning) to (?:move forward|proceed|pursue|go ahead|buy|engage)\b|\b(?:decided|"
        r"decide) (?:not to|against)\b",
        r"\b(?:we're|i'm|we are|i am) all set\b(?! for)",
        r"\b(?:say|it's|that's|it is) (?:a )?no\b|\ba no (?:from|for)\b|\bdeclin(?:e|ing|ed)\b",
        r"\b(?:skip|sit out) (?:this|that|it)\b|\b(?:not a|no) chance\b|\b(?:doesn't|does not|don't) appeal\b",
        r"\bnot (?:something|anything) (?:we|i)(?:'d| would)? (?:buy|use|want|consider|invest in)\b",
    ),
    # "Thanks, but ..." with nothing positive after it is how most declines start.
    *_cues(NOT_INTERESTED, r"^(?:thanks|thank you|appreciate (?:it|this|the \w+))[^.?!]{0,20}\bbut\b", weight=0.5),
    *_cues(NOT_INTERESTED, r"\b(?:we're|we are|i'm) (?:good|fine|ok|okay)\b", weight=0.5),
    *_cues(
        NO_NEED,
        r"\b(?:don't|do not|dont|doesn't|does not) (?:really |actually |currently )?(?:need|require|see (?:a|the|"
        r"any) need)\b",
        r"\bno (?:real )?(?:need|use) (?:for|to)\b|\bnot (?:something|anything) we need\b",
        r"\bin[- ]house\b|\b(?:built|build|developed|have) (?:our|my) own\b|\bbuilt\b[^.]{0,40}\binternally\b",
        r"\b(?:don't|do not|dont) (?:have|face|see) (?:this|that|the|a|any) (?:kind of )?(?:problem|issue|pain|"
        r"challenge)\b",
        r"\b(?:isn't|is not|not) (?:really )?(?:a|an) (?:problem|issue|pain point|challenge) (?:for|at|here)\b",
        r"\b(?:doesn't|does not|don't|do not) (?:really )?apply (?:to us|here|to our)\b|"
        r"\bnot (?:really )?relevant (?:to|for) (?:us|our)\b",
        r"\b(?:has|have|got) (?:it|this|that|us) covered\b|\bwe're covered\b",
        r"\bno (?:real )?use case\b|\b(?:don't|do not) (?:really )?have a (?:real )?use case\b",
        r"\b(?:pipeline|calendar|plate|funnel) is (?:full|packed|overflowing)\b|\bmore (?:leads|demand|business|"
        r"meetings|pipeline) than we can\b",
        r"\balready (?!uses|has|gets|signed|works)[\w-]+s\b|\balready (?:do|does|handle|cover)\b",
        r"\bnothing (?:here )?(?:we|i)(?:'d| would)? need\b|\bredundant\b|\bnot needed\b|\bunnecessary\b",
        r"\bwhat problem (?:this|it) (?:solves|would solve)\b",
        r"\b(?:don't|do not) (?:really )?have (?:any )?(?:dead|old|stale|cold|lost) (?:leads|deals|accounts)\b",
        r"\b(?:don't|do not|dont|doesn't|does not|never) (?:do|run|send) (?:any )?(?:outbound|cold (?:e-?mail|"
        r"outreach|calling)|outreach|prospecting)\b",
    ),
    *_cues(
        NO_NEED,
        r"\b(?:works|is working) (?:fine|well|great|just fine)\b|\bso we're (?:fine|good|covered|set)\b|"
        r"\band it works\b",
        weight=0.5,
    ),
    *_cues(
        MEETING,
        r"\b(?:let's|lets|let us) (?:chat|talk|connect|meet|set (?:up|something up)|find|schedule|book|do (?:it|this|"
        r"a)|grab|hop|jump|catch up|get|speak)\b",
        r"\b(?:send|share|give)(?: me| us)?(?: over)? (?:some |a few |your )?(?:times|availability|(?:a |an |the |"
        r"your )?(?:calendar )?(?:invite|link)|calendly)\b",
        r"\b(?:book|schedule|set up|grab|find|put) (?:a |some |an? \w+ |\d+ )?(?:time|call|meeting|demo|slot|chat|"
        r"minutes|mins|something)\b",
        rf"\b(?:free|available|open|flexible|how's|how about|are you free|do you have)\b[^.?!]{{0,25}}\b(?:{DAY})\b",
        rf"\b(?:{DAY})\b[^.?!]{{0,25}}\b(?:works?|at \d|afternoon|morning|is (?:good|open|free)|pretty open)\b",
        r"\b(?:could|can|happy to|able to) do (?:a )?(?:call|chat|meeting|demo)\b|\bcall me\b",
        r"\b\d+ ?(?:min|mins|minutes)\b|\b(?:quick|short|brief) (?:chat|call|conversation|meeting)\b|\bsee a demo\b",
        r"\b(?:your|my) (?:calendar|availability)\b|\bcount me in\b|\bsounds (?:good|great|perfect)\b|\bthat works\b",
        r"\bon the (?:books|calendar)\b|\bnext steps?\b",
        r"\b(?:send|hit me with|shoot (?:me|over)|give me|share|suggest|propose|throw out)\b[^.?!]{0,25}\btimes\b",
        r"\b(?:suggest|propose|pick|name) a (?:time|day|slot)\b|\b(?:i'll|i will|we'll|we will) make it work\b",
        r"\b(?:could|can|shall|should) (?:we|you) (?:do|have|set up|get on|jump on|hop on) (?:a )?(?:quick )?"
        r"(?:call|chat|meeting|demo)\b",
        r"\bwalk (?:me|us)\b[^.?!]{0,40}\bthrough\b",
        negatable=True,
    ),
    *_cues(
        INTEREST,
        r"\binterest(?:ed|s)?\b|\bkeen\b|\bopen to\b|\blove (?:this|it|the idea)\b|\blooks (?:great|promising)\b",
        r"\b(?:send|share|forward)\b[^.?!]{0,30}\b(?:info|information|details|deck|slides|one[- ]pager|"
        r"case stud(?:y|ies)|pricing|brochure|overview|materials?|examples?|references?|video|docs|proposal)\b",
        r"\b(?:do you have|is there|have you got) (?:a |an |any )?(?:case stud\w*|deck|video|demo|one[- ]pager|"
        r"brochure|overview|examples?|references?|trial|recording)\b",
        r"\bintrigued\b|\b(?:exactly|just) what (?:we|i)(?:'ve| have)? (?:been )?(?:looking for|need(?:ed)?)\b",
        r"\b(?:would be|it'd be|it would be) (?:great|good|nice|helpful) to "
        r"(?:see|chat|talk|learn|hear|connect|meet)\b",
        r"\btell me more\b|\b(?:learn|hear|know|see) more\b|\bkeep me (?:posted|in the loop|updated)\b",
        r"\b(?:could|might|may) be (?:useful|relevant|helpful|worth)\b|\bworth a (?:look|chat|conversation|call)\b",
        r"\b(?:happy|glad|willing) to (?:take a look|look|chat|talk|hop|jump|connect|reconnect|learn)\b",
        r"\b(?:got|have|caught|has) (?:my|our) attention\b|\b(?:relevant|timely) (?:for|to) (?:us|me)\b",
        r"\b(?:would|i'd|we'd) (?:love|like|be (?:happy|glad|keen)) to\b|\bgood timing\b|\bmeaning to\b",
        negatable=True,
    ),
    *_cues(INTEREST, r"\bnot opposed\b|\b(?:wouldn't|couldn't|can't) hurt\b|\bwouldn't mind\b|\bwhy not\b"),
    # Polite curiosity alone ("interesting idea, let me think") is not interest; with a request it is.
    *_cues(
        INTEREST, r"\binteresting\b|\bcurious\b|\btimely\b|^(?:maybe|possibly|perhaps)\b", weight=0.5, negatable=True
    ),
]
# Whole clauses that decide on their own: SMS keywords, a bare yes or no.
SHORT_ANSWERS = {
    **dict.fromkeys(("stop", "stop please", "please stop", "stopall", "unsub", "remove", "remove me"), UNSUBSCRIBE),
    **dict.fromkeys(("no", "nope", "nah", "pass", "no thanks"), NOT_INTERESTED),
    **dict.fromkeys(("i'm in", "we're in", "count me in", "let's do it"), MEETING),
}
# A clause of at most three words opening with one of these is a yes ("ya sure", "yes please", "ok sure").
AFFIRMATIVE = re.compile(r"^(?:(?:ok|okay) )?(?:yes|yeah|ya|yep|yup|sure|absolutely|definitely|of course)\b")
CLAUSE_SPLIT = re.compile(r"[,.;:!?\n()]+|\s-+\s|\b(?:but|however|although|though|unfortunately)\b")
NEGATOR = re.compile(
    r"\b(?:not|no|zero|never|nobody|nothing|neither|nor|without|hardly|cannot|dont|doesnt|isnt|wont|cant|wouldnt)\b|"
    r"n't\b"
)
NEGATION_IDIOMS = re.compile(
    r"\b(?:why not|not sure|not only|no worries|no problem|if not|not opposed|(?:would|could|ca)n't (?:hurt|mind))\b"
)
HOSTILE = re.compile(r"\b(?:spam\w*|annoying|ridiculous|harass\w*|report you|immediately|seriously)\b|!!")
ENTHUSIASTIC = re.compile(r"\b(?:love|absolutely|excited|perfect|great|yes please)\b|!")


@dataclass(frozen=True)
class _Hit:
    kind: str
    weight: float
    start: int
    words: str


def _negated(text: str, start: int) -> bool:
    """A negation among the few words before ``start``, in the same clause ("not really interested")."""
    window = text[max(0, start - 60) : start]
    boundaries = list(CLAUSE_SPLIT.finditer(window))
    if boundaries:
        window = window[boundaries[-1].end() :]
    words = NEGATION_IDIOMS.sub(" ", window).split()[-4:]
    return bool(NEGATOR.search(" ".join(words)))


def _cue_hits(text: str) -> list[_Hit]:
    hits = []
    for cue in CUES:
        for match in cue.pattern.finditer(text):
            if not (cue.negatable and _negated(text, match.start())):
                hits.append(_Hit(cue.kind, cue.weight, match.start(), match.group()))
            elif cue.kind in INTEREST_KINDS:  # "not interested", "don't want to set up a call"
                hits.append(_Hit(NOT_INTERESTED, THRESHOLD, match.start(), f"not ... {match.group()}"))
    return hits


def _short_answer_hits(text: str) -> list[_Hit]:
    hits, position = [], 0
    for clause in CLAUSE_SPLIT.split(text):
        position = text.find(clause, position)
        words = clause.strip(" '\"*")
        kind = SHORT_ANSWERS.get(words) or (MEETING if AFFIRMATIVE.match(words) and len(words.split()) <= 3 else None)
        if kind:
            hits.append(_Hit(kind, THRESHOLD, max(position, 0), clause.strip()))
    return hits


SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
MONEY = re.compile(
    r"\b(?:pric\w*|costs?|costing|budget\w*|spend\w*|afford\w*|expensive|premium|quoted?|numbers|dollars?|roi|"
    r"fees?|pay|paying|money|subscriptions?|\d+-figure)\b|\$\d"
)
LIMIT = re.compile(
    r"\b(?:can't|cannot|couldn't|don't|doesn't|won't|wouldn't|isn't|not|no|too|half|lower|come down|more than|"
    r"approved|justify|beyond|a lot of|lots of|so much|that much|non-?starter|deal-?breaker|tight|matter of)\b"
)
MONEY_FINE = re.compile(
    r"\b(?:isn't|is not|not) (?:an? |the )?(?:issue|problem|concern|blocker)\b|\bno (?:worries|problem)\b"
)
COMPETITOR_NAME = re.compile(rf"\b{COMPETITORS}\b")
COMMITTED = re.compile(
    r"\b(?:already|renewal|renewed|contract|signed|switched|moved|loves?|happy with|rolled out|rollout|rolling out|"
    r"implement\w*|deploy\w*|onboard\w*|we use|we have|we've got|we're on|into an?|covers? us|handles|takes care of)\b"
)


def _sentence_hits(text: str) -> list[_Hit]:
    """Rules over a whole sentence, for phrasings no fixed phrase catches: money talk with a limit ("the numbers
    don't work") is price; a named competitor with a commitment ("we have Outreach already") is competitor.
    Questions are skipped: "how much does it cost?" asks, it does not object."""
    hits = []
    for match in SENTENCE.finditer(text):
        sentence = match.group().strip()
        if sentence.endswith("?"):
            continue
        if MONEY.search(sentence) and LIMIT.search(sentence) and not MONEY_FINE.search(sentence):
            hits.append(_Hit(PRICE, THRESHOLD, match.start(), sentence))
        if COMPETITOR_NAME.search(sentence) and COMMITTED.search(sentence):
            hits.append(_Hit(COMPETITOR, 1.5, match.start(), sentence))
    return hits


# --- Rule decisions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Evidence:
    text: str
    hits: list[_Hit]
    scores: dict[str, float]

    @classmethod
    def of(cls, text: str) -> "_Evidence":
        hits = sorted(_cue_hits(text) + _short_answer_hits(text) + _sentence_hits(text), key=lambda hit: hit.start)
        questions = [match.span() for match in SENTENCE.finditer(text) if match.group().strip().endswith("?")]
        scores: dict[str, float] = defaultdict(float)
        for hit in hits:
            asked = hit.kind in ASKED_NOT_OBJECTED and any(start <= hit.start < end for start, end in questions)
            scores[hit.kind] += hit.weight / 2 if asked else hit.weight
        return cls(text, hits, dict(scores))

    def has(self, kind: str) -> bool:
        return self.scores.get(kind, 0.0) >= THRESHOLD

    def objection(self) -> str | None:
        """The stated reason beats a deferral, which beats a flat no (see the module docstring)."""
        specific = [kind for kind in SPECIFIC_OBJECTIONS if self.has(kind)]
        if specific:
            return max(specific, key=lambda kind: (self.scores[kind], -SPECIFIC_OBJECTIONS.index(kind)))
        return next((kind for kind in (TIMING, NOT_INTERESTED) if self.has(kind)), None)

    def quoted(self, kinds: tuple[str, ...]) -> str:
        words = [f"'{hit.words}'" for hit in self.hits if hit.kind in kinds][:4]
        return ", ".join(dict.fromkeys(words))


def _analysis(evidence: _Evidence, score: float, label: str, interest: str, objection: str, category: str, why: str):
    return ReplyAnalysis(
        sentiment_score=round(max(-1.0, min(1.0, score)), 2),
        sentiment_label=label,
        interest_signal=interest in ("high", "medium"),
        interest_level=interest,
        objection_detected=objection != "none",
        objection_type=objection,
        reasoning=f"Rules: {why}",
        category=category,
        source="rules",
        extra={"cues": [f"{hit.kind}: {hit.words}" for hit in evidence.hits]},
    )


def _unsubscribe(evidence: _Evidence) -> ReplyAnalysis:
    objection = evidence.objection() or NOT_INTERESTED
    score = -1.0 if HOSTILE.search(evidence.text) else -0.9
    why = f"asks to stop contact ({evidence.quoted((UNSUBSCRIBE,))})."
    return _analysis(evidence, score, "negative", "none", objection, UNSUBSCRIBE, why)


def _out_of_office(evidence: _Evidence) -> ReplyAnalysis:
    why = f"auto-reply ({evidence.quoted((OUT_OF_OFFICE,))})."
    return _analysis(evidence, 0.0, "neutral", "none", "none", OUT_OF_OFFICE, why)


def _objection(evidence: _Evidence, objection: str) -> ReplyAnalysis:
    first = min(hit.start for hit in evidence.hits if hit.kind == objection)
    # Openness stated after the objection softens it; a polite opener before it ("we'd love to, but") does not.
    softeners = [hit for hit in evidence.hits if hit.kind in INTEREST_KINDS and hit.start > first]
    why = f"{objection} objection ({evidence.quoted((objection,))})"
    if softeners:
        why += f", open to more ({evidence.quoted(INTEREST_KINDS)})"
        return _analysis(evidence, -0.1, "neutral", "medium", objection, "objection", why + ".")
    if objection in (TIMING, AUTHORITY):
        score = -0.1 if objection == TIMING else 0.0
        return _analysis(evidence, score, "neutral", "low", objection, "objection", why + ".")
    score = -0.6 if objection == NOT_INTERESTED else -0.5
    score -= 0.2 if HOSTILE.search(evidence.text) else 0.0
    return _analysis(evidence, score, "negative", "none", objection, "objection", why + ".")


def _interested(evidence: _Evidence) -> ReplyAnalysis:
    high = evidence.has(MEETING)
    score = (0.8 if high else 0.5) + (0.1 if ENTHUSIASTIC.search(evidence.text) else 0.0)
    why = f"wants {'to meet' if high else 'to know more'} ({evidence.quoted(INTEREST_KINDS)})."
    return _analysis(evidence, score, "positive", "high" if high else "medium", "none", "interested", why)


def _neutral(evidence: _Evidence) -> ReplyAnalysis:
    question = "?" in evidence.text
    why = "a question without commitment." if question else "no interest, objection or request found."
    return _analysis(evidence, 0.1 if question else 0.0, "neutral", "low", "none", "neutral", why)


def rules_analyze(*, reply_text: str) -> ReplyAnalysis:
    """Classify a reply with phrase rules (negation-aware, weighted), by the priority in the module docstring."""
    evidence = _Evidence.of(_normalise(reply_body(reply_text)))
    if evidence.has(UNSUBSCRIBE):
        return _unsubscribe(evidence)
    if evidence.has(OUT_OF_OFFICE):
        return _out_of_office(evidence)
    objection = evidence.objection()
    if objection:
        return _objection(evidence, objection)
    if any(evidence.has(kind) for kind in INTEREST_KINDS):
        return _interested(evidence)
    return _neutral(evidence)


# --- LLM ------------------------------------------------------------------------------------------

SYSTEM_PROMPT = """You classify replies to B2B sales emails sent by REX, which re-engages leads that went quiet.
Conventions:
- category, by priority: unsubscribe (asks to be removed, to stop contact, to opt out) > out_of_office (any \
auto-reply: away, on leave, mailbox not monitored) > objection (gives a reason not to go ahead) > interested (wants \
a call, a demo, times, or asks us to send information) > neutral (questions without commitment, acknowledgements).
- objection_type: price (cost, budget, even a temporary budget freeze), timing (not now, later), authority (not the \
decision maker, wrong person, needs approval), competitor (already uses another vendor or tool), not_interested \
(a flat no), no_need (no problem to solve, handled in-house). A stated reason beats a deferral, which beats a flat \
no. An unsubscribe carries the objection it states, else not_interested. Other categories: none. \
objection_detected is true exactly when objection_type is not none.
- sentiment_label: interested is positive; out_of_office and neutral are neutral; timing and authority objections \
are neutral; other objections and unsubscribes are negative, unless the lead states openness after the objection \
(then neutral).
- sentiment_score: positive 0.5..1, neutral -0.2..0.5, negative -1..-0.2.
- interest_level: high (yes, a call, a demo, times), medium (asks for information, maybe), low (questions, \
acknowledgements, timing or authority objections), none (rejections, unsubscribes, auto-replies). interest_signal \
is true for high and medium.
- reasoning: one or two sentences quoting the decisive words.
Values like [NAME_1] or [EMAIL_1] stand for redacted personal data; keep them as they are."""

# Lead-context keys whose values are personal data: they become known values for the redactor.
PII_KEY = re.compile(r"name|company|organi[sz]ation|employer|e-?mail|phone|mobile|website|url|linkedin", re.IGNORECASE)


class LLMReplyAnalysis(pydantic.BaseModel):
    """The structured output asked of the model; ``Literal`` fields become enums in the JSON schema."""

    model_config = pydantic.ConfigDict(extra="forbid")

    sentiment_score: float = pydantic.Field(ge=-1.0, le=1.0)
    sentiment_label: Literal["positive", "neutral", "negative"]
    interest_signal: bool
    interest_level: Literal["high", "medium", "low", "none"]
    objection_detected: bool
    objection_type: Literal["none", "price", "timing", "authority", "competitor", "not_interested", "no_need"]
    category: Literal["interested", "objection", "neutral", "unsubscribe", "out_of_office"]
    reasoning: str


class UnusableAnswer(Exception):
    """The model answered, but not with a usable classification (a refusal, no parsed output)."""


def lead_known_pii(lead) -> dict:
    """A lead's personal values, for the redactor (names and company in a signature are not caught by pattern)."""
    keys = ("first_name", "last_name", "email", "phone", "company", "website", "linkedin_url")
    return {key: getattr(lead, key, "") for key in keys}


def _redacted_prompt(
    *, reply_text: str, original_message: str, lead_context: dict, known_pii: dict
) -> tuple[list[dict], dict]:
    known = {key: str(value) for key, value in lead_context.items() if PII_KEY.search(key) and isinstance(value, str)}
    redactor = Redactor(known={**known, **known_pii})
    context = json.dumps(redactor.data(lead_context), sort_keys=True, ensure_ascii=False, default=str)
    user = "\n".join(
        [
            "Our message:",
            redactor.text(original_message) or "(not available)",
            "",
            f"Lead context (JSON): {context}",
            "",
            "Their reply (quoted thread removed):",
            redactor.text(reply_body(reply_text) or reply_text),
        ]
    )
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
    return messages, redactor.mapping


class SentimentAnalyzer:
    def __init__(self, *, client: openai.OpenAI | None = None, model: str | None = None):
        # Settings are read at call time by default, so a key set later (or in a test) is honoured.
        self._client, self._model = client, model

    def analyze(
        self,
        *,
        reply_text: str,
        original_message: str = "",
        lead_context: dict | None = None,
        known_pii: dict | None = None,
    ) -> ReplyAnalysis:
        """The model's classification, or the rules' when no model is configured or the call fails in any way.
        ``known_pii`` (e.g. ``lead_known_pii(lead)``) adds values to redact beyond the lead context's own."""
        if not reply_text.strip():
            return _fallback(reply_text, "empty reply")
        client = self._client or openai_client()
        if client is None:
            return _fallback(reply_text, "no model configured")
        try:
            return self._ask(client, reply_text, original_message, lead_context or {}, known_pii or {})
        except Exception as error:  # a reply must never be lost to a broken model answer
            # OpenAIError covers timeouts, connection and HTTP errors and cut-off answers; ValidationError is
            # invalid JSON or a value outside the schema; anything else is a server that does not speak the API
            # (an HTML page, an empty body, an answer without choices).
            reason = f"LLM failed: {type(error).__name__}: {str(error)[:200]}"
            logger.warning("sentiment fallback to rules (%s)", reason)
            return _fallback(reply_text, reason)

    def _ask(self, client, reply_text, original_message, lead_context, known_pii) -> ReplyAnalysis:
        messages, mapping = _redacted_prompt(
            reply_text=reply_text, original_message=original_message, lead_context=lead_context, known_pii=known_pii
        )
        completion = client.chat.completions.parse(
            model=self._model or settings.OPENAI_MODEL,
            messages=messages,
            response_format=LLMReplyAnalysis,
            temperature=0,
        )
        message = completion.choices[0].message if completion.choices else None
        if message is None or message.refusal:
            raise UnusableAnswer(f"refused: {message.refusal[:200]}" if message else "no choices")
        answer = message.parsed
        if answer is None:
            raise UnusableAnswer("no parsed output")
        return ReplyAnalysis(
            sentiment_score=answer.sentiment_score,
            sentiment_label=answer.sentiment_label,
            interest_signal=answer.interest_signal,
            interest_level=answer.interest_level,
            # Derived, so the row never says "objection" without a type or the reverse.
            objection_detected=answer.objection_type != "none",
            objection_type=answer.objection_type,
            reasoning=restore(answer.reasoning, mapping),
            category=answer.category,
            source="llm",
            extra={"model": completion.model, "tokens": completion.usage.total_tokens if completion.usage else 0},
        )


def _fallback(reply_text: str, reason: str) -> ReplyAnalysis:
    analysis = rules_analyze(reply_text=reply_text)
    return dataclasses.replace(analysis, extra={**analysis.extra, "fallback_reason": reason})
