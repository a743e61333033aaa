"""Plain values the outbox hands to other apps (no models: importable at any time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Redelivery:
    """What `redeliver()` did: the failed deliveries sent again ("subscriber <- event type"),
    the unpublished events made due now, the published events sent again."""

    redelivered: tuple[str, ...] = ()
    rearmed: int = 0
    republished: int = 0

    @property
    def anything(self) -> bool:
        return bool(self.redelivered or self.rearmed or self.republished)


@dataclass(frozen=True)
class Failure:
    subscriber: str
    event_type: str
    attempts: int
    last_error: str
    first_failed_at: datetime
    last_failed_at: datetime


@dataclass(frozen=True)
class Unpublished:
    event_type: str
    status: str
    attempts: int
    last_error: str


@dataclass(frozen=True)
class Undelivered:
    """An aggregate's delivery trouble: subscribers that keep failing, events not yet sent."""

    failures: tuple[Failure, ...]
    unpublished: tuple[Unpublished, ...]
