""" "Find my order": email + order number -> the link, by email, to the order's address only; the
same answer whether or not the order exists; rate-limited."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.test import Client

from conftest import place_order
from notifications.models import EmailLog

pytestmark = pytest.mark.django_db


def answer(response) -> str:
    """The page as the visitor sees it, without the per-request CSRF token."""
    html = response.content.decode()
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)


def ask(client, email: str, number: str):
    return client.post("/orders/find/", {"email": email, "number": number})


def link_emails(mailbox) -> list:
    return [m for m in mailbox.messages() if m["X-ChargeFlow-Kind"] == "order_link"]


def test_known_and_unknown_orders_get_the_same_answer_and_only_the_owner_an_email(
    pipeline, catalog, mailbox, settings
):
    created = place_order("find-1")
    pipeline.drain()
    page = Client().get("/orders/find/")
    assert page.status_code == 200 and "Find my order" in page.content.decode()

    known = ask(Client(), "ADA@example.com", created["number"].lower())
    wrong_email = ask(Client(), "ADA@example.com", "CF-22222222")
    assert known.status_code == wrong_email.status_code == 200
    assert answer(known) == answer(wrong_email)
    assert "we have just emailed its link" in answer(known)
    unknown_email = ask(Client(), "eve@example.com", created["number"])
    assert answer(unknown_email) == answer(known).replace("ADA@example.com", "eve@example.com")
    pipeline.drain()

    [email] = link_emails(mailbox)
    assert email["To"] == "ada@example.com"
    text = email.get_body(preferencelist=("plain",)).get_content()
    url = re.search(r"https?://\S+/orders/\S+\?token=\S+", text).group(0)
    browser = Client()
    parts = urlsplit(url)
    opened = browser.get(f"{parts.path}?{parts.query}", follow=True)
    assert opened.status_code == 200 and created["number"] in opened.content.decode()

    # Asked again at once: no second email (whoever asks, however often).
    ask(Client(), "ada@example.com", created["number"])
    pipeline.drain()
    assert len(link_emails(mailbox)) == 1

    # Later: the link again, as a resend of the same email (one log), with a fresh link.
    settings.ORDER_LINK_EMAIL_COOLDOWN_MINUTES = 0
    ask(Client(), "ada@example.com", created["number"])
    pipeline.drain()
    assert len(link_emails(mailbox)) == 2
    log = EmailLog.objects.get(order_id=created["id"], kind="order_link")
    assert log.attempts == 2
    page = " ".join(browser.get(f"/orders/{created['id']}/").content.decode().split())
    assert "Email sent: link to this order" in page
    assert "Email sent again: link to this order" in page


def test_find_order_is_rate_limited_per_address(catalog, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "find_order": "3/min",
        },
    }
    statuses = [ask(Client(), "x@example.com", "CF-23456789").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_a_malformed_number_is_explained(catalog):
    response = ask(Client(), "x@example.com", "12345")
    assert response.status_code == 200
    assert "Enter the order number as in your email" in response.content.decode()
