"""Friendly 404 and 500 pages in the shop's layout (the API keeps its JSON errors)."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client
from django.urls import path

from chargeflow import urls as shop_urls

pytestmark = pytest.mark.django_db


def boom(request):
    raise RuntimeError("a bug")


# A URLconf with the shop's routes plus one view that fails (for the 500 page).
urlpatterns = [path("boom/", boom), *shop_urls.urlpatterns]
handler404 = shop_urls.handler404
handler500 = shop_urls.handler500


def test_404_is_the_shops_page_and_points_to_find_my_order(client, settings):
    settings.DEBUG = False
    for url in ("/no-such-page/", f"/orders/{uuid.uuid4()}/", f"/orders/{uuid.uuid4()}/?token=x"):
        response = client.get(url, follow=True)
        assert response.status_code == 404, url
        html = response.content.decode()
        assert "We could not find that page" in html
        assert 'href="/orders/find/"' in html and "Find my order" in html
        assert 'class="topbar"' in html and settings.SHOP_NAME in html  # the shop's layout


def test_api_404_stays_json(client):
    response = client.get("/api/v1/nothing-here/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_500_is_the_shops_page(settings):
    settings.DEBUG = False
    settings.ROOT_URLCONF = __name__
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on our side" in html
    assert 'class="topbar"' in html and settings.SHOP_NAME in html
    assert "a bug" not in html and "Traceback" not in html
