from django import template

from orders import cart

register = template.Library()


@register.simple_tag(takes_context=True)
def cart_count(context) -> int:
    request = context.get("request")
    return cart.cart_count(request.session) if request is not None else 0
