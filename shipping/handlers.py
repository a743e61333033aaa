from outbox import Event, subscriber
from shipping import selectors, services

SHIPMENT_CREATE_SUBSCRIBER = "shipping.on_payment_succeeded"


@subscriber("order.placed")
def on_order_placed(event: Event) -> None:
    services.shipment_prepare(
        order_id=event.aggregate_id,
        order_number=event.data["number"],
        address=event.data["shipping_address"],
    )


@subscriber("payment.succeeded", name=SHIPMENT_CREATE_SUBSCRIBER, transactional=False)
def on_payment_succeeded(event: Event) -> None:
    """No transaction open: record the intent (`creating`), call the partner, record the
    answer, each phase committing on its own (docs/shipping.md)."""
    services.shipment_create(
        order_id=event.aggregate_id,
        attempt=selectors.delivery_attempt(
            event_id=event.id, subscriber=SHIPMENT_CREATE_SUBSCRIBER
        ),
    )
