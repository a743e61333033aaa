"""How a guest reaches their order (docs/security.md, "Order access").

- The API's access token (`access_token` in the create response, sent back as `X-Order-Token`):
  an HMAC of the order id, so nothing secret is stored and the same token can be given again
  (idempotent replays). Travels in a header only.
- Guest links (emails, the 3-D Secure return): `/orders/<id>/?token=<signed link token>`, which
  expires after ORDER_LINK_MAX_AGE_DAYS. The order page exchanges it once for a grant in the
  session and redirects to the token-less URL, so the token is in one request line only; the
  page, its status polling and its PDF links then use the session.

Rotating SECRET_KEY invalidates both."""

import hashlib
import hmac
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.encoding import force_bytes

SALT = "chargeflow.orders.access-token"
LINK_SALT = "chargeflow.orders.link"
SESSION_KEY = "order_access"  # order ids this browser session may see
SESSION_MAX_ORDERS = 50


# HMAC-SHA256 objects keyed as Django's salted_hmac(salt, value, SECRET_KEY) keys them
# (sha256(salt + secret)), built once per salt and SECRET_KEY and copied for each value: the
# key derivation and setup cost more than the HMAC of an id (every API checkout signs two;
# issue 11). The same digests as salted_hmac and TimestampSigner (orders/tests/test_tokens.py).
_hmacs: dict[tuple[str, str], hmac.HMAC] = {}


def _salted_hmac(salt: str, value: str) -> hmac.HMAC:
    """salted_hmac(salt, value, algorithm="sha256"), with settings.SECRET_KEY."""
    secret = settings.SECRET_KEY
    keyed = _hmacs.get((salt, secret))
    if keyed is None:
        if len(_hmacs) > 8:  # SECRET_KEY changed (tests): forget the old ones
            _hmacs.clear()
        key = hashlib.sha256(force_bytes(salt) + force_bytes(secret)).digest()
        keyed = _hmacs[(salt, secret)] = hmac.new(key, digestmod=hashlib.sha256)
    mac = keyed.copy()
    mac.update(value.encode())
    return mac


def order_access_token(order_id) -> str:
    """salted_hmac(SALT, str(order_id), algorithm="sha256").hexdigest()"""
    return _salted_hmac(SALT, str(order_id)).hexdigest()


def order_token_valid(order_id, token: str | None) -> bool:
    return bool(token) and constant_time_compare(order_access_token(order_id), token)


def _link_max_age() -> timedelta:
    return timedelta(days=settings.ORDER_LINK_MAX_AGE_DAYS)


def order_link_token(order_id) -> str:
    """`<timestamp>:<signature>` of the order id (the id itself is in the URL already):
    signing.TimestampSigner(salt=LINK_SALT).sign(str(order_id)) without the id."""
    timestamp = signing.b62_encode(int(time.time()))
    mac = _salted_hmac(LINK_SALT + "signer", f"{order_id}:{timestamp}")
    return f"{timestamp}:{signing.b64_encode(mac.digest()).decode()}"


def order_link_valid(order, token: str | None) -> bool:
    """A signed link token not older than ORDER_LINK_MAX_AGE_DAYS; or, for links sent before
    signed links existed, the access token of an order placed within that time."""
    if not token or len(token) > 200:
        return False
    try:
        signing.TimestampSigner(salt=LINK_SALT).unsign(
            f"{order.id}:{token}", max_age=_link_max_age()
        )
        return True
    except signing.BadSignature:  # also SignatureExpired
        pass
    return order_token_valid(order.id, token) and order.created_at > timezone.now() - (
        _link_max_age()
    )


# The order page's path with a placeholder id, per script prefix and URLconf: reverse() with a
# namespace costs more than the rest of the link (it is in every order.placed; issue 11).
_PLACEHOLDER = str(uuid.UUID(int=0))
_detail_paths: dict[tuple, str] = {}


@receiver(setting_changed)
def _urls_changed(*, setting, **_kwargs) -> None:
    if setting == "ROOT_URLCONF":
        _detail_paths.clear()


def order_path(order_id) -> str:
    """reverse("orders:order-detail", args=[order_id])"""
    key = (get_script_prefix(), get_urlconf())
    template = _detail_paths.get(key)
    if template is None:
        template = _detail_paths[key] = reverse("orders:order-detail", args=[_PLACEHOLDER])
    return template.replace(_PLACEHOLDER, str(order_id))


def order_link(order) -> str:
    return f"{settings.SITE_URL}{order_path(order.id)}?token={order_link_token(order.id)}"


def session_grant(session, order_id) -> None:
    ids = [i for i in session.get(SESSION_KEY, []) if i != str(order_id)]
    session[SESSION_KEY] = [*ids[-(SESSION_MAX_ORDERS - 1) :], str(order_id)]


def session_allows(session, order_id) -> bool:
    return str(order_id) in session.get(SESSION_KEY, [])
