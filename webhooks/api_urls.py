"""The webhook inbox API, included under /api/ (the provider receivers live in webhooks/urls.py)."""

from rex_project.routing import route
from webhooks import apis

urlpatterns = [
    route("webhook-events", apis.WebhookEventListApi.as_view(), name="webhook-event-list"),
    route("webhook-events/<int:event_id>", apis.WebhookEventDetailApi.as_view(), name="webhook-event-detail"),
    route(
        "webhook-events/<int:event_id>/reprocess",
        apis.WebhookEventReprocessApi.as_view(),
        name="webhook-event-reprocess",
    ),
]
