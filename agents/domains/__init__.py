"""Deliverability of sending domains, mailboxes and phone numbers.

DNS authentication (``dns_auth``), reputation (``reputation``), the hourly health check with auto-pause and
alerts (``health``), warm-up and daily counters (``capacity``), and which mailbox sends next (``rotation``).
"""

from .capacity import counters_rollover, mailbox_warmup_advance, mailboxes_warmup_advance_all, warmup_stage
from .dns_auth import dns_check
from .health import domain_health_check
from .reputation import reputation
from .rotation import (
    HEALTHY_REPUTATION,
    mailbox_assign,
    mailbox_pause,
    mailbox_pause_and_move,
    mailbox_resume,
    mailboxes_ensure_default,
    message_assign_mailbox,
    pick_mailbox,
    pick_phone_number,
    sending_domain_pause,
    sending_domain_pause_and_move,
    sending_domain_resume,
)

__all__ = [
    "HEALTHY_REPUTATION",
    "counters_rollover",
    "dns_check",
    "domain_health_check",
    "mailbox_assign",
    "mailbox_pause",
    "mailbox_pause_and_move",
    "mailbox_resume",
    "mailbox_warmup_advance",
    "mailboxes_ensure_default",
    "mailboxes_warmup_advance_all",
    "message_assign_mailbox",
    "pick_mailbox",
    "pick_phone_number",
    "reputation",
    "sending_domain_pause",
    "sending_domain_pause_and_move",
    "sending_domain_resume",
    "warmup_stage",
]
