"""The world's hidden response model: how likely each lead is to answer each strategy. REX never reads this.

Every probability is a product of a lead's own disposition and the strategy REX chose:

* **framework** (PAS, AIDA, BAB, FAB): each *industry group* prefers one framework; the others get a fixed
  penalty drawn per world seed (×0.40–0.62). The preferred frameworks are a random permutation per seed, so
  no single framework wins everywhere and a policy has to learn which group wants which.
* **tone** (professional, friendly, direct): each *seniority group* prefers one tone, the others ×0.50–0.68,
  again a random permutation per seed.
* **channel**: SMS (only for leads with a phone) helps small companies a little and hurts large ones.
* **send hour** (lead-local): mornings a little better, evenings and weekends worse; a separable factor, so it
  moves every strategy alike and never changes which framework or tone is best.
* **sending domain reputation** (the mailbox providers' view): low reputation blocks more mail and lands more
  of it in spam, which lowers opens and replies.

The structure is learnable from a few thousand labelled sends (16 industry-group × framework cells and
9 seniority-group × tone cells), the best strategy beats the others by a clear margin, and a uniformly random
choice reaches only about half of the best. Reply rates stay realistic: about 20% for a typical lead on its
best strategy, about 8% on a random one; the right framework and tone also make a reply more often an interested
one (45% of replies on neither, 90% on both).
"""

import math
import random
from dataclasses import dataclass
from typing import Protocol

FRAMEWORKS = ("PAS", "AIDA", "BAB", "FAB")
TONES = ("professional", "friendly", "direct")
CHANNELS = ("email", "sms")

INDUSTRY_GROUPS = ("software", "finance", "health", "industrial")
SENIORITY_GROUPS = ("executive", "management", "staff")
SENIORITY_GROUP_OF = {
    "c_level": "executive",
    "vp": "executive",
    "head": "management",
    "director": "management",
    "manager": "staff",
    "individual": "staff",
}
SIZE_BANDS = ("small", "mid", "enterprise")

# Lead disposition (reply rate on the best strategy for a lead with every factor at 1.0).
BASE_REPLY = 0.2
MAX_REPLY = 0.6
LOST_REASON_FACTOR = {
    "timing": 1.35,
    "budget": 1.05,
    "no decision": 0.95,
    "competitor": 0.7,
    "not interested": 0.45,
}
SENIORITY_FACTOR = {"c_level": 0.8, "vp": 0.9, "head": 1.0, "director": 1.0, "manager": 1.1, "individual": 1.0}
SIZE_FACTOR = {"small": 1.1, "mid": 1.0, "enterprise": 0.85}
SMS_FACTOR = {"small": 1.1, "mid": 0.8, "enterprise": 0.6}
# Lead-local hour: a factor per hour inside the windows, OFF_HOURS outside them, WEEKEND on Saturday/Sunday.
HOUR_FACTOR = {8: 1.08, 9: 1.12, 10: 1.1, 11: 1.03, 12: 0.92, 13: 0.95, 14: 1.0, 15: 0.97, 16: 0.92, 17: 0.85}
SMS_EVENING_FACTOR = {18: 0.85, 19: 0.8, 20: 0.75}
OFF_HOURS = 0.75
WEEKEND = 0.7
EMAIL_HOURS = range(8, 18)
SMS_HOURS = range(8, 21)

FRAMEWORK_PENALTY = (0.40, 0.62)
TONE_PENALTY = (0.50, 0.68)


class LeadTraits(Protocol):
    """What the model reads about a lead (``simulation.world.WorldLead`` has all of it)."""

    seniority: str
    industry_group: str
    size_band: str
    lost_reason: str
    months_since_engaged: float
    receptiveness: float
    complainer: bool
    dead_email: bool
    phone_kind: str  # "" (no phone) | "mobile" | "landline" | "dead"

    @property
    def seniority_group(self) -> str: ...


@dataclass(frozen=True)
class Strategy:
    framework: str
    tone: str
    channel: str = "email"

    @property
    def label(self) -> str:
        return f"{self.framework}/{self.tone}/{self.channel}"


