from django import template

from chargeflow.wording import join_items
from orders import cart, presenters
from orders.models import Product

register = template.Library()


@register.simple_tag(takes_context=True)
def cart_count(context) -> int:
    request = context.get("request")
    return cart.cart_count(request.session) if request is not None else 0


@register.simple_tag(takes_context=True)
def product_art(context, product) -> presenters.ProductArt:
    """The product's placeholder, with initials distinct across the catalog (worked out once
    per request)."""
    request = context.get("request")
    initials = getattr(request, "_catalog_initials", None)
    if initials is None:
        initials = presenters.catalog_initials(Product.objects.values_list("sku", "name"))
        if request is not None:
            request._catalog_initials = initials
    return presenters.product_art(product, initials)


@register.filter
def net_paid(order):
    """What the customer paid and kept paying after refunds: the total minus what was refunded
    (None before the order has a total)."""
    return presenters.net_paid(order)


@register.filter
def items_list(order) -> str:
    """The order's lines on one line (chargeflow.wording.join_items)."""
    return join_items((line.quantity, line.name) for line in order.lines.all())
