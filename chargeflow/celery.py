"""The Celery application. Configuration lives in settings under the CELERY_ namespace."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargeflow.settings")

app = Celery("chargeflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Workers keep the SQS messages they hold invisible with short, renewed leases (see the module).
app.steps["consumer"].add("chargeflow.sqs_heartbeat:VisibilityHeartbeat")
