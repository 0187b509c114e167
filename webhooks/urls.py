from rex_project.routing import route
from webhooks.views import sendgrid_events

urlpatterns = [
    route("webhooks/sendgrid", sendgrid_events, name="webhook-sendgrid"),
    route("webhook/sendgrid", sendgrid_events, name="webhook-sendgrid-alias"),
]
