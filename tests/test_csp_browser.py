"""The Content-Security-Policy in a real browser (issue 13): the storefront with Stripe.js, the
order page's polling, the admin and the API docs work under it, and Chromium reports no
violation on any of them."""

from __future__ import annotations

import os
import re

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # see test_storefront_browser.py

from tests.test_storefront_browser import (
    VISA_AS_PRINTED,
    fill_address,
    fill_card,
    seed_vat_rates,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_shop_admin_and_api_docs_work_under_the_csp(
    browser_page, live_server, catalog, stripe_server, settings
):
    settings.STRIPE_JS_URL = stripe_server.js_url
    seed_vat_rates()
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("root", "root@example.com", "a-long-Passphrase-42")
    page, base = browser_page, live_server.url
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    headers = []
    page.on(
        "response",
        lambda r: headers.append(r.headers.get("content-security-policy", ""))
        if r.url.startswith(base) and r.request.resource_type == "document"
        else None,
    )

    page.goto(base + "/?q=mouse")
    page.click("button[aria-label='Add Mouse to cart']")
    page.wait_for_selector(".message:has-text('Mouse added to your cart.')")
    page.goto(base + "/checkout/")
    page.wait_for_function("typeof window.Stripe === 'function'")  # Stripe.js ran
    fill_address(page, email="csp@example.com", country="DE")
    fill_card(page, card=VISA_AS_PRINTED)
    page.click("#place-order")  # the card authorized in the page (fetch to Stripe and to us)
    page.wait_for_url(re.compile(r"/orders/[0-9a-f-]{36}/$"))
    # The order page polls its status (fetch to this site) under the policy.
    with page.expect_response(lambda r: "status.json" in r.url and r.status == 200):
        pass
    page.shot("order-under-csp")

    page.goto(base + "/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "a-long-Passphrase-42")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    page.goto(base + "/admin/orders/order/")
    page.wait_for_selector("#result_list")
    page.shot("admin-under-csp")

    page.goto(base + "/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    page.wait_for_selector("text=/api/v1/orders/")
    page.shot("api-docs-under-csp")

    assert headers and all("script-src 'self'" in h for h in headers), headers
    assert violations == []
