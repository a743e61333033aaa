import pytest

from shipping.client import partner_session


@pytest.fixture
def fast_partner(settings, partner):
    """The simulator with the client's backoff shrunk to milliseconds (same policy, faster)."""
    settings.SHIPPING_PARTNER_BACKOFF_FACTOR = 0.01
    settings.SHIPPING_PARTNER_BACKOFF_MAX = 0.05
    settings.SHIPPING_PARTNER_READ_TIMEOUT = 2
    partner_session.cache_clear()
    yield partner
    partner_session.cache_clear()


@pytest.fixture
def client_settings(settings):
    """Change client settings inside a test, then rebuild the pooled session."""

    def apply(**values):
        for name, value in values.items():
            setattr(settings, name, value)
        partner_session.cache_clear()

    return apply
