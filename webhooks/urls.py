from rex_project.routing import route
from webhooks.views import crm_deals, crm_meetings, inbox_sync, sendgrid_events, twilio_messages

urlpatterns = [
    route("webhooks/sendgrid", sendgrid_events, name="webhook-sendgrid"),
    route("webhook/sendgrid", sendgrid_events, name="webhook-sendgrid-alias"),
    route("webhooks/twilio", twilio_messages, name="webhook-twilio"),
    route("webhook/twilio", twilio_messages, name="webhook-twilio-alias"),
    route("inbox/sync", inbox_sync, name="inbox-sync"),
    route("webhooks/crm/deals", crm_deals, name="webhook-crm-deals"),
    route("webhooks/crm/meetings", crm_meetings, name="webhook-crm-meetings"),
]
