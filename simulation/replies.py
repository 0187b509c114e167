"""What leads write back: a library of reply templates, with greetings, signatures and quoted history the way
mail clients produce them. REX has to classify these from the text alone (the world never tells it the kind).
"""

import datetime as dt
import random
import zoneinfo
from dataclasses import dataclass, field

POSITIVE = (
    "Good timing actually. We're revisiting this next quarter. Can you send over a couple of times for a call "
    "next week?",
    "Yes, happy to talk. {day} afternoon works for me.",
    "Thanks for following up. I'd be interested in hearing what's changed on your side. Are you free {day} at {time}?",
    "Sure, let's set up 15 minutes. Send me an invite for {day}.",
    "This is relevant for us right now. Could we do a call {day}?",
    "Interested. I'll bring {colleague} from our ops team, so a 30-minute slot would be better.",
    "Happy to reconnect. Suggest a time and I'll make it work.",
    "We've actually been discussing this internally. Let's chat, {day} or {day2} both work for me.",
    "Sounds good. I have time {day} morning, what suits you?",
    "Appreciate you reaching back out. Yes, let's talk.",
    "I'd like to see a demo, especially how it would work with our CRM. When are you free?",
    "Perfect timing, we just lost two renewals we should have saved. Let's talk this week.",
    "Yes please. Book something with me for {day}, any time after {time}.",
    "We are in a much better place than last year, so I'm open to a conversation. What does next week look like?",
    "Funny you should write, this came up in our pipeline review yesterday. Let's find 20 minutes.",
    "Ok, you've got my attention. Can you walk me and {colleague} through it {day}?",
)
QUESTION = (
    "Can you send me some more information first? A one-pager would be fine.",
    "Do you integrate with Salesforce? That would be a requirement for us.",
    "How is this different from what you showed us last year?",
    "Is there a case study from a company our size?",
    "Who else in our industry is using this today?",
    "What would the setup involve on our side? We have a very small team.",
    "Can you remind me what we discussed last time? I've lost the thread.",
    "Is this a new product or the same one as before?",
    "Where is the data stored? Our security team will ask.",
    "How long does onboarding usually take?",
)
OBJECTIONS = {
    "price": (
        "Honestly the budget isn't there this year.",
        "We looked at this before and it was too expensive for us, and I doubt that has changed.",
        "Price was the sticking point last time. Unless that's very different, we'll pass.",
        "We've frozen all new spend until {quarter}.",
        "Not in our budget right now, costs are being cut across the board.",
        "It's a cost question for us. We can't justify another tool at that price.",
        "We simply can't afford it at the moment.",
        "Finance has asked us to cut software spend by 20%, so adding anything is off the table.",
    ),
    "timing": (
        "Not a good time, we're in the middle of a reorg. Try me again in {quarter}.",
        "We're heads down on a launch until {month}. Maybe after that.",
        "Could you reach out again in a few months? Now is not the right time.",
        "Too busy this quarter, sorry. Let's revisit later in the year.",
        "We're mid-migration on our CRM, so nothing new until that's done in {month}.",
        "Timing is bad. Ping me again after {month}.",
        "Not now, maybe next year when things settle down.",
        "I'd rather revisit this in {quarter}, we have too much going on right now.",
    ),
    "authority": (
        "I'm not the right person for this anymore. {colleague} ({colleague_title}) owns this now.",
        "This would need sign-off from our CFO, and that isn't happening soon.",
        "I don't make these decisions, you'd want to talk to procurement.",
        "I moved to a different team, so this isn't mine to decide. Try {colleague}.",
        "Any new vendor has to go through our leadership team, and I can't sponsor it right now.",
        "Not my call unfortunately. The decision maker would be our VP, and she's not looking at this.",
        "I'd need my boss to approve it and it's not on her radar.",
        "Our head office picks these tools centrally, so I can't help.",
    ),
    "competitor": (
        "We signed with {competitor} a few months ago, so we're covered.",
        "We went with {competitor} after our last conversation and are happy with them.",
        "We built something in-house in the meantime.",
        "We're already using {competitor} for this.",
        "We switched to {competitor} in the spring and are locked in for two years.",
        "Another vendor won that project, thanks anyway.",
        "We chose {competitor}, they were a better fit for our stack.",
        "Our team uses {competitor} now, no plans to change.",
    ),
}
NOT_INTERESTED = (
    "Not interested, thanks.",
    "We're all set, thank you.",
    "No thanks, this isn't something we need.",
    "Thanks, but we'll pass.",
    "We don't have a need for this.",
    "I appreciate it, but no.",
    "Not for us. Good luck though.",
    "Not relevant for our business, sorry.",
)
UNSUBSCRIBE = (
    "Please remove me from your list.",
    "Unsubscribe.",
    "Please stop emailing me.",
    "Take me off your mailing list, thanks.",
    "I'm not interested, please don't contact me again.",
    "Remove me from all future emails.",
    "Stop sending me these. Unsubscribe me.",
    "Please take my address off your list and don't contact me again.",
)
OUT_OF_OFFICE = (
    "I am out of the office until {return_date} with limited access to email. For urgent matters please contact "
    "{colleague} at {colleague_email}.",
    "Thank you for your email. I'm on leave and will return on {return_date}. I will reply when I'm back.",
    "I'm currently travelling and will be back on {return_date}. Responses will be delayed.",
    "Out of office: I'm away until {return_date}. Your message will not be forwarded.",
    "Thanks for your message. I am on parental leave until {return_date}. In the meantime please reach out to "
    "{colleague_email}.",
    "I am attending a conference this week and will answer emails after {return_date}.",
    "Automatic reply: I'm out until {return_date}. If this is urgent, contact {colleague} ({colleague_email}).",
    "I'm on holiday until {return_date} with no access to email.",
)
SMS = {
    "positive": (
        "Sure, call me {day} after {time}",
        "Yes interested. When works?",
        "Ok lets talk. Email me some times",
        "Sounds good, send me a calendar link",
        "Good timing. Free {day}?",
        "Yes. Call me tomorrow morning",
    ),
    "question": (
        "Which company is this again?",
        "Can you email me the details instead?",
        "Who is this?",
        "What's this about exactly?",
    ),
    "price": ("No budget for this right now sorry", "Too expensive for us", "We cut all new spend this year"),
    "timing": ("Not now, maybe next quarter", "Busy until {month}, try me then", "Bad timing, later in the year"),
    "authority": ("Not my area anymore, talk to {colleague}", "Not my call, procurement decides"),
    "competitor": ("We went with {competitor}", "Already using {competitor} thanks"),
    "not_interested": ("No thanks", "Not interested", "We're good thanks"),
    "unsubscribe": ("Please stop texting me", "Remove my number please", "Don't text me again"),
}
# Carrier opt-out keywords as people type them (Twilio matches the whole message, case-insensitively).
SMS_STOP = ("STOP", "STOP", "Stop", "stop", "STOP ", "UNSUBSCRIBE", "STOPALL", "QUIT", "END", "CANCEL")

