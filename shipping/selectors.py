from uuid import UUID

from outbox.models import FailedDelivery
from shipping.models import OPEN_STATUSES, Shipment


def open_shipment_ids() -> list[int]:
    return list(
        Shipment.objects.filter(status__in=OPEN_STATUSES)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def delivery_attempt(*, event_id: UUID, subscriber: str) -> int:
    """Which attempt at handling this event this is: 1 + the failures the outbox recorded for it
    (committed apart from the handler's own rolled-back transactions, so they survive retries)."""
    failed = (
        FailedDelivery.objects.filter(event_id=event_id, subscriber=subscriber)
        .values_list("attempts", flat=True)
        .first()
    )
    return (failed or 0) + 1
