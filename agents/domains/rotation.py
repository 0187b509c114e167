"""Which mailbox (or phone number) sends next: healthy, with capacity left, weighted by reputation.

A mailbox is healthy when neither it nor its domain is paused and the domain's reputation is at least
``HEALTHY_REPUTATION``. Among healthy mailboxes with capacity left, the choice is random, weighted by
reputation × the share of today's cap still free, divided by 1 + the campaign's messages already queued on
it, so one campaign's load spreads over the mailboxes instead of draining the best one first.
"""

import random
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from agents.models import Campaign, Lead, Mailbox, Message, Organization, PhoneNumber, SendingDomain
from rex_project.exceptions import ApplicationError

HEALTHY_REPUTATION = 0.7
MAX_TARGET_CAP = 500  # Mailbox.target_daily_cap's validator


def mailboxes_ensure_default(*, organization: Organization) -> int:
    """A domain with no mailbox gets one implicit mailbox, ``DEFAULT_SENDER_LOCALPART@domain``, at the domain's cap.

    Returns how many were created.
    """
    created = 0
    for domain in SendingDomain.objects.filter(organization=organization, mailboxes__isnull=True):
        cap = min(domain.daily_cap, MAX_TARGET_CAP)
        _, was_created = Mailbox.objects.get_or_create(
            sending_domain=domain,
            local_part=settings.DEFAULT_SENDER_LOCALPART,
            defaults={"daily_cap": cap, "target_daily_cap": cap},
        )
        created += was_created
    return created


def healthy_mailboxes(*, organization: Organization, campaign: Campaign | None = None):
    mailboxes = (
        Mailbox.objects.filter(
            sending_domain__organization=organization,
            is_paused=False,
            sending_domain__is_paused=False,
            sending_domain__reputation_score__gte=HEALTHY_REPUTATION,
            sent_today__lt=F("daily_cap"),
            sending_domain__sent_today__lt=F("sending_domain__daily_cap"),
        )
        .select_related("sending_domain")
        .order_by("pk")
    )
    if campaign is not None:
        queued = Q(messages__campaign=campaign, messages__status=Message.Status.QUEUED)
        mailboxes = mailboxes.annotate(campaign_load=Count("messages", filter=queued))
    return mailboxes


def _weight(mailbox: Mailbox) -> float:
    free_share = (mailbox.daily_cap - mailbox.sent_today) / mailbox.daily_cap
    load = getattr(mailbox, "campaign_load", 0)
    return max(mailbox.sending_domain.reputation_score, 0.01) * free_share / (1 + load)


def pick_mailbox(
    *,
    organization: Organization,
    rng: random.Random,
    exclude: Iterable[int] = (),
    campaign: Campaign | None = None,
) -> Mailbox | None:
    """A healthy mailbox with capacity left (see the module docstring), or None; never one in ``exclude``."""
    candidates = list(healthy_mailboxes(organization=organization, campaign=campaign).exclude(pk__in=list(exclude)))
    if not candidates:
        return None
    return rng.choices(candidates, weights=[_weight(m) for m in candidates], k=1)[0]


def pick_phone_number(*, organization: Organization, rng: random.Random) -> PhoneNumber | None:
    numbers = list(
        PhoneNumber.objects.filter(organization=organization, is_paused=False, sent_today__lt=F("daily_cap")).order_by(
            "pk"
        )
    )
    if not numbers:
        return None
    return rng.choices(numbers, weights=[(n.daily_cap - n.sent_today) / n.daily_cap for n in numbers], k=1)[0]


def message_assign_mailbox(*, message: Message, mailbox: Mailbox) -> Message:
    message.mailbox = mailbox
    message.sending_domain = mailbox.sending_domain
    message.from_address = mailbox.address
    message.save(update_fields=["mailbox", "sending_domain", "from_address", "updated_at"])
    return message


def _move_queue(queued, *, organization: Organization, exclude: set[int]) -> int:
    moved = 0
    for message in queued.select_related("campaign"):
        rng = random.Random(f"move:{message.pk}")
        target = pick_mailbox(organization=organization, rng=rng, exclude=exclude, campaign=message.campaign)
        if target is None:
            break  # nowhere to go: the rest stay queued here and the outreach gate holds them
        message_assign_mailbox(message=message, mailbox=target)
        moved += 1
    return moved


