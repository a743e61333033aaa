"""Celery tasks of billing: thin wrappers over services."""

from celery import shared_task

from billing.services import payment_actions_expire_due


@shared_task(name="billing.expire_actions")
def expire_actions() -> int:
    return payment_actions_expire_due()
