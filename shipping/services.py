"""Writes of the shipping app: hand paid orders to the partner, follow them to delivery."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from outbox import RetryLater, publish
from shipping import client
from shipping.models import OPEN_STATUSES, Shipment

logger = logging.getLogger(__name__)


def shipment_key(order_id) -> str:
    return f"chargeflow:order:{order_id}:shipment"


@transaction.atomic
def shipment_prepare(*, order_id: str, order_number: str, address: dict[str, str]) -> Shipment:
    shipment, _ = Shipment.objects.get_or_create(
        order_id=order_id,
        defaults={
            "order_number": order_number,
            "address": address,
            "idempotency_key": shipment_key(order_id),
        },
    )
    return shipment


@transaction.atomic
def shipment_create(*, order_id: str, attempt: int = 1) -> Shipment:
    """Create the shipment at the partner, once (the Idempotency-Key makes a retried create
    return the shipment already made). Success publishes shipment.created.

    Failure, decided here (docs/shipping.md):
    - a permanent refusal (e.g. undeliverable address) fails the shipment at once:
      shipment.failed, billing refunds;
    - a transient failure (the client's own retries exhausted on timeouts, dropped connections,
      5xx) raises, so the inbox transaction rolls back and the delivery is retried with backoff;
      on `attempt` SHIPPING_CREATE_MAX_ATTEMPTS it fails the shipment like a permanent one;
    - a configuration failure (401/403: our API key) always raises: never refund a customer for
      our own mistake. The order stays paid, the cause shows under failed deliveries.
    """
    shipment = Shipment.objects.select_for_update().filter(order_id=order_id).first()
    if shipment is None:
        raise RetryLater(f"order {order_id}: order.placed not handled here yet (no shipment)")
    if shipment.status != Shipment.Status.PENDING:
        return shipment
    shipment.attempts = max(attempt, shipment.attempts + 1)
    try:
        result = client.create_shipment(
            reference=str(order_id),
            recipient=shipment.address,
            idempotency_key=shipment.idempotency_key,
        )
    except client.PartnerError as exc:
        give_up = attempt >= settings.SHIPPING_CREATE_MAX_ATTEMPTS
        if exc.misconfigured or not (exc.permanent or give_up):
            logger.warning(
                "order %s: shipment attempt %s/%s failed, will retry: %s",
                order_id,
                attempt,
                settings.SHIPPING_CREATE_MAX_ATTEMPTS,
                exc,
            )
            raise
        reason = str(exc) if exc.permanent else f"shipping partner unavailable: {exc}"
        return _shipment_fail(shipment, reason=reason, code=exc.code)
    shipment.status = Shipment.Status.CREATED
    shipment.partner_shipment_id = result.id
    shipment.carrier = result.carrier
    shipment.tracking_number = result.tracking_number
    shipment.last_error = ""
    shipment.save()
    publish(
        "shipment.created",
        order_id,
        {
            "order_id": str(order_id),
            "carrier": result.carrier,
            "tracking_number": result.tracking_number,
            "partner_shipment_id": result.id,
        },
    )
    logger.info("order %s: shipped with %s %s", order_id, result.carrier, result.tracking_number)
    return shipment


def _shipment_fail(shipment: Shipment, *, reason: str, code: str) -> Shipment:
    shipment.status = Shipment.Status.FAILED
    shipment.last_error = reason
    shipment.failure_reason = reason[:500]
    shipment.save()
    publish(
        "shipment.failed",
        shipment.order_id,
        {"order_id": str(shipment.order_id), "reason": shipment.failure_reason, "code": code},
    )
    logger.warning("order %s: shipment failed (%s): %s", shipment.order_id, code, reason)
    return shipment


@transaction.atomic
def shipment_poll(*, shipment_id: int) -> Shipment | None:
    """Ask the partner where an open shipment is; delivery publishes shipment.delivered.

    Skips a shipment another poller holds (None). Partner errors propagate (the caller logs
    them and the next beat run tries again)."""
    shipment = (
        Shipment.objects.select_for_update(skip_locked=True)
        .filter(pk=shipment_id, status__in=OPEN_STATUSES)
        .first()
    )
    if shipment is None:
        return None
    result = client.get_shipment(shipment.partner_shipment_id)
    shipment.last_polled_at = timezone.now()
    if result.status == "delivered":
        shipment.status = Shipment.Status.DELIVERED
        shipment.delivered_at = timezone.now()
        publish(
            "shipment.delivered",
            shipment.order_id,
            {
                "order_id": str(shipment.order_id),
                "carrier": shipment.carrier,
                "tracking_number": shipment.tracking_number,
            },
        )
        logger.info("order %s: delivered (%s)", shipment.order_id, shipment.tracking_number)
    elif result.status == "in_transit":
        shipment.status = Shipment.Status.IN_TRANSIT
    shipment.save()
    return shipment