GREETINGS = ("Hi {sender},", "Hello {sender},", "{sender},", "Hey {sender},", "", "Hi,", "Dear {sender},")
SIGN_OFFS = (
    "Thanks,\n{first}",
    "Best,\n{first}",
    "Cheers,\n{first}",
    "Regards,\n{full}\n{title} | {company}",
    "-- {first}",
    "{first}\n\nSent from my iPhone",
    "Thanks\n{full}\n{title}\n{company}",
    "Best regards,\n\n{full}\n{title}, {company}",
)
COMPETITORS = ("Outreachly", "SalesPilot", "Pipewake", "Revivr", "LeadLoop", "Cadence Cloud")
COLLEAGUES = (("Dana Whitfield", "Head of RevOps"), ("Marco Bianchi", "VP Operations"), ("Lena Fischer", "CFO"),
              ("Sam Okoro", "Director of Sales"), ("Priya Nair", "Head of Procurement"))  # fmt: skip
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
TIMES = ("10am", "11:30", "2pm", "3pm", "4:30pm", "9am")


@dataclass(frozen=True)
class Reply:
    """A reply as the lead's mail client (or phone) sends it. ``kind`` is the world's truth, never sent."""

    kind: str  # positive | question | objection | not_interested | unsubscribe | out_of_office | stop
    objection: str  # price | timing | authority | competitor | "" (not an objection)
    text: str
    subject: str = ""
    headers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Thread:
    """What the lead is answering: REX's message."""

    subject: str
    body: str
    sender_display: str
    sender_address: str
    sent_at: dt.datetime
    timezone: str


@dataclass(frozen=True)
class Writer:
    """The lead writing back (public facts only)."""

    first_name: str
    last_name: str
    title: str
    company: str
    email_domain: str


