"""Exponential backoff, the one formula every retry the project schedules itself uses: Celery
task retries and the quick `RetryLater` ones (outbox.tasks), the relay's publish retries and its
reconnects (outbox.relay), email retries (notifications). In-call HTTP retries inside one
remote call belong to the client library: urllib3's `Retry` for the shipping partner (the same
doubling and cap, its own jitter; shipping/client.py) and the Stripe SDK's two network retries
(billing/stripe_client.py)."""

from __future__ import annotations

import random


def backoff_seconds(attempt: int, *, base: float, cap: float, jitter: bool = True) -> float:
    """The wait before retry number `attempt` (1, 2, 3 …): base, 2·base, 4·base … capped at
    `cap`; with jitter, a uniform draw between half of that and all of it, so that retries of
    many failures do not arrive together."""
    ceiling = min(cap, base * 2 ** min(max(attempt, 1) - 1, 30))
    return random.uniform(ceiling / 2, ceiling) if jitter else ceiling
