from django import template

from chargeflow.money import format_amount, from_minor

register = template.Library()

GOOD = {"paid", "shipped", "delivered", "succeeded", "sent", "created", "in_transit", "ready"}
BAD = {"cancelled", "failed", "bounced", "complained", "refunded", "failing"}
WAIT = {"action_required", "pending", "sending", "queued", "creating", "authorized", "processing"}


@register.filter
def money(value, currency=""):
    """A Decimal as "1,271.96 EUR"; None as "—"."""
    return "—" if value is None else format_amount(value, currency)


@register.filter
def minor(value, currency=""):
    """Integer minor units as "1,271.96 EUR"; None as "—"."""
    return "—" if value is None else format_amount(from_minor(value), currency)


@register.filter
def tone(status) -> str:
    status = str(status or "")
    if status in GOOD:
        return "ok"
    if status in BAD:
        return "bad"
    if status in WAIT:
        return "warn"
    return "quiet"


@register.filter
def humanize_kind(value) -> str:
    return str(value or "").replace("_", " ").capitalize()


@register.filter
def sum_values(values) -> int:
    return sum(values or [])
