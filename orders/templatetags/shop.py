from django import template

from orders import cart, presenters

register = template.Library()


@register.simple_tag(takes_context=True)
def cart_count(context) -> int:
    request = context.get("request")
    return cart.cart_count(request.session) if request is not None else 0


@register.simple_tag
def product_art(product) -> presenters.ProductArt:
    return presenters.product_art(product)
