from agents import apis
from rex_project.routing import route

urlpatterns = [
    route("me", apis.MeApi.as_view(), name="me"),
    route("leads", apis.LeadListCreateApi.as_view(), name="lead-list"),
    route("leads/import", apis.LeadImportApi.as_view(), name="lead-import"),
    route("leads/<int:lead_id>", apis.LeadDetailApi.as_view(), name="lead-detail"),
    route("campaigns", apis.CampaignListCreateApi.as_view(), name="campaign-list"),
    route("campaigns/<int:campaign_id>", apis.CampaignDetailApi.as_view(), name="campaign-detail"),
]
