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


@transaction.atomic(savepoint=False)  # in order.placed's delivery: no savepoint of its own
def shipment_prepare(*, order_id: str, order_number: str, address: dict[str, str]) -> Shipment:
    """The order's shipment, to be made once it is paid (`pending`). Read, then insert, as
    billing's `payment_prepare` (no get_or_create savepoint)."""
    return Shipment.objects.filter(order_id=order_id).first() or Shipment.objects.create(
        order_id=order_id,
        order_number=order_number,
        address=address,
        idempotency_key=shipment_key(order_id),
    )


@transaction.atomic(durable=True)
def shipment_request(*, order_id: str) -> Shipment:
    """Phase 1 of creating the shipment, committed before any remote call: the order is paid, so
    its shipment is to be made (`pending` -> `creating`)."""
    shipment = Shipment.objects.select_for_update().filter(order_id=order_id).first()
    if shipment is None:
        raise RetryLater(f"order {order_id}: order.placed not handled here yet (no shipment)")
    if shipment.status == Shipment.Status.PENDING:
        shipment.status = Shipment.Status.CREATING
        shipment.save(update_fields=["status", "updated_at"])
    return shipment


@transaction.atomic
def shipment_cancel(*, order_id: str, reason: str = "") -> Shipment | None:
    """The order was cancelled: a shipment still waiting for the payment (`pending`) will never
    be made, and says so (`cancelled`), instead of reading "pending" forever; a later
    payment.succeeded finds it not `pending` and creates nothing. One already being created or
    made is left as it is (the partner has it)."""
    shipment = Shipment.objects.select_for_update().filter(order_id=order_id).first()
    if shipment is None or shipment.status != Shipment.Status.PENDING:
        return shipment
    shipment.status = Shipment.Status.CANCELLED
    shipment.failure_reason = (reason or "order cancelled")[:500]
    shipment.save(update_fields=["status", "failure_reason", "updated_at"])
    logger.info("order %s: shipment cancelled before it was made", order_id)
    return shipment


def shipment_create_at_partner(
    *, order_id: str, attempt: int = 1, shipment: Shipment | None = None
) -> Shipment:
    """Phases 2 and 3: create the shipment at the partner, then record the answer. Runs with no
    transaction open and no row locked (after `shipment_request` committed; on every delivery of
    payment.succeeded until one succeeds), so a slow or paused partner holds nothing of ours.

    Idempotent: a shipment that is no longer `creating` is left alone; the partner answers a
    repeated Idempotency-Key (`chargeflow:order:<id>:shipment`) with the shipment it already made,
    so a crash after the partner created it and before we recorded it resumes safely.

    Failure, decided here (docs/shipping.md):
    - a permanent refusal (e.g. undeliverable address) fails the shipment at once:
      shipment.failed, billing refunds;
    - a transient failure (the client's own retries exhausted on timeouts, dropped connections,
      5xx) is recorded on the shipment and raised, so the delivery is retried with backoff; on
      `attempt` SHIPPING_CREATE_MAX_ATTEMPTS it fails the shipment like a permanent one;
    - a configuration failure (401/403: our API key) is recorded and always raised: never refund
      a customer for our own mistake. The order stays paid, the cause shows under failed
      deliveries.

    `shipment`: the row as `shipment_request` just committed it (not read again).
    """
    if shipment is None:
        shipment = Shipment.objects.filter(order_id=order_id).first()
    if shipment is None:
        raise RetryLater(f"order {order_id}: order.placed not handled here yet (no shipment)")
    if shipment.status != Shipment.Status.CREATING:
        return shipment
    try:
        result = client.create_shipment(
            reference=str(order_id),
            recipient=shipment.address,
            idempotency_key=shipment.idempotency_key,
        )
    except client.PartnerError as exc:
        give_up = attempt >= settings.SHIPPING_CREATE_MAX_ATTEMPTS
        if exc.misconfigured or not (exc.permanent or give_up):
            _shipment_attempt_record(shipment.pk, attempt=attempt, error=str(exc))
            logger.warning(
                "order %s: shipment attempt %s/%s failed, will retry: %s",
                order_id,
                attempt,
                settings.SHIPPING_CREATE_MAX_ATTEMPTS,
                exc,
            )
            raise
        reason = str(exc) if exc.permanent else f"shipping partner unavailable: {exc}"
        return _shipment_fail(shipment.pk, attempt=attempt, reason=reason, code=exc.code)
    return _shipment_created(shipment.pk, attempt=attempt, result=result)


