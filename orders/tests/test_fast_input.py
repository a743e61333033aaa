"""The API checkout's fast input check (`order_create_fast`) never disagrees with the
serializer: whatever it accepts, OrderCreateSerializer accepts with the same validated data;
whatever it does not accept goes to the serializer, which words the 400 (issue 11)."""

from __future__ import annotations

import copy
import json
import random

import pytest

from orders.serializers import OrderCreateSerializer, order_create_fast

VALID = {
    "email": "grace@example.com",
    "shipping_address": {
        "name": "Grace Hopper",
        "line1": "1 Compiler Way",
        "line2": "",
        "city": "Arlington",
        "postal_code": "22201",
        "country": "US",
    },
    "items": [{"sku": "LAPTOP-14", "quantity": 1}, {"sku": "MOUSE-01", "quantity": 3}],
    "payment_method": "pm_card_visa",
}


def _plain(value):
    return json.loads(json.dumps(value))


def _serializer(body):
    serializer = OrderCreateSerializer(data=body)
    return serializer.is_valid(), serializer


def _check(body):
    """The invariant: fast accepts => the serializer accepts, with the same data."""
    fast = order_create_fast(copy.deepcopy(body))
    valid, serializer = _serializer(copy.deepcopy(body))
    if fast is not None:
        assert valid, (body, serializer.errors)
        assert fast == _plain(serializer.validated_data)
    return fast, valid, serializer


def _with(path, value):
    body = copy.deepcopy(VALID)
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


ACCEPTED = [
    VALID,
    _with(("shipping_address", "line2"), KeyError),
    _with(("shipping_address", "line2"), "Apt 4"),
    _with(("shipping_address", "country"), "de"),
    _with(("shipping_address", "name"), "Zoë Ångström-Łukasiewicz"),
    _with(("shipping_address", "city"), "東京"),
    _with(("email",), "grace@exämple.com"),
    _with(("items",), [{"sku": "MOUSE-01", "quantity": 1000}]),
    _with(("items",), [{"sku": "MOUSE-01", "quantity": 1}] * 100),
    _with(("extra",), {"ignored": True}),
    _with(("shipping_address", "extra"), "ignored"),
]


@pytest.mark.parametrize("body", ACCEPTED)
def test_a_plainly_valid_body_gives_the_serializers_data(body):
    fast, valid, _ = _check(body)
    assert fast is not None and valid


# Valid for the serializer but not in normal form: the serializer normalises them.
NORMALISED = [
    _with(("email",), " grace@example.com "),
    _with(("shipping_address", "name"), "Grace Hopper\n"),
    _with(("items",), [{"sku": "MOUSE-01", "quantity": "2"}]),
    _with(("items",), [{"sku": "MOUSE-01", "quantity": 2.0}]),
    _with(("shipping_address", "postal_code"), 22201),
    _with(("shipping_address", "line2"), "   "),
]


@pytest.mark.parametrize("body", NORMALISED)
def test_a_body_the_serializer_normalises_goes_to_the_serializer(body):
    fast, valid, _ = _check(body)
    assert fast is None and valid


INVALID = [
    [],
    "a string",
    None,
    {},
    _with(("email",), KeyError),
    _with(("email",), "not-an-email"),
    _with(("email",), ""),
    _with(("email",), None),
    _with(("email",), "a\x00b@example.com"),
    _with(("shipping_address",), KeyError),
    _with(("shipping_address",), "Berlin"),
    _with(("shipping_address",), None),
    _with(("shipping_address", "name"), KeyError),
    _with(("shipping_address", "name"), ""),
    _with(("shipping_address", "name"), "x" * 201),
    _with(("shipping_address", "name"), "bad\x00name"),
    _with(("shipping_address", "name"), "lone \ud800 surrogate"),
    _with(("shipping_address", "line2"), None),
    _with(("shipping_address", "line2"), "x" * 201),
    _with(("shipping_address", "city"), "x" * 101),
    _with(("shipping_address", "postal_code"), "x" * 21),
    _with(("shipping_address", "country"), "XX"),
    _with(("shipping_address", "country"), "D"),
    _with(("shipping_address", "country"), "DEU"),
    _with(("shipping_address", "country"), 49),
    _with(("items",), []),
    _with(("items",), KeyError),
    _with(("items",), {"sku": "MOUSE-01", "quantity": 1}),
    _with(("items",), [{"sku": "MOUSE-01", "quantity": 1}] * 101),
    _with(("items",), ["MOUSE-01"]),
    _with(("items",), [{"sku": "MOUSE-01"}]),
    _with(("items",), [{"sku": "MOUSE-01", "quantity": 0}]),
    _with(("items",), [{"sku": "MOUSE-01", "quantity": 1001}]),
    _with(("items",), [{"sku": "MOUSE-01", "quantity": -1}]),
    _with(("items",), [{"sku": "MOUSE-01", "quantity": True}]),
    _with(("items",), [{"sku": "MOUSE-01", "quantity": 1.5}]),
    _with(("items",), [{"sku": "MOUSE-01", "quantity": None}]),
    _with(("items",), [{"sku": "x" * 33, "quantity": 1}]),
    _with(("items",), [{"sku": "", "quantity": 1}]),
    _with(("payment_method",), KeyError),
    _with(("payment_method",), "card_visa"),
    _with(("payment_method",), "pm_card visa"),
    _with(("payment_method",), "pm_" + "x" * 253),
    _with(("payment_method",), ""),
    _with(("payment_intent",), "pi_123"),
    _with(("payment_intent",), None),
    _with(("payment_intent",), ""),
]


@pytest.mark.parametrize("body", INVALID)
def test_an_invalid_body_is_worded_by_the_serializer(body):
    fast, valid, serializer = _check(body)
    assert fast is None
    assert not valid and serializer.errors


def _mutations(rng: random.Random):
    values = [
        "",
        " ",
        "x",
        "de",
        "DE",
        "XX",
        " DE",
        "pm_card_visa",
        "pi_x",
        "a@b.co",
        "x" * 33,
        "x" * 201,
        "\x00",
        "é",
        0,
        1,
        2,
        1000,
        1001,
        -1,
        1.0,
        True,
        False,
        None,
        [],
        {},
        ["x"],
        {"sku": "A", "quantity": 1},
        KeyError,
    ]
    paths = [
        ("email",),
        ("payment_method",),
        ("payment_intent",),
        ("shipping_address",),
        ("items",),
        ("extra",),
        *(("shipping_address", f) for f in VALID["shipping_address"]),
        ("items", 0),
        ("items", 0, "sku"),
        ("items", 0, "quantity"),
        ("items", 1, "quantity"),
    ]
    for _ in range(600):
        body = copy.deepcopy(VALID)
        for _ in range(rng.randint(1, 3)):
            path, value = rng.choice(paths), rng.choice(values)
            target = body
            try:
                for key in path[:-1]:
                    target = target[key]
                if value is KeyError:
                    target.pop(path[-1]) if isinstance(target, dict) else None
                else:
                    target[path[-1]] = copy.deepcopy(value)
            except (KeyError, IndexError, TypeError):
                pass
        yield body


def test_random_bodies_never_make_the_two_disagree():
    accepted = 0
    for body in _mutations(random.Random(11)):
        fast, _valid, _ = _check(body)
        accepted += fast is not None
    assert accepted  # some mutations stay valid (and then match exactly)
