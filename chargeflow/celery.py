"""The Celery application. Configuration lives in settings under the CELERY_ namespace."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargeflow.settings")

app = Celery("chargeflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Workers keep the SQS messages they hold invisible with short, renewed leases (see the module).
app.steps["consumer"].add("chargeflow.sqs_heartbeat:VisibilityHeartbeat")

# Every line a task writes names the task (chargeflow.logcontext); an event delivery adds the
# order, event and subscriber on top (outbox.observe).
_bound_tasks: dict[str, object] = {}


@task_prerun.connect
def _bind_task(task_id=None, task=None, **kwargs):
    from chargeflow import logcontext

    _bound_tasks[task_id] = logcontext.enter(task=getattr(task, "name", None))


@task_postrun.connect
def _unbind_task(task_id=None, **kwargs):
    from chargeflow import logcontext

    token = _bound_tasks.pop(task_id, None)
    if token is not None:
        logcontext.leave(token)


@worker_init.connect
def _serve_metrics(**kwargs):
    """METRICS_PORT set: the worker exposes its handler metrics there (prefork children need
    PROMETHEUS_MULTIPROC_DIR, shared with the worker, to be counted)."""
    from django.conf import settings

    if settings.METRICS_PORT:
        from chargeflow.metrics import serve

        serve(settings.METRICS_PORT)
