"""The storefront: server-rendered pages over the same services as the API."""

from __future__ import annotations

import hashlib
import json
import secrets

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from chargeflow.errors import ApplicationError
from orders import cart, selectors
from orders.forms import AddToCartForm, CheckoutForm
from orders.models import Product
from orders.serializers import OrderSerializer
from orders.services import CartItem, order_checkout
from orders.tokens import order_access_token


def product_list(request):
    search = request.GET.get("q", "").strip()
    page = Paginator(selectors.product_list(search=search), 12).get_page(request.GET.get("page"))
    return render(request, "orders/product_list.html", {"page": page, "q": search})


def product_detail(request, sku: str):
    product = get_object_or_404(Product, sku=sku, is_active=True)
    return render(request, "orders/product_detail.html", {"product": product})


@require_POST
def cart_add(request):
    form = AddToCartForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a quantity of at least 1.")
        return redirect("orders:cart")
    product = Product.objects.filter(sku=form.cleaned_data["sku"], is_active=True).first()
    if product is None:
        messages.error(request, "That product does not exist.")
        return redirect("orders:product-list")
    cart.cart_add(request.session, product.sku, form.cleaned_data["quantity"])
    messages.success(request, f"{product.name} added to your cart.")
    return redirect("orders:cart")


@require_POST
def cart_update(request):
    sku = request.POST.get("sku", "")
    try:
        quantity = int(request.POST.get("quantity", ""))
    except ValueError:
        messages.error(request, "Quantity must be a whole number.")
        return redirect("orders:cart")
    if quantity < 0:
        messages.error(request, "Quantity cannot be negative.")
        return redirect("orders:cart")
    cart.cart_set(request.session, sku, quantity)
    return redirect("orders:cart")


def cart_view(request):
    lines = cart.cart_lines(request.session)
    for line in lines:
        if not line.available:
            messages.warning(
                request,
                f"Only {line.product.stock} of {line.product.name} left: lower the quantity.",
            )
    return render(
        request, "orders/cart.html", {"lines": lines, "subtotal": cart.cart_subtotal(lines)}
    )


def checkout(request):
    lines = cart.cart_lines(request.session)
    if not lines:
        messages.info(request, "Your cart is empty.")
        return redirect("orders:product-list")
    if request.method == "POST":
        form = CheckoutForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            items = [CartItem(sku=line.product.sku, quantity=line.quantity) for line in lines]
            fingerprint = hashlib.sha256(
                json.dumps(
                    {"form": {k: v for k, v in data.items()}, "items": [i.__dict__ for i in items]},
                    sort_keys=True,
                ).encode()
            ).hexdigest()
            try:
                order, _ = order_checkout(
                    email=data["email"],
                    shipping_address={
                        k: data[k]
                        for k in ("name", "line1", "line2", "city", "postal_code", "country")
                    },
                    items=items,
                    payment_method=data["payment_method"],
                    customer=request.user if request.user.is_authenticated else None,
                    idempotency_key=f"checkout:{data['checkout_token']}",
                    fingerprint=fingerprint,
                )
            except ApplicationError as exc:
                messages.error(request, exc.message)
                form = CheckoutForm(initial={**data, "checkout_token": secrets.token_urlsafe(24)})
            else:
                cart.cart_clear(request.session)
                url = reverse("orders:order-detail", args=[order.id])
                return redirect(f"{url}?token={order_access_token(order.id)}")
    else:
        initial = {"checkout_token": secrets.token_urlsafe(24)}
        if request.user.is_authenticated:
            initial["email"] = request.user.email
        form = CheckoutForm(initial=initial)
    return render(
        request,
        "orders/checkout.html",
        {"form": form, "lines": lines, "subtotal": cart.cart_subtotal(lines)},
    )


def _viewable_order(request, order_id):
    order = selectors.order_for_viewer(
        order_id=order_id, user=request.user, token=request.GET.get("token")
    )
    if order is None:
        raise Http404
    return order


def order_detail(request, order_id):
    order = _viewable_order(request, order_id)
    token = request.GET.get("token", "")
    return render(request, "orders/order_detail.html", {"order": order, "token": token})


def order_status(request, order_id):
    """The order as JSON, polled by the order page to update itself."""
    order = _viewable_order(request, order_id)
    return JsonResponse(OrderSerializer(order, context={"request": request}).data)
