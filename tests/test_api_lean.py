"""The lean API checkout (orders/api.py `_plain_checkout`, issue 11): a plain anonymous JSON
request to POST /api/v1/orders/ is answered without DRF's request and response machinery, with
the same status, headers and body, byte for byte, as DRF's `OrderCreateView.post`; anything else
is DRF's. Each answer below is produced both ways (`API_CHECKOUT_LEAN` on and off) and compared;
only what differs between two orders (id, number, token, times) is normalised."""

from __future__ import annotations

import contextlib
import json
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client, RequestFactory

from orders import api as order_api
from orders.models import Order, Product
from tests.test_api import BODY

pytestmark = pytest.mark.django_db(transaction=True)

CORRELATION = "lean-test-correlation"


def _post(client, body, key, *, content_type="application/json", **extra):
    headers = {"HTTP_X_CORRELATION_ID": CORRELATION, **extra}
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post("/api/v1/orders/", raw, content_type=content_type, **headers)


def _answer(response) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers in order, body; an order's own values replaced by placeholders."""
    content = response.content
    if response.status_code == 201:
        data = json.loads(content)
        swaps = [data["id"], data["number"], data["access_token"]]
        swaps += [entry["at"] for entry in data["timeline"]]
        for i, value in enumerate(swaps):
            content = content.replace(value.encode(), f"<{i}>".encode())
    return response.status_code, list(response.headers.items()), content


@contextlib.contextmanager
def _drf_posts():
    """The calls to DRF's `OrderCreateView.post` made inside the block (a list)."""
    calls, original = [], order_api.OrderCreateView.post

    def counted(self, request, *args, **kwargs):
        calls.append(request)
        return original(self, request, *args, **kwargs)

    with mock.patch.object(order_api.OrderCreateView, "post", counted):
        yield calls


def _both(settings, steps, *, lean_must_answer=True):
    """Run `steps(client)` (a list of responses) with the lean path on and off, on fresh keys
    and a fresh throttle count each time; returns the two lists of answers."""
    answers = {}
    for lean in (True, False):
        settings.API_CHECKOUT_LEAN = lean
        cache.clear()
        client = Client()
        with _drf_posts() as drf_post:
            answers[lean] = [_answer(r) for r in steps(client, "lean" if lean else "drf")]
        if lean and lean_must_answer:
            assert len(drf_post) == 0, "the lean path handed the request to DRF"
    return answers[True], answers[False]


def test_a_new_order_is_the_same_answer_byte_for_byte(settings, catalog):
    lean, drf = _both(settings, lambda c, tag: [_post(c, BODY, f"{tag}-new")])
    assert lean[0][0] == 201
    assert lean == drf
    headers = dict(lean[0][1])
    assert headers["Content-Type"] == "application/json"
    assert headers["Vary"] == "Accept, Cookie"
    assert headers["Allow"] == "POST, OPTIONS"
    assert headers["X-Correlation-ID"] == CORRELATION
    assert "Content-Security-Policy" in headers and headers["X-Frame-Options"] == "DENY"


def test_without_a_key_and_in_a_json_charset_it_is_the_same(settings, catalog):
    def steps(client, tag):
        return [
            _post(client, BODY, None),
            _post(client, BODY, f"{tag}-utf8", content_type="application/json; charset=utf-8"),
            _post(client, BODY, f"{tag}-accept", HTTP_ACCEPT="application/json"),
        ]

    lean, drf = _both(settings, steps)
    assert [a[0] for a in lean] == [201, 201, 201]
    assert lean == drf


def test_a_replay_a_conflict_a_shortage_and_an_unknown_sku_are_drfs_answers(settings, catalog):
    other = {**BODY, "email": "someone.else@example.com"}
    too_many = {**BODY, "items": [{"sku": "MIC-01", "quantity": 999}]}  # 20 in stock
    unknown = {
        **BODY,
        "items": [{"sku": "MOUSE-01", "quantity": 1}, {"sku": "NOPE", "quantity": 1}],
    }

    def steps(client, tag):
        return [
            _post(client, BODY, f"{tag}-k"),
            _post(client, BODY, f"{tag}-k"),  # the same order, Idempotent-Replayed
            _post(client, other, f"{tag}-k"),  # 409: the key was used for another body
            _post(client, too_many, f"{tag}-short"),
            _post(client, unknown, f"{tag}-unknown"),
        ]

    lean, drf = _both(settings, steps)
    assert [a[0] for a in lean] == [201, 201, 409, 409, 400]
    assert ("Idempotent-Replayed", "true") in lean[1][1]
    assert lean == drf
    assert Order.objects.count() == 2  # one per path: the replays placed nothing


