from outbox import Event, subscriber
from shipping import services

SHIPMENT_CREATE_SUBSCRIBER = "shipping.on_payment_succeeded"


@subscriber("order.placed")
def on_order_placed(event: Event) -> None:
    services.shipment_prepare(
        order_id=event.aggregate_id,
        order_number=event.data["number"],
        address=event.data["shipping_address"],
    )


@subscriber("order.cancelled")
def on_order_cancelled(event: Event) -> None:
    services.shipment_cancel(order_id=event.aggregate_id, reason=event.data.get("reason", ""))


@subscriber("payment.succeeded", name=SHIPMENT_CREATE_SUBSCRIBER, transactional=False)
def on_payment_succeeded(event: Event) -> None:
    """No transaction open: record the intent (`creating`), call the partner, record the
    answer, each phase committing on its own (docs/shipping.md). The outbox counts the
    deliveries (retries and redeliveries, `event.attempt`): the service gives up on a transient
    partner failure at SHIPPING_CREATE_MAX_ATTEMPTS."""
    services.shipment_create(order_id=event.aggregate_id, attempt=event.attempt)
