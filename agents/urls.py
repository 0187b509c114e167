from agents import apis, message_apis
from rex_project.routing import route

urlpatterns = [
    route("me", apis.MeApi.as_view(), name="me"),
    route("leads", apis.LeadListCreateApi.as_view(), name="lead-list"),
    route("leads/import", apis.LeadImportApi.as_view(), name="lead-import"),
    route("leads/<int:lead_id>", apis.LeadDetailApi.as_view(), name="lead-detail"),
    route("campaigns", apis.CampaignListCreateApi.as_view(), name="campaign-list"),
    route("campaigns/<int:campaign_id>", apis.CampaignDetailApi.as_view(), name="campaign-detail"),
    route("messages", message_apis.MessageListApi.as_view(), name="message-list"),
    route("messages/<int:message_id>", message_apis.MessageDetailApi.as_view(), name="message-detail"),
    route("linkedin-tasks", message_apis.LinkedInTaskListApi.as_view(), name="linkedin-task-list"),
    route(
        "linkedin-tasks/<int:task_id>/complete",
        message_apis.LinkedInTaskCompleteApi.as_view(),
        name="linkedin-task-complete",
    ),
]
