from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from rex_project.health import health

admin.site.site_header = "REX operations"
admin.site.site_title = "REX"
admin.site.index_title = "Leads, missions, outcomes and models"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", health, name="health"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/", include("agents.urls")),
    path("", include("agents.mission_urls")),
]
