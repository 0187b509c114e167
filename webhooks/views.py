"""Provider webhook receivers: verify, store the raw events, answer fast; processing happens in Celery."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from webhooks.services import MalformedPayload, sendgrid_events_parse, sendgrid_events_store
from webhooks.signatures import SignatureRejected, sendgrid_signature_check
from webhooks.tasks import process_webhook_event


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
        new_ids = sendgrid_events_store(raw_body=raw_body, headers=dict(request.headers), signature=signature)
    except SignatureRejected as exc:
        return JsonResponse({"detail": exc.reason}, status=exc.status)
    except MalformedPayload as exc:
        return JsonResponse({"detail": exc.reason}, status=400)
    for event_id in new_ids:
        process_webhook_event.delay_on_commit(event_id)
    received = len(sendgrid_events_parse(raw_body=raw_body))
    return JsonResponse({"received": received, "new": len(new_ids)})
