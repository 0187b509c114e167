"""PersonalizerAgent: picks a copywriting strategy per lead and writes the lead's first message.

Strategy: Thompson sampling over (framework, tone) arms, fed by the organization's outcome labels, so
untried arms get explored and proven winners get most of the traffic; when the lead's A/B arm has a deployed
policy model (training/policy.py), its best predicted strategy is used instead. Holdout leads
(TRAINING_HOLDOUT_PERCENTAGE) are never written to. Writer: the framework templates
(templates/messages/), or the fine-tuned message writer of the lead's A/B arm (training/split.py: champion
and challengers each write for their share of leads) when OpenAI is configured; the model only ever sees
redacted lead context.
"""

import json
import random
import re
from dataclasses import dataclass
from functools import cached_property

import openai
from django.template.loader import render_to_string
from django.utils import timezone

from agents.decisions.engine import decide
from agents.decisions.lifecycle import lead_can, lead_transition
from agents.decisions.llm import LLMQuestion, openai_client
from agents.decisions.types import Decision
from agents.models import AgentRun, Lead, Message, MissionLead
from agents.pipeline.base import Agent, StepResult
from agents.pipeline.seniority import seniority_of
from outcomes.redaction import PLACEHOLDER_RE, redact, restore
from outcomes.selectors import strategy_performance
from training.models import ModelVersion
from training.policy import PolicyChoice, policy_choose
from training.split import arm_for, is_holdout

FRAMEWORKS = ("PAS", "AIDA", "BAB", "FAB")
TONES = ("professional", "friendly", "direct")
VARIANTS = ("A", "B")
FRAMEWORK_NAMES = {
    "PAS": "Problem-Agitate-Solution",
    "AIDA": "Attention-Interest-Desire-Action",
    "BAB": "Before-After-Bridge",
    "FAB": "Features-Advantages-Benefits",
}
SMS_MAX_CHARS = 320
SUBJECT_MAX_CHARS = 255
# The scraper's website signals that make a timely hook, as the noun phrase the templates expect.
SIGNAL_HOOKS = {
    "hiring": "the open roles on your careers page",
    "series_a": "your Series A news",
    "series_b": "your Series B news",
}
STOP_ACTIONS = ("skip", "stop", "disqualify")
LLM_ERRORS = (openai.OpenAIError, ValueError, TypeError, KeyError, IndexError, AttributeError)

WRITER_PROMPT = (
    "You write short B2B reactivation messages to leads we spoke with last year. Follow the requested "
    "copywriting framework and tone, mention the earlier conversation, end with one clear call to action and "
    "add no footer or unsubscribe text. Keep every placeholder in square brackets exactly as written. "
    'Answer with one JSON object: {"subject": "...", "body": "..."}. For the sms channel the subject is empty '
    f"and the body has at most {SMS_MAX_CHARS} characters."
)


# --- Strategy ------------------------------------------------------------------------------------------------


def choose_strategy(*, arms_stats: dict[tuple[str, str], tuple[int, int]], rng: random.Random) -> tuple[str, str, dict]:
    """Thompson sampling: draw each arm's reply rate from Beta(1 + replies, 1 + sent - replies), keep the best.

    ``arms_stats`` maps (framework, tone) to (sent, replies); arms missing from it are untried (uniform prior).
    """
    best = None
    for framework in FRAMEWORKS:
        for tone in TONES:
            sent, replies = arms_stats.get((framework, tone), (0, 0))
            sent = max(sent, 0)
            replies = min(max(replies, 0), sent)
            sample = rng.betavariate(1 + replies, 1 + sent - replies)
            if best is None or sample > best[0]:
                best = (sample, framework, tone, sent, replies)
    sample, framework, tone, sent, replies = best
    explanation = {
        "method": "thompson_beta",
        "sampled": round(sample, 4),
        "arm_sent": sent,
        "arm_replies": replies,
        "arm_reply_rate": round(replies / sent, 4) if sent else None,
        "arms_tried": sum(1 for f, t in arms_stats if f in FRAMEWORKS and t in TONES and arms_stats[(f, t)][0] > 0),
    }
    return framework, tone, explanation


# --- Templates -----------------------------------------------------------------------------------------------