def mailbox_pause(mailbox: Mailbox, *, reason: str) -> Mailbox:
    """Pause without moving the queue: its messages wait for the resume (the outreach gate holds them)."""
    mailbox.is_paused = True
    mailbox.pause_reason = reason[:200]
    mailbox.save(update_fields=["is_paused", "pause_reason"])
    return mailbox


@transaction.atomic
def mailbox_pause_and_move(mailbox: Mailbox, *, reason: str) -> int:
    """Pause the mailbox and move its queued messages to other healthy mailboxes; returns how many moved."""
    mailbox_pause(mailbox, reason=reason)
    return mailbox_move_queue(mailbox)


def mailbox_move_queue(mailbox: Mailbox) -> int:
    queued = Message.objects.filter(mailbox=mailbox, status=Message.Status.QUEUED).order_by("pk")
    return _move_queue(queued, organization=mailbox.sending_domain.organization, exclude={mailbox.pk})


@transaction.atomic
def sending_domain_pause_and_move(domain: SendingDomain, *, reason: str) -> int:
    """Pause the domain and move its queued messages to mailboxes on other domains; returns how many moved."""
    sending_domain_pause(domain, reason=reason)
    return sending_domain_move_queue(domain)


def sending_domain_move_queue(domain: SendingDomain) -> int:
    queued = Message.objects.filter(sending_domain=domain, status=Message.Status.QUEUED).exclude(
        channel=Message.Channel.SMS
    )
    own = set(domain.mailboxes.values_list("pk", flat=True))
    return _move_queue(queued.order_by("pk"), organization=domain.organization, exclude=own)


def sending_domain_pause(domain: SendingDomain, *, reason: str) -> SendingDomain:
    domain.is_paused = True
    domain.pause_reason = reason[:200]
    domain.paused_at = timezone.now()
    domain.save(update_fields=["is_paused", "pause_reason", "paused_at"])
    return domain


def sending_domain_resume(domain: SendingDomain) -> SendingDomain:
    """Operator resume. Open alerts stay open until their condition clears; the check will not re-pause
    for a condition that has not cleared since (it pauses once per crossing)."""
    domain.is_paused = False
    domain.pause_reason = ""
    domain.paused_at = None
    domain.save(update_fields=["is_paused", "pause_reason", "paused_at"])
    return domain


def mailbox_resume(mailbox: Mailbox) -> Mailbox:
    mailbox.is_paused = False
    mailbox.pause_reason = ""
    mailbox.save(update_fields=["is_paused", "pause_reason"])
    return mailbox


def _sticky_mailbox(lead: Lead, organization: Organization, campaign: Campaign | None) -> Mailbox | None:
    """The mailbox that last wrote to the lead, if it is still healthy: follow-ups stay in one thread."""
    last = (
        Message.objects.filter(lead=lead, mailbox__isnull=False)
        .order_by("-created_at", "-pk")
        .values_list("mailbox_id", flat=True)
        .first()
    )
    if last is None:
        return None
    return healthy_mailboxes(organization=organization, campaign=campaign).filter(pk=last).first()


def mailbox_assign(
    *, organization: Organization, lead: Lead | None = None, campaign: Campaign | None = None
) -> Mailbox:
    """Allocate a mailbox for a lead (its previous sender when still healthy) or a campaign."""
    mailboxes_ensure_default(organization=organization)
    if lead is not None:
        sticky = _sticky_mailbox(lead, organization, campaign)
        if sticky is not None:
            return sticky
    # Seeded per lead, so asking twice for one lead gives one answer; a campaign-only request spreads at random.
    rng = random.Random(f"assign:{lead.pk}:{campaign.pk if campaign else '-'}") if lead else random.Random()
    mailbox = pick_mailbox(organization=organization, rng=rng, campaign=campaign)
    if mailbox is None:
        raise ApplicationError("No healthy mailbox with capacity left today.")
    return mailbox
