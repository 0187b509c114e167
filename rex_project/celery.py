"""The Celery app. Configuration lives in settings under the CELERY_ namespace."""

import os

from celery import Celery

from rex_project import broker  # noqa: F401  (registers the embedded broker transport)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rex_project.settings")

app = Celery("rex_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
