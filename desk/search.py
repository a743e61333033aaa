"""Find orders by whatever the customer, the bank or the carrier quotes."""

from __future__ import annotations

from billing import selectors as billing
from invoicing import selectors as invoicing
from notifications import selectors as notifications
from orders import selectors as orders
from shipping import selectors as shipping


def order_ids(term: str) -> list:
    """Every order the term names: its number, id, email, invoice or credit-note number,
    tracking or partner shipment id, PaymentIntent, refund or Stripe customer id, or an email's
    provider message id. Exact matches (case-insensitive), as quoted."""
    term = (term or "").strip()
    if not term or len(term) > 255:
        return []
    found = set(orders.order_ids_matching(term=term))
    found |= set(invoicing.order_ids_for_document(number=term))
    found |= set(shipping.order_ids_for_tracking(reference=term))
    found |= set(billing.order_ids_for_payment_reference(reference=term))
    found |= set(notifications.order_ids_for_recipient(reference=term))
    return sorted(found, key=str)
