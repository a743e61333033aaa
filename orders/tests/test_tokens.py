"""The order's access token and link token are Django's salted_hmac and TimestampSigner, computed
with a keyed HMAC kept per salt and SECRET_KEY (orders/tokens.py; issue 11): the same values, and
a changed SECRET_KEY changes them."""

from __future__ import annotations

import uuid

from django.core import signing
from django.utils.crypto import salted_hmac

from orders import tokens


def test_the_access_token_is_djangos_salted_hmac(settings):
    order_id = uuid.uuid4()
    expected = salted_hmac(tokens.SALT, str(order_id), algorithm="sha256").hexdigest()
    assert tokens.order_access_token(order_id) == expected
    assert tokens.order_access_token(str(order_id)) == expected
    assert tokens.order_token_valid(order_id, expected)

    settings.SECRET_KEY = "another-secret-key-0123456789-0123456789"
    assert tokens.order_access_token(order_id) != expected
    assert tokens.order_access_token(order_id) == (
        salted_hmac(tokens.SALT, str(order_id), algorithm="sha256").hexdigest()
    )
    assert not tokens.order_token_valid(order_id, expected)


def test_the_link_token_is_djangos_timestamp_signature(settings, monkeypatch):
    order_id = uuid.uuid4()
    monkeypatch.setattr(tokens.time, "time", lambda: 1_790_000_000.7)
    monkeypatch.setattr(signing.time, "time", lambda: 1_790_000_000.7)
    signed = signing.TimestampSigner(salt=tokens.LINK_SALT).sign(str(order_id))
    assert tokens.order_link_token(order_id) == signed.split(":", 1)[1]

    settings.SECRET_KEY = "another-secret-key-0123456789-0123456789"
    resigned = signing.TimestampSigner(salt=tokens.LINK_SALT).sign(str(order_id))
    assert resigned != signed
    assert tokens.order_link_token(order_id) == resigned.split(":", 1)[1]


def test_a_link_token_is_accepted_and_a_tampered_one_is_not(db):
    from orders.tests.factories import OrderFactory

    order = OrderFactory()
    token = tokens.order_link_token(order.id)
    assert tokens.order_link_valid(order, token)
    timestamp, signature = token.split(":")
    flipped = "A" if signature[-1] != "A" else "B"
    assert not tokens.order_link_valid(order, f"{timestamp}:{signature[:-1]}{flipped}")
    assert not tokens.order_link_valid(OrderFactory(), token)
