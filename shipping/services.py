"""Writes of the shipping app: hand paid orders to the partner, follow them to delivery."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from outbox import publish
from shipping import client
from shipping.models import Shipment

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
def shipment_create(*, order_id: str) -> Shipment:
    """Create the shipment at the partner, once. A permanent refusal or exhausted retries end in
    shipment.failed (billing refunds); success in shipment.created."""
    shipment = Shipment.objects.select_for_update().get(order_id=order_id)
    if shipment.status != Shipment.Status.PENDING:
        return shipment
    shipment.attempts += 1
    try:
        result = client.create_shipment(
            reference=str(order_id),
            recipient=shipment.address,
            idempotency_key=shipment.idempotency_key,
        )
    except client.PartnerError as exc:
        shipment.status = Shipment.Status.FAILED
        shipment.last_error = str(exc)
        shipment.failure_reason = str(exc)[:500]
        shipment.save()
        publish(
            "shipment.failed",
            order_id,
            {"order_id": str(order_id), "reason": shipment.failure_reason, "code": exc.code},
        )
        logger.warning("order %s: shipment failed: %s", order_id, exc)
        return shipment
    shipment.status = Shipment.Status.CREATED
    shipment.partner_shipment_id = result.id
    shipment.carrier = result.carrier
    shipment.tracking_number = result.tracking_number
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


@transaction.atomic
def shipment_poll(*, shipment_id: int) -> Shipment:
    """Ask the partner where an open shipment is; delivery publishes shipment.delivered."""
    shipment = Shipment.objects.select_for_update().get(pk=shipment_id)
    if shipment.status not in (Shipment.Status.CREATED, Shipment.Status.IN_TRANSIT):
        return shipment
    result = client.get_shipment(shipment.partner_shipment_id)
    shipment.last_polled_at = timezone.now()
    if result.status == "delivered":
        shipment.status = Shipment.Status.DELIVERED
        publish(
            "shipment.delivered",
            shipment.order_id,
            {"order_id": str(shipment.order_id), "tracking_number": shipment.tracking_number},
        )
    elif result.status == "in_transit":
        shipment.status = Shipment.Status.IN_TRANSIT
    shipment.save()
    return shipment
