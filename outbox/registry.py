"""The subscriber registry: which handler consumes which event type, on which app's queue.

Handlers register with the `@subscriber` decorator in their app's `handlers.py`, imported from the
app's `AppConfig.ready()`. The relay asks the registry where to send each event; the worker asks it
which function to call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from outbox.events import Event

Handler = Callable[[Event], None]


@dataclass(frozen=True)
class Subscriber:
    name: str  # "<app>.<function>", stable: it is half of the inbox deduplication key
    event_type: str
    app: str
    handler: Handler
    # False for a handler that calls out (Stripe, the partner, email, storage): it runs with no
    # transaction open and resumes from its own committed phases; see outbox/delivery.py.
    transactional: bool = True

    @property
    def queue(self) -> str:
        return settings.QUEUE_NAMES[self.app]


_subscribers: dict[str, Subscriber] = {}
# subscribers_for() per event type, built on first use (the relay asks for every row it sends).
_by_type: dict[str, list[Subscriber]] = {}


def subscriber(
    event_type: str,
    *,
    name: str | None = None,
    app: str | None = None,
    transactional: bool = True,
) -> Callable[[Handler], Handler]:
    """Register a handler for `event_type`, on the queue of its app (the handler's top package
    unless `app` is given). `transactional=False`: the handler makes remote calls in atomic
    phases of its own and must be idempotent through its own records (outbox/delivery.py)."""

    def register(handler: Handler) -> Handler:
        app_name = app or handler.__module__.split(".")[0]
        sub = Subscriber(
            name=name or f"{app_name}.{handler.__name__}",
            event_type=event_type,
            app=app_name,
            handler=handler,
            transactional=transactional,
        )
        existing = _subscribers.get(sub.name)
        if existing and existing.handler is not handler:
            raise ValueError(f"subscriber name {sub.name!r} is registered twice")
        _subscribers[sub.name] = sub
        _by_type.clear()
        return handler

    return register


def subscribers_for(event_type: str) -> list[Subscriber]:
    found = _by_type.get(event_type)
    if found is None:
        found = _by_type[event_type] = sorted(
            (s for s in _subscribers.values() if s.event_type == event_type), key=lambda s: s.name
        )
    return list(found)


def get_subscriber(name: str) -> Subscriber:
    try:
        return _subscribers[name]
    except KeyError:
        raise LookupError(f"no subscriber named {name!r}") from None
