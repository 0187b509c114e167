from agents import mission_apis
from rex_project.routing import route

urlpatterns = [
    route("rex/command", mission_apis.MissionCommandApi.as_view(), name="mission-command"),
    route("rex/command/<int:mission_id>", mission_apis.MissionDetailApi.as_view(), name="mission-detail"),
    route("rex/command/<int:mission_id>/cancel", mission_apis.MissionCancelApi.as_view(), name="mission-cancel"),
    route("rex/stats", mission_apis.StatsApi.as_view(), name="rex-stats"),
    route("agent/status", mission_apis.AgentStatusApi.as_view(), name="agent-status"),
    route("agent/mission", mission_apis.AgentMissionUpdateApi.as_view(), name="agent-mission"),
]
