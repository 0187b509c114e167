from rex_project.routing import route
from webhooks.views import sendgrid_events, twilio_messages

urlpatterns = [
    route("webhooks/sendgrid", sendgrid_events, name="webhook-sendgrid"),
    route("webhook/sendgrid", sendgrid_events, name="webhook-sendgrid-alias"),
    route("webhooks/twilio", twilio_messages, name="webhook-twilio"),
    route("webhook/twilio", twilio_messages, name="webhook-twilio-alias"),
]