@dataclass(frozen=True)
class Propensities:
    """Conditional probabilities of one send; each is given what precedes it."""

    dead: bool  # the address or number does not exist (hard bounce / undeliverable)
    block: float  # blocked by the receiving provider (not dead)
    inbox: float  # lands in the inbox rather than spam, given delivered
    open: float  # a person opens it, given delivered (before pixel blocking)
    reply: float  # a person replies, given delivered
    positive: float  # the reply shows interest, given a reply
    meeting: float  # a meeting gets booked, given a positive reply
    show: float  # the meeting happens, given booked
    opportunity: float  # an opportunity is opened, given a completed meeting
    win: float  # the deal is won, given an opportunity
    complaint: float  # spam report, given delivered (email)
    unsubscribe: float  # unsubscribes without replying, given delivered (email)
    stop: float  # texts STOP, given delivered (SMS)
    out_of_office: float  # an auto-reply, given delivered (email)

    @property
    def deliver(self) -> float:
        return 0.0 if self.dead else 1.0 - self.block

    @property
    def reply_per_send(self) -> float:
        return self.deliver * self.reply


def hour_factor(*, channel: str, local_hour: int | None, weekday: int | None) -> float:
    """The send-time factor; with no hour, its mean over the channel's send window (what a policy that does not
    pick the hour gets on average)."""
    if local_hour is None:
        hours = SMS_HOURS if channel == "sms" else EMAIL_HOURS
        return sum(_hour(channel, hour) for hour in hours) / len(hours)
    factor = _hour(channel, local_hour)
    return factor * WEEKEND if weekday is not None and weekday >= 5 else factor


def _hour(channel: str, hour: int) -> float:
    if hour in HOUR_FACTOR:
        return HOUR_FACTOR[hour]
    if channel == "sms" and hour in SMS_EVENING_FACTOR:
        return SMS_EVENING_FACTOR[hour]
    return OFF_HOURS


def inbox_rate(reputation: float) -> float:
    """Share of delivered mail the providers put in the inbox for a domain of this reputation."""
    reputation = min(1.0, max(0.0, reputation))
    return 0.35 + 0.65 * reputation**2


def block_rate(reputation: float) -> float:
    reputation = min(1.0, max(0.0, reputation))
    return 0.002 + 0.2 * (1.0 - reputation) ** 2


def recency_factor(months: float) -> float:
    return min(1.25, max(0.7, 1.25 - 0.025 * months))


