"""The Content-Security-Policy header (chargeflow.middleware.CSPMiddleware): a response without a
nonce gets the policy built once per process, and it is exactly what django-csp would build."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from csp.exceptions import CSPNonceError
from csp.utils import build_policy
from django.http import HttpResponse
from django.test import RequestFactory

from chargeflow.middleware import CSPMiddleware


def _django_csp_policy(response_request) -> str:
    middleware = CSPMiddleware(lambda request: None)
    parts = middleware.get_policy_parts(response_request, None)
    return build_policy(**asdict(parts))


@pytest.mark.django_db
def test_a_page_without_a_nonce_gets_django_csps_policy(client):
    response = client.get("/api/v1/products/")
    request = RequestFactory().get("/api/v1/products/")
    assert response["Content-Security-Policy"] == _django_csp_policy(request)
    assert "nonce-" not in response["Content-Security-Policy"]
    assert "script-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_the_cached_policy_follows_a_settings_change(client, settings):
    before = client.get("/api/v1/products/")["Content-Security-Policy"]
    settings.STRIPE_JS_URL = "https://js.example.test/v3/"
    after = client.get("/api/v1/products/")["Content-Security-Policy"]
    assert "https://js.example.test" not in before
    assert "https://js.example.test" in after


def test_a_response_that_used_the_nonce_carries_it_and_the_next_one_does_not():
    def inline_script_page(request):
        return HttpResponse(str(request.csp_nonce))

    def plain_page(request):
        return HttpResponse("no script")

    with_nonce = CSPMiddleware(inline_script_page)(RequestFactory().get("/pay/"))
    again = CSPMiddleware(inline_script_page)(RequestFactory().get("/pay/"))
    request = RequestFactory().get("/plain/")
    without = CSPMiddleware(plain_page)(request)

    nonce = with_nonce.content.decode()
    assert f"'nonce-{nonce}'" in with_nonce["Content-Security-Policy"]
    assert again.content.decode() != nonce
    assert "nonce-" not in without["Content-Security-Policy"]
    assert without["Content-Security-Policy"] == _django_csp_policy(request)
    with pytest.raises(CSPNonceError):  # asked for after the header was written
        str(request.csp_nonce)