def test_the_throttles_count_and_refuse_as_drfs(settings, catalog):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "checkout": "2/min",
            "checkout_ip": "3/min",
        },
    }

    def steps(client, tag):
        return [_post(client, BODY, f"{tag}-{i}") for i in range(3)]

    lean, drf = _both(settings, steps)
    assert [a[0] for a in lean] == [201, 201, 429]
    assert "Retry-After" in dict(lean[2][1])
    assert lean == drf


def test_an_unexpected_error_is_the_same_logged_500(settings, catalog):
    def steps(client, tag):
        with mock.patch.object(order_api, "order_checkout", side_effect=RuntimeError("boom")):
            return [_post(client, BODY, f"{tag}-boom")]

    lean, drf = _both(settings, steps, lean_must_answer=False)
    assert lean[0][0] == 500
    assert lean == drf


@pytest.mark.parametrize(
    "variant",
    [
        {"HTTP_ACCEPT": "text/html"},  # the browsable API
        {"QUERY_STRING": "format=json"},
        {"content_type": "application/x-www-form-urlencoded"},
        {"body": b'{"email": '},  # malformed JSON
        {"body": json.dumps({**BODY, "email": " padded@example.com"})},  # not in normal form
        {"body": json.dumps({**BODY, "items": [{"sku": "MOUSE-01", "quantity": "1"}]})},
        {"body": json.dumps({**BODY, "payment_method": None, "payment_intent": "pi_x"})},
        {
            "body": json.dumps(
                {**BODY, "extra": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}
            )
        },
        {"key": "x" * 256},  # an Idempotency-Key DRF's view refuses
        {"HTTP_AUTHORIZATION": "Basic Zm9vOmJhcg=="},
    ],
)
def test_anything_but_a_plain_request_is_drfs(settings, catalog, variant):
    variant = dict(variant)
    body = variant.pop("body", json.dumps(BODY))
    key = variant.pop("key", "variant")
    content_type = variant.pop("content_type", "application/json")
    query = variant.pop("QUERY_STRING", "")
    path = "/api/v1/orders/" + (f"?{query}" if query else "")
    request = RequestFactory().post(
        path, body, content_type=content_type, HTTP_IDEMPOTENCY_KEY=key, **variant
    )
    request.user = mock.Mock(is_authenticated=False)
    assert order_api._plain_request(request) is None
    with _drf_posts() as drf_post:
        response = Client().post(
            path, body, content_type=content_type, HTTP_IDEMPOTENCY_KEY=key, **variant
        )
    assert response.status_code != 500
    # DRF's view answered (Basic authentication fails before `post`: 401/403 from DRF).
    assert len(drf_post) == 1 or response.status_code in (401, 403)


def test_a_signed_in_customer_goes_through_drf(settings, catalog):
    user = get_user_model().objects.create_user("ada", "ada@example.com", "a-long-Passphrase-42")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    with _drf_posts() as drf_post:
        response = _post(client, BODY, "signed-in")
    # DRF's SessionAuthentication asks for the CSRF token of a signed-in session: 403 as before.
    assert response.status_code == 403
    assert len(drf_post) == 0
    client = Client()
    client.force_login(user)
    response = _post(client, BODY, "signed-in")
    assert response.status_code == 201
    assert Order.objects.get(idempotency_key="signed-in").customer_id == user.pk


def test_stock_is_taken_once_per_lean_order(settings, catalog):
    mouse = Product.objects.get(sku="MOUSE-01")
    client = Client()
    for i in range(3):
        assert _post(client, BODY, f"stock-{i}").status_code == 201
    assert _post(client, BODY, "stock-0").status_code == 201  # a replay takes nothing
    assert Product.objects.get(pk=mouse.pk).stock == mouse.stock - 3
