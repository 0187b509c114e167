"""The public unsubscribe page and the RFC 8058 one-click endpoint: no login, the signed token is the proof."""

import logging

from django.core import signing
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from agents.compliance import suppress, unsubscribe_target
from agents.models import Organization, Suppression
from outcomes import tracker
from outcomes.models import OutcomeLabel

logger = logging.getLogger("rex.compliance")


def _invalid(request):
    return render(request, "unsubscribe.html", {"invalid": True}, status=400)


# Mail providers POST the one-click body (List-Unsubscribe=One-Click) without any CSRF token, and the
# form on the page carries nothing worth forging: the signed token alone decides what is unsubscribed.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token: str):
    try:
        organization_id, email = unsubscribe_target(token)
    except signing.BadSignature:
        return _invalid(request)
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:  # the organization was deleted: nothing left that could email them
        return _invalid(request)
    context = {"organization": organization, "email": email, "token": token}
    if request.method == "GET":
        # A GET never unsubscribes: link scanners and previewers follow every link in an email.
        return render(request, "unsubscribe.html", context)
    suppress(
        organization=organization,
        kind=Suppression.Kind.EMAIL,
        value=email,
        reason=Suppression.Reason.UNSUBSCRIBE,
        note="one-click" if request.POST.get("List-Unsubscribe") == "One-Click" else "unsubscribe page",
    )
    _label_latest_email(organization, email)
    return render(request, "unsubscribe.html", {**context, "done": True})


def _label_latest_email(organization: Organization, email: str) -> None:
    """The unsubscribe answers the latest email sent to the address: its outcome says so (training sees it)."""
    outcome = (
        OutcomeLabel.objects.filter(
            organization=organization, channel="email", message__to_address__iexact=email, sent_at__isnull=False
        )
        .order_by("-sent_at", "-pk")
        .first()
    )
    if outcome is not None and not outcome.unsubscribed:
        tracker.track_unsubscribed(outcome, at=timezone.now())
