"""Reads for the deliverability API: domain health with mailboxes, phone numbers, open alerts."""

from django.db.models import Prefetch, QuerySet

from agents.models import Alert, Mailbox, Organization, PhoneNumber, SendingDomain


def domain_health_list(*, organization: Organization) -> QuerySet[SendingDomain]:
    mailboxes = Mailbox.objects.select_related("sending_domain").order_by("local_part")
    return (
        SendingDomain.objects.filter(organization=organization)
        .prefetch_related(Prefetch("mailboxes", queryset=mailboxes))
        .order_by("domain")
    )


def phone_number_list(*, organization: Organization) -> QuerySet[PhoneNumber]:
    return PhoneNumber.objects.filter(organization=organization).order_by("number")


def open_alert_list(*, organization: Organization) -> QuerySet[Alert]:
    return (
        Alert.objects.filter(organization=organization, resolved_at__isnull=True)
        .select_related("sending_domain", "mailbox__sending_domain")
        .order_by("-raised_at", "-pk")
    )