def _fill(template: str, rng: random.Random, *, writer: Writer, sender: str, when: dt.datetime) -> str:
    colleague, colleague_title = rng.choice(COLLEAGUES)
    day, day2 = rng.sample(DAYS, 2)
    return_date = (when + dt.timedelta(days=rng.randint(3, 14))).strftime("%A %d %B")
    quarter = f"Q{((when.month - 1) // 3 + 1) % 4 + 1}"  # the next quarter
    values = {
        "sender": sender,
        "first": writer.first_name,
        "full": f"{writer.first_name} {writer.last_name}",
        "title": writer.title,
        "company": writer.company,
        "day": day,
        "day2": day2,
        "time": rng.choice(TIMES),
        "colleague": colleague,
        "colleague_title": colleague_title,
        "colleague_email": f"{colleague.split()[0].lower()}@{writer.email_domain}",
        "competitor": rng.choice(COMPETITORS),
        "quarter": quarter,
        "month": (when + dt.timedelta(days=rng.randint(40, 120))).strftime("%B"),
        "return_date": return_date,
    }
    return template.format(**values)


def _quoted(thread: Thread, rng: random.Random) -> str:
    """The original message under the reply, in one of the common client styles."""
    local = thread.sent_at.astimezone(zoneinfo.ZoneInfo(thread.timezone or "UTC"))
    body = thread.body.rstrip()
    if rng.random() < 0.7:  # Gmail / Apple Mail style
        stamp = local.strftime("%a, %b %-d, %Y at %-I:%M %p")
        quoted = "\n".join(f"> {line}" if line else ">" for line in body.splitlines())
        return f"On {stamp}, {thread.sender_display} <{thread.sender_address}> wrote:\n\n{quoted}"
    stamp = local.strftime("%A, %B %-d, %Y %-I:%M %p")  # Outlook style: a header block, no ">" prefixes
    return (
        f"-----Original Message-----\nFrom: {thread.sender_display} <{thread.sender_address}>\n"
        f"Sent: {stamp}\nSubject: {thread.subject}\n\n{body}"
    )


def _email_text(core: str, rng: random.Random, *, writer: Writer, sender: str, thread: Thread, when) -> str:
    greeting = rng.choice(GREETINGS).format(sender=sender)
    sign_off = _fill(rng.choice(SIGN_OFFS), rng, writer=writer, sender=sender, when=when)
    parts = [greeting, core, sign_off] if greeting else [core, sign_off]
    return "\n\n".join(parts) + "\n\n" + _quoted(thread, rng)


def _core(kind: str, objection: str, rng: random.Random) -> str:
    if kind == "objection":
        return rng.choice(OBJECTIONS[objection])
    library = {
        "positive": POSITIVE,
        "question": QUESTION,
        "not_interested": NOT_INTERESTED,
        "unsubscribe": UNSUBSCRIBE,
        "out_of_office": OUT_OF_OFFICE,
    }
    return rng.choice(library[kind])


def email_reply(
    *, kind: str, objection: str = "", rng: random.Random, writer: Writer, thread: Thread, when: dt.datetime
) -> Reply:
    """An email reply of ``kind`` to ``thread`` written at ``when``. Out-of-office replies carry the
    ``Auto-Submitted: auto-replied`` header (RFC 3834) and no quoted history, like real auto-responders."""
    sender = thread.sender_display.split()[0] if thread.sender_display else "there"
    core = _fill(_core(kind, objection, rng), rng, writer=writer, sender=sender, when=when)
    if kind == "out_of_office":
        subject = f"{rng.choice(('Automatic reply', 'Out of Office', 'Auto-Reply'))}: {thread.subject}"
        headers = {"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"}
        if rng.random() < 0.5:
            headers["X-Auto-Response-Suppress"] = "All"
        return Reply(kind, "", core, subject=subject, headers=headers)
    text = _email_text(core, rng, writer=writer, sender=sender, thread=thread, when=when)
    subject = thread.subject if thread.subject.lower().startswith("re:") else f"Re: {thread.subject}"
    return Reply(kind, objection, text, subject=subject)


def sms_reply(*, kind: str, objection: str = "", rng: random.Random, writer: Writer, when: dt.datetime) -> Reply:
    """A text message back; ``stop`` is a carrier opt-out keyword alone."""
    if kind == "stop":
        return Reply("stop", "", rng.choice(SMS_STOP))
    key = objection if kind == "objection" else kind
    key = "question" if key == "out_of_office" else key  # phones have no auto-responder
    text = _fill(rng.choice(SMS[key]), rng, writer=writer, sender="", when=when)
    return Reply(kind, objection, text)
