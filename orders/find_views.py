""" "Find my order": email + order number -> the order's link, sent by email (docs/storefront.md).

No account needed. The page gives the same answer whether or not such an order exists (nothing
tells a visitor which numbers or addresses are real), the link goes only to the address the
order was placed with, and the form is rate-limited per IP address (FindOrderThrottle)."""

from __future__ import annotations

from django.shortcuts import render
from django.views.decorators.cache import never_cache

from chargeflow.throttling import FIND_ORDER_THROTTLES, storefront_throttled
from orders import selectors, services
from orders.forms import FindOrderForm


@never_cache
def find_order(request):
    form = FindOrderForm(request.POST or None)
    if request.method == "POST":
        throttled = storefront_throttled(request, FIND_ORDER_THROTTLES)
        if throttled is not None:
            return throttled
        if form.is_valid():
            order = selectors.order_for_lookup(
                email=form.cleaned_data["email"], number=form.cleaned_data["number"]
            )
            if order is not None:
                services.order_link_request(order_id=order.id)
            return render(
                request,
                "orders/find_order.html",
                {"form": FindOrderForm(), "sent_to": form.cleaned_data["email"]},
            )
    return render(request, "orders/find_order.html", {"form": form})
