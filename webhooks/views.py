"""Provider webhook receivers: verify, store the raw events, answer fast; processing happens in Celery."""

import functools

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from webhooks.common import MalformedPayload, enqueue_on_commit
from webhooks.crm import CrmRequest, crm_events_receive
from webhooks.crm_formats import DEALS, MEETINGS
from webhooks.inbox import inbox_messages_parse, inbox_messages_store
from webhooks.models import WebhookEvent
from webhooks.services import sendgrid_events_parse, sendgrid_events_store, twilio_event_store
from webhooks.signatures import (
    SignatureRejected,
    rex_hmac_signature_check,
    sendgrid_signature_check,
    twilio_signature_check,
)
from webhooks.tasks import process_webhook_event, process_webhook_events

# An empty TwiML answer: no auto-reply (Twilio itself answers the opt-out keywords).
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
# Salesforce redelivers an outbound message until it gets this acknowledgement.
SALESFORCE_ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
    '<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body></soapenv:Envelope>"
)


def receiver(view):
    """A webhook endpoint: POST only, no CSRF (providers sign instead), and a refused signature or a malformed
    body answered with its status and reason (raised before anything is stored)."""

    @csrf_exempt
    @require_POST
    @functools.wraps(view)
    def answer(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except SignatureRejected as exc:
            response = JsonResponse({"detail": exc.reason}, status=exc.status)
            for name, value in getattr(exc, "headers", {}).items():  # e.g. WWW-Authenticate on a basic-auth 401
                response[name] = value
            return response
        except MalformedPayload as exc:
            return JsonResponse({"detail": exc.reason}, status=400)

    return answer


def _utf8(request: HttpRequest) -> str:
    try:
        return request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPayload("Body is not UTF-8.") from None


@receiver
def sendgrid_events(request: HttpRequest) -> JsonResponse:
    # The signature covers the exact bytes: verify the decoded body, never a re-serialisation.
    raw_body = _utf8(request)
    signature = sendgrid_signature_check(raw_body=raw_body, headers=request.headers)
    events = sendgrid_events_parse(raw_body=raw_body)
    new_ids = sendgrid_events_store(events=events, headers=dict(request.headers), signature=signature)
    if new_ids:  # one task for the batch, not one per event: a burst stays a few broker messages
        enqueue_on_commit(process_webhook_events, new_ids)
    return JsonResponse({"received": len(events), "new": len(new_ids)})


@receiver
def twilio_messages(request: HttpRequest) -> HttpResponse:
    """Inbound SMS and message status callbacks (form-encoded), both answered with empty TwiML."""
    raw_body = _utf8(request)
    params = {name: request.POST.get(name) for name in request.POST}
    # Behind a proxy request.build_absolute_uri() is not what Twilio signed: use the configured public URL.
    url = settings.PUBLIC_BASE_URL + request.get_full_path()
    signature = twilio_signature_check(url=url, params=params, headers=request.headers)
    event_id = twilio_event_store(params=params, raw_body=raw_body, headers=dict(request.headers), signature=signature)
    if event_id is not None:
        enqueue_on_commit(process_webhook_event, event_id)
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")


@receiver
def inbox_sync(request: HttpRequest) -> JsonResponse:
    """Inbound emails from a mailbox integration (REX's HMAC scheme over the raw bytes, INBOX_WEBHOOK_SECRET)."""
    signature = rex_hmac_signature_check(raw_body=request.body, headers=request.headers, setting="INBOX_WEBHOOK_SECRET")
    messages = inbox_messages_parse(raw_body=request.body)
    new_ids = inbox_messages_store(messages=messages, headers=dict(request.headers), signature=signature)
    if new_ids:  # one task for the batch, like the SendGrid receiver
        enqueue_on_commit(process_webhook_events, new_ids)
    return JsonResponse({"received": len(messages), "new": len(new_ids)})


def _crm_events(request: HttpRequest, endpoint: str) -> HttpResponse:
    """HubSpot, Pipedrive, Salesforce or REX's generic JSON, told apart by the payload (webhooks.crm)."""
    crm_request = CrmRequest(
        endpoint=endpoint,
        method=request.method or "POST",
        # Behind a proxy request.build_absolute_uri() is not what HubSpot signed: use the configured public URL.
        uri=settings.PUBLIC_BASE_URL + request.get_full_path(),
        raw_body=request.body,
        headers=request.headers,
    )
    receipt = crm_events_receive(request=crm_request)
    if receipt.new_ids:  # one task for the batch, like the SendGrid receiver
        enqueue_on_commit(process_webhook_events, receipt.new_ids)
    if receipt.provider == WebhookEvent.Provider.SALESFORCE:
        return HttpResponse(SALESFORCE_ACK, content_type="text/xml")
    return JsonResponse({"received": receipt.received, "new": len(receipt.new_ids)})


@receiver
def crm_deals(request: HttpRequest) -> HttpResponse:
    return _crm_events(request, DEALS)


@receiver
def crm_meetings(request: HttpRequest) -> HttpResponse:
    return _crm_events(request, MEETINGS)
