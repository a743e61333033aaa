"""Transactional outbox, relay, inbox and subscriber registry. Knows nothing about orders.

from outbox import publish, subscriber

@subscriber("order.placed")
def on_order_placed(event: Event) -> None: ...

with transaction.atomic():
    ...business writes...
    publish("order.placed", order.id, {...})
"""

from outbox.events import Event, RetryLater
from outbox.registry import subscriber


def publish(event_type, aggregate_id, data, *, version=1):
    """Insert an event into the outbox, in the caller's transaction (refuses to run outside one)."""
    from outbox.services import event_publish

    return event_publish(
        event_type=event_type, aggregate_id=aggregate_id, data=data, version=version
    )


__all__ = ("Event", "RetryLater", "publish", "subscriber")
