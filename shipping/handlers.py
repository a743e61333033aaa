from outbox import Event, subscriber
from shipping import services


@subscriber("order.placed")
def on_order_placed(event: Event) -> None:
    services.shipment_prepare(
        order_id=event.aggregate_id,
        order_number=event.data["number"],
        address=event.data["shipping_address"],
    )


@subscriber("payment.succeeded")
def on_payment_succeeded(event: Event) -> None:
    services.shipment_create(order_id=event.aggregate_id)
