from agents import domain_apis
from rex_project.routing import route

urlpatterns = [
    route("domain/health", domain_apis.DomainHealthApi.as_view(), name="domain-health"),
    route("domain/rotate", domain_apis.DomainRotateApi.as_view(), name="domain-rotate"),
    route("domain/assign", domain_apis.DomainAssignApi.as_view(), name="domain-assign"),
    route("api/alerts", domain_apis.AlertListApi.as_view(), name="alert-list"),
]
