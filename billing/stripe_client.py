"""The Stripe client, configured from settings (localstripe locally, Stripe in production)."""

from __future__ import annotations

from functools import lru_cache

import stripe
from django.conf import settings


@lru_cache(maxsize=1)
def stripe_client() -> stripe.StripeClient:
    base = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else {}
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses=base,
        max_network_retries=2,
        http_client=stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_SECONDS),
    )
