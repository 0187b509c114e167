"""Outcome and analytics API routes, included under /api/."""

from outcomes import apis
from rex_project.routing import route

urlpatterns = [
    route("outcomes", apis.OutcomeListApi.as_view(), name="outcome-list"),
    route("outcomes/<int:outcome_id>", apis.OutcomeDetailApi.as_view(), name="outcome-detail"),
    route("analytics/winning-strategies", apis.WinningStrategiesApi.as_view(), name="analytics-winning-strategies"),
    route("analytics/agent-performance", apis.AgentPerformanceApi.as_view(), name="analytics-agent-performance"),
]