class HiddenModel:
    """The per-seed preferences and the probability of every outcome of every (lead, strategy)."""

    def __init__(self, *, seed: int):
        rng = random.Random(f"rex-world-preferences:{seed}")
        self.seed = seed
        self.preferred_framework = dict(zip(INDUSTRY_GROUPS, rng.sample(FRAMEWORKS, len(FRAMEWORKS)), strict=True))
        self.preferred_tone = dict(zip(SENIORITY_GROUPS, rng.sample(TONES, len(TONES)), strict=True))
        self.framework_factor = {
            (group, framework): 1.0 if framework == self.preferred_framework[group] else rng.uniform(*FRAMEWORK_PENALTY)
            for group in INDUSTRY_GROUPS
            for framework in FRAMEWORKS
        }
        self.tone_factor = {
            (group, tone): 1.0 if tone == self.preferred_tone[group] else rng.uniform(*TONE_PENALTY)
            for group in SENIORITY_GROUPS
            for tone in TONES
        }

    # --- pieces ---------------------------------------------------------------------------------------------

    def fit(self, lead: LeadTraits, strategy: Strategy) -> float:
        """How well the copy suits the lead: 1.0 on the preferred framework and tone, about 0.2–0.4 on neither."""
        return (
            self.framework_factor[(lead.industry_group, strategy.framework)]
            * self.tone_factor[(lead.seniority_group, strategy.tone)]
        )

    def disposition(self, lead: LeadTraits) -> float:
        """The lead's reply rate on its best email strategy at an average hour, from a clean domain."""
        return (
            BASE_REPLY
            * LOST_REASON_FACTOR.get(lead.lost_reason, 1.0)
            * recency_factor(lead.months_since_engaged)
            * SENIORITY_FACTOR.get(lead.seniority, 1.0)
            * SIZE_FACTOR[lead.size_band]
            * lead.receptiveness
        )

    def channel_factor(self, lead: LeadTraits, channel: str) -> float:
        return SMS_FACTOR[lead.size_band] if channel == "sms" else 1.0

    def available_channels(self, lead: LeadTraits) -> tuple[str, ...]:
        return CHANNELS if lead.phone_kind else ("email",)

    # --- the model ------------------------------------------------------------------------------------------

    def propensities(
        self,
        lead: LeadTraits,
        strategy: Strategy,
        *,
        local_hour: int | None = None,
        weekday: int | None = None,
        domain_reputation: float = 1.0,
    ) -> Propensities:
        sms = strategy.channel == "sms"
        fit = self.fit(lead, strategy)
        # Email placement depends on the domain; carriers deliver SMS or they do not.
        inbox = 1.0 if sms else inbox_rate(domain_reputation)
        when = hour_factor(channel=strategy.channel, local_hour=local_hour, weekday=weekday)
        reply = self.disposition(lead) * fit * self.channel_factor(lead, strategy.channel) * when * inbox
        mismatch = 2.0 - math.sqrt(fit)  # 1.0 on the best strategy, up to ~1.6 on the worst
        return Propensities(
            dead=lead.phone_kind in ("landline", "dead") if sms else lead.dead_email,
            block=0.0 if sms else block_rate(domain_reputation),
            inbox=inbox,
            open=min(0.95, inbox * (0.38 + 0.12 * fit) * (0.85 if lead.seniority_group == "executive" else 1.0)),
            reply=min(MAX_REPLY, reply),
            positive=self.positive_rate(lead, strategy),
            meeting=0.45 if lead.seniority == "c_level" else 0.55,
            show=0.8,
            opportunity=0.6,
            win={"small": 0.55, "mid": 0.45, "enterprise": 0.35}[lead.size_band],
            complaint=0.0 if sms else (0.02 if lead.complainer else 0.00005) * mismatch,
            unsubscribe=0.0 if sms else 0.006 * mismatch,
            stop=0.03 * mismatch if sms else 0.0,
            out_of_office=0.0 if sms else 0.035,
        )

    def positive_rate(self, lead: LeadTraits, strategy: Strategy) -> float:
        """Share of replies that show interest: the right framework and tone also make the answer warmer."""
        framework_fit = strategy.framework == self.preferred_framework[lead.industry_group]
        tone_fit = strategy.tone == self.preferred_tone[lead.seniority_group]
        cold = 0.15 if lead.lost_reason == "not interested" else 0.0
        return 0.45 + 0.25 * framework_fit + 0.2 * tone_fit - cold

    def reply_rate(
        self,
        lead: LeadTraits,
        strategy: Strategy,
        *,
        local_hour: int | None = None,
        weekday: int | None = None,
        domain_reputation: float = 1.0,
    ) -> float:
        """P(a person replies | sent): the figure the oracle and the efficacy numbers compare. The same
        arithmetic as ``propensities(...).reply_per_send`` without building the rest (the oracle calls it a lot)."""
        sms = strategy.channel == "sms"
        if (lead.phone_kind in ("landline", "dead")) if sms else lead.dead_email:
            return 0.0
        inbox = 1.0 if sms else inbox_rate(domain_reputation)
        when = hour_factor(channel=strategy.channel, local_hour=local_hour, weekday=weekday)
        reply = self.disposition(lead) * self.fit(lead, strategy) * self.channel_factor(lead, strategy.channel)
        deliver = 1.0 if sms else 1.0 - block_rate(domain_reputation)
        return deliver * min(MAX_REPLY, reply * when * inbox)

    def strategies(self, lead: LeadTraits) -> list[Strategy]:
        """Every strategy REX could choose for the lead (SMS only with a phone number)."""
        return [
            Strategy(framework, tone, channel)
            for channel in self.available_channels(lead)
            for framework in FRAMEWORKS
            for tone in TONES
        ]

    def describe(self) -> dict:
        """The hidden preferences, for the report printed after a run (never given to REX)."""
        return {
            "preferred_framework_by_industry_group": dict(self.preferred_framework),
            "preferred_tone_by_seniority_group": dict(self.preferred_tone),
        }