def shipment_create(*, order_id: str, attempt: int = 1) -> Shipment:
    """Create the order's shipment at the partner, once, in three phases, with no transaction
    open (the payment.succeeded subscriber, a shell, a test): record the intent, call the
    partner, record the answer."""
    shipment = shipment_request(order_id=order_id)
    return shipment_create_at_partner(order_id=order_id, attempt=attempt, shipment=shipment)


def _locked_creating(shipment_pk: int) -> Shipment | None:
    """The shipment, locked, if it is still `creating`: None when another delivery recorded the
    answer first (a concurrent duplicate got the same shipment from the partner)."""
    return (
        Shipment.objects.select_for_update()
        .filter(pk=shipment_pk, status=Shipment.Status.CREATING)
        .first()
    )


def _count_attempt(shipment: Shipment, attempt: int) -> None:
    shipment.attempts = max(attempt, shipment.attempts + 1)


def _shipment_attempt_record(shipment_pk: int, *, attempt: int, error: str) -> None:
    with transaction.atomic(durable=True):
        shipment = _locked_creating(shipment_pk)
        if shipment is None:
            return
        _count_attempt(shipment, attempt)
        shipment.last_error = error
        shipment.save(update_fields=["attempts", "last_error", "updated_at"])


def _shipment_created(
    shipment_pk: int, *, attempt: int, result: client.PartnerShipment
) -> Shipment:
    with transaction.atomic(durable=True):
        shipment = _locked_creating(shipment_pk)
        if shipment is None:
            return Shipment.objects.get(pk=shipment_pk)
        _count_attempt(shipment, attempt)
        shipment.status = Shipment.Status.CREATED
        shipment.partner_shipment_id = result.id
        shipment.carrier = result.carrier
        shipment.tracking_number = result.tracking_number
        shipment.last_error = ""
        shipment.save()
        publish(
            "shipment.created",
            shipment.order_id,
            {
                "order_id": str(shipment.order_id),
                "carrier": result.carrier,
                "tracking_number": result.tracking_number,
                "partner_shipment_id": result.id,
            },
        )
    logger.info(
        "order %s: shipped with %s %s", shipment.order_id, result.carrier, result.tracking_number
    )
    return shipment


def _shipment_fail(shipment_pk: int, *, attempt: int, reason: str, code: str) -> Shipment:
    with transaction.atomic(durable=True):
        shipment = _locked_creating(shipment_pk)
        if shipment is None:
            return Shipment.objects.get(pk=shipment_pk)
        _count_attempt(shipment, attempt)
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


def shipment_poll(*, shipment_id: int) -> Shipment | None:
    """Ask the partner where an open shipment is; delivery publishes shipment.delivered.

    The partner is asked with no transaction open; the answer is recorded in a short transaction
    of its own, under the row lock, only moving the shipment forward (two pollers asking at once
    publish shipment.delivered once). None if the shipment is not open (any more). Partner errors
    propagate (the caller logs them and the next beat run tries again)."""
    shipment = Shipment.objects.filter(pk=shipment_id, status__in=OPEN_STATUSES).first()
    if shipment is None:
        return None
    result = client.get_shipment(shipment.partner_shipment_id)
    with transaction.atomic(durable=True):
        shipment = (
            Shipment.objects.select_for_update()
            .filter(pk=shipment_id, status__in=OPEN_STATUSES)
            .first()
        )
        if shipment is None:
            return None
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
