import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from conftest import place_order
from orders.models import Order


@pytest.fixture
def staff_client(db):
    user = get_user_model().objects.create_user(
        "olga", "olga@example.com", "pw", is_staff=True, is_superuser=True
    )
    client = Client()
    client.force_login(user)
    return client


def order_in(state: str, pipeline) -> Order:
    """A real order in `state`, made the way the shop makes it (API + the in-process pipeline
    on localstripe, the partner simulator and the SMTP sink)."""
    if state == "placed":
        created = place_order(f"desk-{state}")
    elif state == "shipped":
        created = place_order(f"desk-{state}")
        pipeline.drain()
    elif state == "cancelled":
        created = place_order(f"desk-{state}", payment_method="pm_card_chargeCustomerFail")
        pipeline.drain()
    elif state == "refunded":
        created = place_order(f"desk-{state}", postal_code="00000")
        pipeline.drain()
    elif state == "stuck":
        created = place_order(f"desk-{state}")
        Order.objects.filter(pk=created["id"]).update(stuck_since=timezone.now())
    else:
        raise ValueError(state)
    return Order.objects.get(pk=created["id"])
