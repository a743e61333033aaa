from django import template

from chargeflow.wording import join_items
from orders import cart, presenters

register = template.Library()


@register.simple_tag(takes_context=True)
def cart_count(context) -> int:
    request = context.get("request")
    return cart.cart_count(request.session) if request is not None else 0


@register.simple_tag
def product_art(product) -> presenters.ProductArt:
    return presenters.product_art(product)


@register.filter
def net_paid(order):
    """What the customer paid and kept paying after refunds: the total minus what was refunded
    (None before the order has a total)."""
    return presenters.net_paid(order)


@register.filter
def items_list(order) -> str:
    """The order's lines on one line (chargeflow.wording.join_items)."""
    return join_items((line.quantity, line.name) for line in order.lines.all())
