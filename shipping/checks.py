"""System checks: the shipping retry budget must fit the Celery limits it runs under."""

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.compatibility)
def check_retry_budget(app_configs, **kwargs):
    errors = []
    # outbox.deliver runs a message at most CELERY_TASK_MAX_RETRIES + 1 times before the DLQ:
    # the shipment must have failed (and the refund started) by then.
    if settings.SHIPPING_CREATE_MAX_ATTEMPTS > settings.CELERY_TASK_MAX_RETRIES + 1:
        errors.append(
            checks.Warning(
                "SHIPPING_CREATE_MAX_ATTEMPTS exceeds the deliveries Celery makes "
                "(CELERY_TASK_MAX_RETRIES + 1): an unreachable partner would leave paid orders "
                "in the dead-letter queue instead of refunding them.",
                id="shipping.W001",
            )
        )
    retries = settings.SHIPPING_PARTNER_RETRIES
    worst = (retries + 1) * (
        settings.SHIPPING_PARTNER_CONNECT_TIMEOUT + settings.SHIPPING_PARTNER_READ_TIMEOUT
    ) + sum(
        min(settings.SHIPPING_PARTNER_BACKOFF_MAX, settings.SHIPPING_PARTNER_BACKOFF_FACTOR * 2**n)
        + settings.SHIPPING_PARTNER_BACKOFF_FACTOR
        for n in range(retries)
    )
    if worst >= settings.CELERY_TASK_SOFT_TIME_LIMIT:
        errors.append(
            checks.Warning(
                f"One partner call may take up to {worst:.0f}s with its retries, more than "
                f"CELERY_TASK_SOFT_TIME_LIMIT ({settings.CELERY_TASK_SOFT_TIME_LIMIT}s).",
                hint="Lower SHIPPING_PARTNER_RETRIES or the timeouts.",
                id="shipping.W002",
            )
        )
    return errors