def _tidy(text: str) -> str:
    """Template output without the blank lines and double spaces that {% if %} blocks leave behind."""
    lines, blank = [], False
    for raw in text.strip().splitlines():
        line = re.sub(r"[ \t]{2,}", " ", raw).strip()
        if line or not blank:
            lines.append(line)
        blank = not line
    return "\n".join(lines).strip()


def _context(*, lead, framework: str, tone: str, variant: str, signals, sender_name: str) -> dict:
    return {
        "lead": lead,
        "framework": framework,
        "tone": tone,
        "variant": variant,
        "signals": [s for s in (signals or []) if s],
        "sender_name": sender_name,
    }


def render_message(*, lead, framework: str, tone: str, variant: str, signals, sender_name: str) -> tuple[str, str]:
    """(subject, body) from templates/messages/<framework>.txt, whose first line is ``Subject: ...``."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"Unknown framework {framework!r}; use one of {', '.join(FRAMEWORKS)}.")
    context = _context(
        lead=lead, framework=framework, tone=tone, variant=variant, signals=signals, sender_name=sender_name
    )
    first, _, rest = _tidy(render_to_string(f"messages/{framework.lower()}.txt", context)).partition("\n")
    return first.removeprefix("Subject:").strip()[:SUBJECT_MAX_CHARS], rest.strip()


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:-") + "…"


def render_sms(*, lead, framework: str, tone: str, variant: str, sender_name: str) -> str:
    """A one-paragraph SMS body of at most SMS_MAX_CHARS (no subject; the channel layer adds the opt-out)."""
    context = _context(lead=lead, framework=framework, tone=tone, variant=variant, signals=[], sender_name=sender_name)
    body = " ".join(_tidy(render_to_string("messages/sms.txt", context)).split())
    return _shorten(body, SMS_MAX_CHARS)


def _enrichment_value(lead: Lead, key: str):
    entry = (lead.enrichment or {}).get(key)
    return entry.get("value") if isinstance(entry, dict) else entry


def lead_signals(lead: Lead, *, limit: int = 3) -> list[str]:
    """Hooks for the copy, as noun phrases: operator-supplied ``signals`` first, then the scraper's website signals."""
    found: list[str] = []
    phrases = _enrichment_value(lead, "signals")
    for phrase in phrases if isinstance(phrases, list) else [phrases]:
        if isinstance(phrase, str) and phrase.strip():
            found.append(phrase.strip())
    names = _enrichment_value(lead, "website_signals")
    if isinstance(names, list):
        found += [SIGNAL_HOOKS[name] for name in names if name in SIGNAL_HOOKS]
    return list(dict.fromkeys(found))[:limit]


# --- Writer --------------------------------------------------------------------------------------------------


@dataclass
class Draft:
    subject: str
    body: str
    writer: str = "template"
    model_version_id: int | None = None
    llm_error: str = ""
    llm_tokens: int = 0


@dataclass(frozen=True)
class Brief:
    lead: Lead
    framework: str
    tone: str
    variant: str
    channel: str
    signals: list
    sender_name: str


def template_draft(brief: Brief) -> Draft:
    if brief.channel == Message.Channel.SMS:
        body = render_sms(
            lead=brief.lead,
            framework=brief.framework,
            tone=brief.tone,
            variant=brief.variant,
            sender_name=brief.sender_name,
        )
        return Draft(subject="", body=body)
    subject, body = render_message(
        lead=brief.lead,
        framework=brief.framework,
        tone=brief.tone,
        variant=brief.variant,
        signals=brief.signals,
        sender_name=brief.sender_name,
    )
    return Draft(subject=subject, body=body)


def _writer_request(brief: Brief) -> tuple[str, dict]:
    """The user prompt with the lead's PII replaced by placeholders, and the mapping to put it back."""
    lead = brief.lead
    context = {
        "framework": f"{brief.framework} ({FRAMEWORK_NAMES[brief.framework]})",
        "tone": brief.tone,
        "variant": brief.variant,
        "channel": brief.channel,
        "lead": {
            "first_name": lead.first_name,
            "last_name": lead.last_name,
            "company": lead.company,
            "title": lead.title,
            "industry": lead.industry,
        },
        "signals": brief.signals,
        "sender_name": brief.sender_name,
    }
    known = {"first_name": lead.first_name, "last_name": lead.last_name, "company": lead.company, "email": lead.email}
    redacted = redact(json.dumps(context, ensure_ascii=False), known={k: v for k, v in known.items() if v})
    return redacted.text, redacted.mapping


