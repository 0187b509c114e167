from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from agents.unsubscribe import unsubscribe
from rex_project.health import health

admin.site.site_header = "REX operations"
admin.site.site_title = "REX"
admin.site.index_title = "Leads, missions, outcomes and models"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", health, name="health"),
    # Public, no login: the signed token in the path is the proof (RFC 8058 one-click POSTs here too).
    path("unsubscribe/<str:token>", unsubscribe, name="unsubscribe"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/", include("agents.urls")),
    path("api/", include("outcomes.urls")),
    path("api/", include("webhooks.api_urls")),
    path("", include("agents.mission_urls")),
    path("", include("agents.domain_urls")),
    path("", include("webhooks.urls")),
    path("", include("training.urls")),
]
