from rex_project.routing import route
from training import apis

urlpatterns = [
    route("training/run", apis.TrainingRunApi.as_view(), name="training-run"),
    # Any job id: the run's own, or its OpenAI fine-tuning job's (ftjob-…); an unknown one is a JSON 404.
    route("training/status/(?P<job_id>[^/]+)", apis.TrainingStatusApi.as_view(), name="training-status"),
    route("training/models", apis.ModelListApi.as_view(), name="training-models"),
    route("training/deploy/<int:model_id>", apis.ModelDeployApi.as_view(), name="training-deploy"),
    route("training/promote-winner", apis.PromoteWinnerApi.as_view(), name="training-promote-winner"),
    route("training/stats", apis.TrainingStatsApi.as_view(), name="training-stats"),
    route("training/leaderboard", apis.LeaderboardApi.as_view(), name="training-leaderboard"),
]