def llm_draft(brief: Brief, *, client, model_version: ModelVersion) -> Draft:
    """Ask the deployed message writer for {"subject", "body"}; raises one of LLM_ERRORS on any failure."""
    prompt, mapping = _writer_request(brief)
    response = client.chat.completions.create(
        model=model_version.provider_model_id,
        messages=[{"role": "system", "content": WRITER_PROMPT}, {"role": "user", "content": prompt}],
        response_format={"type": "json_object"},
    )
    answer = json.loads(response.choices[0].message.content)
    subject = restore(str(answer.get("subject") or ""), mapping).strip()
    body = restore(str(answer["body"]), mapping).strip()
    if not body:
        raise ValueError("the model returned an empty body")
    if PLACEHOLDER_RE.search(subject + body):
        raise ValueError("the model's message has a placeholder that is not ours")
    if brief.channel == Message.Channel.SMS:
        subject = ""
        if len(body) > SMS_MAX_CHARS:
            raise ValueError(f"the model's SMS has {len(body)} characters (max {SMS_MAX_CHARS})")
    if len(subject) > SUBJECT_MAX_CHARS:
        raise ValueError(f"the model's subject has {len(subject)} characters (max {SUBJECT_MAX_CHARS})")
    tokens = getattr(response.usage, "total_tokens", 0) or 0
    return Draft(subject=subject, body=body, writer="llm", model_version_id=model_version.pk, llm_tokens=tokens)


# --- Agent ---------------------------------------------------------------------------------------------------


FOREIGN_KEYS = ["organization", "mission", "lead", "campaign", "sending_domain"]


