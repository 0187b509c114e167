"""Provider webhook receivers: verify, store the raw events, answer fast; processing happens in Celery."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from webhooks.common import MalformedPayload
from webhooks.services import sendgrid_events_parse, sendgrid_events_store, twilio_event_store
from webhooks.signatures import SignatureRejected, sendgrid_signature_check, twilio_signature_check
from webhooks.tasks import process_webhook_event

# An empty TwiML answer: no auto-reply (Twilio itself answers the opt-out keywords).
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@csrf_exempt
@require_POST
def sendgrid_events(request: HttpRequest) -> JsonResponse:
    try:
        # The signature covers the exact bytes: verify the decoded body, never a re-serialisation.
        raw_body = request.body.decode("utf-8")
    except UnicodeDecodeError:
        return JsonResponse({"detail": "Body is not UTF-8."}, status=400)
    try:
        signature = sendgrid_signature_check(raw_body=raw_body, headers=request.headers)
        events = sendgrid_events_parse(raw_body=raw_body)
        new_ids = sendgrid_events_store(events=events, headers=dict(request.headers), signature=signature)
    except SignatureRejected as exc:
        return JsonResponse({"detail": exc.reason}, status=exc.status)
    except MalformedPayload as exc:
        return JsonResponse({"detail": exc.reason}, status=400)
    for event_id in new_ids:
        process_webhook_event.delay_on_commit(event_id)
    return JsonResponse({"received": len(events), "new": len(new_ids)})


@csrf_exempt
@require_POST
def twilio_messages(request: HttpRequest) -> HttpResponse:
    """Inbound SMS and message status callbacks (form-encoded), both answered with empty TwiML."""
    try:
        raw_body = request.body.decode("utf-8")
    except UnicodeDecodeError:
        return JsonResponse({"detail": "Body is not UTF-8."}, status=400)
    params = {name: request.POST.get(name) for name in request.POST}
    # Behind a proxy request.build_absolute_uri() is not what Twilio signed: use the configured public URL.
    url = settings.PUBLIC_BASE_URL + request.get_full_path()
    try:
        signature = twilio_signature_check(url=url, params=params, headers=request.headers)
        event_id = twilio_event_store(
            params=params, raw_body=raw_body, headers=dict(request.headers), signature=signature
        )
    except SignatureRejected as exc:
        return JsonResponse({"detail": exc.reason}, status=exc.status)
    except MalformedPayload as exc:
        return JsonResponse({"detail": exc.reason}, status=400)
    if event_id is not None:
        process_webhook_event.delay_on_commit(event_id)
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")
