"""Order access tokens for guests: an HMAC of the order id, so nothing secret is stored and the
same token can be given again (idempotent replays, the link in every email). Rotating
SECRET_KEY invalidates all of them."""

from django.conf import settings
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac

SALT = "chargeflow.orders.access-token"


def order_access_token(order_id) -> str:
    return salted_hmac(SALT, str(order_id), algorithm="sha256").hexdigest()


def order_token_valid(order_id, token: str | None) -> bool:
    return bool(token) and constant_time_compare(order_access_token(order_id), token)


def order_link(order) -> str:
    path = reverse("orders:order-detail", args=[order.id])
    return f"{settings.SITE_URL}{path}?token={order_access_token(order.id)}"