class PersonalizerAgent(Agent):
    name = AgentRun.Agent.PERSONALIZER

    @cached_property
    def arms_stats(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(framework, tone) -> (sent, replies) over the organization's outcomes; loaded once per instance."""
        stats: dict[tuple[str, str], tuple[int, int]] = {}
        for row in strategy_performance(organization_id=self.organization.pk):
            sent, replied = stats.get((row["framework"], row["tone"]), (0, 0))
            stats[(row["framework"], row["tone"])] = (sent + row["sent"], replied + row["replied"])
        return stats

    @cached_property
    def llm_client(self):
        """The process's OpenAI client, or None without a key (then every lead gets the template writer)."""
        return openai_client()

    def writer_for(self, lead: Lead) -> ModelVersion | None:
        """The message-writer version of the lead's A/B arm, or None for the template writer.

        The split (``arm_for``) is deterministic by lead and experiment, so a lead keeps its writer while the
        experiment runs, and cached per process like the policy's (one small query every few seconds). None:
        no OpenAI key, no writer deployed, or the lead falls in the rest a champion-less test leaves unserved.
        """
        if self.llm_client is None:
            return None
        version = arm_for(lead_id=lead.pk, kind=ModelVersion.Kind.MESSAGE_WRITER)
        if version is None or not version.provider_model_id:
            return None
        return version

    @cached_property
    def sender_name(self) -> str:
        return str(self.mission.params.get("sender_name") or self.organization.name)

    def reviver_channel(self, lead: Lead) -> str:
        summary = (
            AgentRun.objects.filter(mission=self.mission, lead=lead, agent=AgentRun.Agent.REVIVER)
            .order_by("-id")
            .values_list("output_summary", flat=True)
            .first()
        )
        channel = (summary or {}).get("channel")
        return channel if channel in Message.Channel.values else Message.Channel.EMAIL

    def write(self, brief: Brief) -> Draft:
        fallback = template_draft(brief)
        version = self.writer_for(brief.lead)
        if version is None:
            return fallback
        try:
            return llm_draft(brief, client=self.llm_client, model_version=version)
        except LLM_ERRORS as error:
            # The template is always a sendable message; the error is kept in the agent decisions. The message
            # still names the lead's writer arm: its failures are part of its A/B test (else a writer that
            # fails often would be measured on its successes only).
            fallback.model_version_id = version.pk
            fallback.llm_error = f"{type(error).__name__}: {error}"[:300]
            return fallback

    def process(self, lead: Lead) -> StepResult:
        existing = Message.objects.filter(mission=self.mission, lead=lead, step=1).first()
        if existing is not None and existing.status != Message.Status.QUEUED:
            # Already on its way or sent: a retried task must never rewrite it.
            return StepResult(output={"message_id": existing.pk, "unchanged": existing.status})
        if is_holdout(lead_id=lead.pk):
            return _held_out(existing)
        rng = random.Random(f"{self.mission.pk}:{lead.pk}")  # a retried task makes the same choice
        channel = self.reviver_channel(lead)
        framework, tone, exploration, policy = self.strategy(lead, channel, rng)
        variant = rng.choice(VARIANTS)
        facts = self.facts(lead, framework, tone)
        decision = decide(
            lead=lead, stage="personalize", event="personalize", facts=facts, llm_question=_question(lead, facts)
        )
        if decision.action in STOP_ACTIONS:
            return _stopped(lead, decision)
        if decision.action == "route_channel":
            channel = decision.params.get("channel") or channel
        channel = _reachable_channel(lead, channel)
        brief = Brief(lead, framework, tone, variant, channel, lead_signals(lead), self.sender_name)
        draft = self.write(brief)
        record = _decisions_record(brief, draft, exploration, decision, policy)
        message = self.save_message(existing, lead=lead, brief=brief, draft=draft, record=record)
        if message.status != Message.Status.QUEUED:
            return StepResult(decision=decision, output={"message_id": message.pk, "unchanged": message.status})
        lead_transition(lead, "personalize")
        output = {"message_id": message.pk, "framework": framework, "tone": tone, "variant": variant}
        return StepResult(decision=decision, output={**output, "channel": channel, "writer": draft.writer})

    def strategy(self, lead: Lead, channel: str, rng: random.Random) -> tuple[str, str, dict, PolicyChoice | None]:
        """The deployed policy model's pick when the lead's A/B arm has one; Thompson sampling otherwise.

        The policy scores framework × tone on the channel the reviver chose (channel choice stays with the
        reviver and the rules). Its exploration has its own seed, so the fallback's draws never change.
        """
        channel = _reachable_channel(lead, channel)
        candidates = [{"framework": f, "tone": t, "channel": channel} for f in FRAMEWORKS for t in TONES]
        choice = policy_choose(
            lead=lead,
            candidates=candidates,
            rng=random.Random(f"{self.mission.pk}:{lead.pk}:1:policy"),
            campaign=self.mission.campaign,
        )
        if choice is None:
            return (*choose_strategy(arms_stats=self.arms_stats, rng=rng), None)
        exploration = {"method": "policy", "probability": choice.probability, "explored": choice.explored}
        return choice.strategy["framework"], choice.strategy["tone"], exploration, choice

    def facts(self, lead: Lead, framework: str, tone: str) -> dict:
        return {
            "framework": framework,
            "tone": tone,
            "industry": lead.industry,
            "seniority": seniority_of(lead.title),
            "icp_score": lead.icp_score,
            "reactivation_probability": lead.reactivation_probability,
            "has_phone": bool(lead.phone),
        }

    def save_message(self, existing: Message | None, *, lead: Lead, brief: Brief, draft: Draft, record: dict):
        """Create the step-1 message, or rewrite it only while it is still queued (checked in the UPDATE)."""
        message = existing or Message(mission=self.mission, lead=lead, step=1)
        fields = {
            "organization": self.organization,
            "campaign": self.mission.campaign,
            "channel": brief.channel,
            "subject": draft.subject,
            "body": draft.body,
            "framework": brief.framework,
            "tone": brief.tone,
            "variant": brief.variant,
            "to_address": _to_address(lead, brief.channel),
            "agent_decisions": {**message.agent_decisions, "PersonalizerAgent": record},
        }
        for name, value in fields.items():
            setattr(message, name, value)
        # Field checks only: the foreign keys come from this mission and uniqueness is the database's.
        message.full_clean(exclude=FOREIGN_KEYS, validate_unique=False, validate_constraints=False)
        if existing is None:
            message.save()
            return message
        updated = Message.objects.filter(pk=message.pk, status=Message.Status.QUEUED).update(
            **fields, updated_at=timezone.now()
        )
        if not updated:  # moved on between our read and our write
            message.refresh_from_db()
        return message


def _question(lead: Lead, facts: dict) -> LLMQuestion:
    """Asked only when an operator's personalize rule escalates to the LLM."""
    return LLMQuestion(
        question=(
            f"Should we write to this lead now with the {facts['framework']}/{facts['tone']} strategy, or skip them?"
        ),
        options=["proceed", "skip"],
        default="proceed",
        context={**facts, "title": lead.title, "lost_reason": lead.lost_reason},
        known_pii={"first_name": lead.first_name, "last_name": lead.last_name, "company": lead.company},
    )


def _held_out(existing: Message | None) -> StepResult:
    """Holdout leads are never contacted: comparing them with everyone else measures the real lift."""
    if existing is not None:  # queued before the holdout grew to include this lead
        Message.objects.filter(pk=existing.pk, status=Message.Status.QUEUED).update(
            status=Message.Status.CANCELLED, error="holdout", updated_at=timezone.now()
        )
    decision = Decision(stage="personalize", action="skip", layer=AgentRun.Layer.NONE, reason="holdout")
    return StepResult(
        proceed=False,
        decision=decision,
        final_status=MissionLead.Status.SKIPPED,
        output={"skipped": "holdout", "reason": "holdout"},
    )


def _stopped(lead: Lead, decision) -> StepResult:
    # A personalize rule that disqualifies means it: the lifecycle records it (skip and stop leave the state).
    if decision.action == "disqualify" and lead_can(lead, "disqualify"):
        lead_transition(lead, "disqualify")
    return StepResult(
        proceed=False,
        decision=decision,
        final_status=MissionLead.Status.SKIPPED,
        output={"skipped": decision.action, "reason": decision.reason[:200]},
    )


def _reachable_channel(lead: Lead, channel: str) -> str:
    # An SMS needs a phone number; everything else can fall back to the address every lead has.
    if channel not in Message.Channel.values or (channel == Message.Channel.SMS and not lead.phone):
        return Message.Channel.EMAIL
    return channel


def _to_address(lead: Lead, channel: str) -> str:
    if channel == Message.Channel.SMS:
        return lead.phone
    # LinkedIn steps become operator tasks: the profile is where the operator writes.
    if channel == Message.Channel.LINKEDIN and lead.linkedin_url:
        return lead.linkedin_url
    return lead.email


def _decisions_record(
    brief: Brief, draft: Draft, exploration: dict, decision, policy: PolicyChoice | None = None
) -> dict:
    record = {
        "framework": brief.framework,
        "tone": brief.tone,
        "variant": brief.variant,
        "channel": brief.channel,
        "writer": draft.writer,
        "model_version": draft.model_version_id,
        "exploration": exploration,
        "signals_used": len(brief.signals),
        "decision": {"action": decision.action, "layer": decision.layer, "reason": decision.reason[:200]},
    }
    if policy is not None:
        record["policy"] = {
            "version": policy.version.pk,
            "probability": policy.probability,
            "explored": policy.explored,
        }
        if policy.triggered is not None:  # the A/B test's triggered analysis (training/promotion.py)
            record["policy"].update(triggered=policy.triggered, compared_with=list(policy.compared_with))
        # "model_version" becomes OutcomeLabel.model_version: the model that produced the message. With the
        # template writer that is the policy (its A/B arm is the experiment); when the lead's arm has a
        # fine-tuned writer (that wrote the text, or failed and the template stood in), the label names the
        # writer and the policy is kept under "policy_version". The registry's rollups credit a policy through
        # record["policy"] as well, so neither experiment loses messages.
        if draft.model_version_id is None:
            record["model_version"] = policy.version.pk
        else:
            record["policy_version"] = policy.version.pk
    if draft.llm_error:
        record["llm_fallback"] = draft.llm_error
    if draft.llm_tokens:
        record["llm_tokens"] = draft.llm_tokens
    return record
