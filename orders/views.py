"""The storefront: server-rendered pages over the same services as the API."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from chargeflow.errors import ApplicationError
from chargeflow.redirects import safe_local_path
from chargeflow.throttling import QuoteThrottle, storefront_throttled
from orders import cart, presenters, selectors
from orders.checkout import CheckoutPlaced, checkout_hold, checkout_place
from orders.countries import COUNTRY_CODES, country_choices
from orders.forms import (
    CHECKOUT_TOKEN_RE,
    AddToCartForm,
    CartUpdateForm,
    CheckoutForm,
    SignUpForm,
)
from orders.models import Product
from orders.pricing import rate_percent
from orders.serializers import OrderSerializer
from orders.services import CartItem, OutOfStockError
from orders.tokens import order_link_valid, session_allows, session_grant

PLACED_ORDERS_KEY = "placed_orders"
ORDER_PLACED_TAG = "order-placed"  # the "Thank you" message; order.js hides it if the order ends


# --- Site --------------------------------------------------------------------------------------


def favicon(request):
    """Browsers ask for /favicon.ico whatever the page says: send them to the SVG icon."""
    return redirect(static("favicon.svg"))


# --- Catalog -----------------------------------------------------------------------------------


def product_list(request):
    search = request.GET.get("q", "").strip()[:100]
    page = Paginator(selectors.product_list(search=search), 12).get_page(request.GET.get("page"))
    return render(request, "orders/product_list.html", {"page": page, "q": search})


def product_detail(request, sku: str):
    product = get_object_or_404(Product, sku=sku, is_active=True)
    in_cart = cart.cart_get(request.session).get(product.sku, 0)
    return render(request, "orders/product_detail.html", {"product": product, "in_cart": in_cart})


# --- Cart --------------------------------------------------------------------------------------


def _safe_next(request) -> str | None:
    """The page a form asked to go back to (`next`), if it is a local path of ours."""
    return safe_local_path(request, request.POST.get("next") or request.GET.get("next"))


@require_POST
def cart_add(request):
    """Adds to the cart and goes back to the list it came from (`next`: the catalog's buttons,
    the customer keeps browsing, the header counts the cart), else to the cart."""
    back = _safe_next(request)
    form = AddToCartForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a quantity between 1 and 1000.")
        return redirect(back or "orders:cart")
    product = Product.objects.filter(sku=form.cleaned_data["sku"], is_active=True).first()
    if product is None:
        messages.error(request, "That product does not exist (any more).")
        return redirect(back or "orders:product-list")
    if product.stock == 0:
        messages.error(request, f"{product.name} is out of stock.")
        return redirect(back or reverse("orders:product-detail", args=[product.sku]))
    quantity = cart.cart_add(request.session, product.sku, form.cleaned_data["quantity"])
    if quantity > product.stock:
        cart.cart_set(request.session, product.sku, product.stock)
        messages.warning(
            request,
            f"Only {product.stock} of {product.name} in stock: your cart holds all of them.",
        )
    else:
        messages.success(request, f"{product.name} added to your cart.")
    return redirect(back or "orders:cart")


@require_POST
def cart_update(request):
    form = CartUpdateForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("orders:cart")
    sku, quantity = form.cleaned_data["sku"], form.cleaned_data["quantity"]
    if sku not in cart.cart_get(request.session):
        messages.error(request, "That product is not in your cart.")
        return redirect("orders:cart")
    product = Product.objects.filter(sku=sku).first()
    if quantity == 0 or product is None:
        cart.cart_set(request.session, sku, 0)
        messages.info(request, f"{product.name if product else sku} removed from your cart.")
    elif quantity > product.stock:
        cart.cart_set(request.session, sku, product.stock)
        messages.warning(request, f"Only {product.stock} of {product.name} left.")
    else:
        cart.cart_set(request.session, sku, quantity)
        messages.success(request, "Cart updated.")
    return redirect("orders:cart")


def _lines_with_notices(request):
    lines, gone = cart.cart_lines(request.session)
    for sku in gone:
        messages.warning(request, f"A product ({sku}) is no longer sold and left your cart.")
    return lines


def _quote_context(lines, country: str) -> dict:
    """What orders/_totals.html needs: the exact totals for the destination."""
    return {
        "quote": cart.cart_quote(lines, country),
        "quote_country_name": presenters.country_name(country),
    }


@never_cache
def cart_view(request):
    lines = _lines_with_notices(request)
    country = cart.quote_country(request.session, request.GET.get("country"))
    return render(
        request,
        "orders/cart.html",
        {
            "lines": lines,
            "country": country,
            "country_choices": country_choices(),
            "blocked": any(line.problem for line in lines),
            **_quote_context(lines, country),
        },
    )


@never_cache
def cart_totals(request):
    """The cart's totals for `?country=XX` as JSON (the cart and checkout pages update with it
    when the country changes, without a reload): the amounts and the rendered totals block (one
    template for the page and for this, no rendering in JS). Remembers the choice."""
    throttled = storefront_throttled(request, (QuoteThrottle,))
    if throttled is not None:
        return throttled
    code = request.GET.get("country", "").strip().upper()
    if code not in COUNTRY_CODES:
        return JsonResponse({"error": f"Unknown country {code!r}."}, status=400)
    lines, _gone = cart.cart_lines(request.session)
    country = cart.quote_country(request.session, code)
    context = _quote_context(lines, country)
    quote = context["quote"]
    return JsonResponse(
        {
            "country": country,
            "totals": quote.totals() if quote else None,
            "html": render_to_string("orders/_totals.html", context, request=request),
        }
    )


# --- Checkout ----------------------------------------------------------------------------------


def _order_url(request, order) -> str:
    """The order page, token-less: this session may see the order from now on."""
    session_grant(request.session, order.id)
    return reverse("orders:order-detail", args=[order.id])


def _new_form(request) -> CheckoutForm:
    initial = {
        "checkout_token": secrets.token_urlsafe(24),
        "country": cart.preferred_country(request),  # or none: the shopper chooses
    }
    if request.user.is_authenticated:
        initial["email"] = request.user.email
    return CheckoutForm(initial=initial)


def _placed(request, order) -> str:
    """The order is placed: empty the cart, let this browser see the order, say thank you."""
    cart.cart_clear(request.session)
    placed_ids = request.session.get(PLACED_ORDERS_KEY, [])[-19:]
    if str(order.id) not in placed_ids:
        request.session[PLACED_ORDERS_KEY] = [*placed_ids, str(order.id)]
    messages.success(
        request,
        f"Thank you! Your card is authorized and order {order.number} is placed.",
        extra_tags=ORDER_PLACED_TAG,
    )
    return _order_url(request, order)


@never_cache
def checkout(request):
    """The checkout page. Paying happens in the page (static/js/checkout.js): `checkout_pay`
    validates the form, holds the stock and opens the PaymentIntent; Stripe.js confirms it with
    the card (3-D Secure in the page); `checkout_complete` places the order. A POST here is the
    page without JavaScript: "Recalculate" (the totals for another country), or a form whose
    card could not be entered."""
    if request.method == "POST":
        # Without JavaScript: "Recalculate", or a form whose card could not be entered. It
        # places nothing, so it counts as a price quote.
        throttled = storefront_throttled(request, (QuoteThrottle,))
        if throttled is not None:
            return throttled
    lines = _lines_with_notices(request)
    if not lines:
        messages.info(request, "Your cart is empty.")
        return redirect("orders:product-list")
    problems = [line.problem for line in lines if line.problem]
    chosen = request.POST.get("country") or cart.preferred_country(request)
    country = cart.quote_country(request.session, chosen)
    if request.method == "POST" and "recalculate" in request.POST:
        form = CheckoutForm(initial=request.POST.dict())
    elif request.method == "POST":
        form = CheckoutForm(request.POST)
        if form.is_valid():
            messages.error(
                request,
                "Card payments need JavaScript: the card goes straight to our payment provider "
                "from this page. Nothing was charged.",
            )
    else:
        form = _new_form(request)
    return render(
        request,
        "orders/checkout.html",
        {
            "form": form,
            "lines": lines,
            "problems": problems,
            **_quote_context(lines, country),
            # No country yet: the totals shown are for the shop's country, and say so.
            "quote_unchosen": not chosen,
            "stripe_js_url": settings.STRIPE_JS_URL,
            "stripe_publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
            "hold_minutes": settings.CHECKOUT_HOLD_MINUTES,
        },
    )


def _json_error(message: str, status: int, **extra) -> JsonResponse:
    return JsonResponse({"message": message, **extra}, status=status)


@never_cache
@require_POST
def checkout_pay(request):
    """Step 1 of paying (JSON, from checkout.js): the whole form is validated at once (400 with
    every field's errors); the cart's stock is held and the exact total fixed; the PaymentIntent
    for it is opened. Answers its client secret, which Stripe.js confirms with the card."""
    # A form that already placed its order (a reload, back + submit): that order again. The
    # token is checked before any query.
    token = request.POST.get("checkout_token", "")
    token = token if CHECKOUT_TOKEN_RE.fullmatch(token) else ""
    started = selectors.checkout_for_token(token=token)
    mine = started and str(started.pk) in request.session.get(PLACED_ORDERS_KEY, [])
    if mine and started.status == started.Status.PLACED:
        order = selectors.order_for_checkout(checkout=started)
        messages.info(request, f"Order {order.number} was already placed with this form.")
        return JsonResponse({"redirect": _order_url(request, order)})
    throttled = storefront_throttled(request)
    if throttled is not None:
        return throttled
    form = CheckoutForm(request.POST)
    lines = _lines_with_notices(request)
    if not lines:
        return _json_error("Your cart is empty.", 409, redirect=reverse("orders:product-list"))
    if not form.is_valid():
        return _json_error(
            "Please correct the fields marked below.", 400, errors=form.errors.get_json_data()
        )
    if any(line.problem for line in lines):
        return _json_error(
            "Some items in your cart are no longer available as they were: fix the cart first.",
            409,
            redirect=reverse("orders:cart"),
        )
    data = form.cleaned_data
    cart.quote_country(request.session, data["country"])
    try:
        hold = checkout_hold(
            token=data["checkout_token"],
            email=data["email"],
            shipping_address={
                k: data[k] for k in ("name", "line1", "line2", "city", "postal_code", "country")
            },
            items=[CartItem(sku=line.product.sku, quantity=line.quantity) for line in lines],
            customer=request.user if request.user.is_authenticated else None,
        )
    except CheckoutPlaced as exc:
        return JsonResponse({"redirect": _placed(request, exc.order)})
    except OutOfStockError as exc:
        return _json_error(f"Sorry: {exc.message} Nothing was charged.", 409)
    except ApplicationError as exc:
        return _json_error(exc.message, exc.status)
    checkout = hold.checkout
    return JsonResponse(
        {
            "checkout": str(checkout.pk),
            "client_secret": hold.authorization.client_secret,
            "payment_intent": hold.authorization.payment_intent,
            "total": str(checkout.total),
            "currency": checkout.currency,
            "expires_at": checkout.expires_at.isoformat(),
        }
    )


@never_cache
@require_POST
def checkout_complete(request):
    """Step 3 (JSON, from checkout.js once Stripe.js authorized the card): place the order. The
    authorization is checked at Stripe, never taken from the browser's word."""
    token = request.POST.get("checkout_token", "")
    payment_intent = request.POST.get("payment_intent", "")
    checkout = (
        selectors.checkout_for_token(token=token) if CHECKOUT_TOKEN_RE.fullmatch(token) else None
    )
    if checkout is None:
        return _json_error("This checkout is not known; reload the page.", 404)
    try:
        order = checkout_place(checkout_id=checkout.pk, payment_intent=payment_intent)
    except OutOfStockError as exc:
        return _json_error(
            f"Sorry: {exc.message} The authorization on your card was released; you have not "
            "been charged.",
            409,
        )
    except ApplicationError as exc:
        return _json_error(exc.message, exc.status, code=exc.code)
    return JsonResponse({"redirect": _placed(request, order)})


# --- Orders ------------------------------------------------------------------------------------


def _viewable_order(request, order_id):
    """The order for its owner, staff, a session holding a grant (from a guest link or the
    checkout) or a client sending the access token in X-Order-Token; else 404."""
    order = selectors.order_for_viewer(
        order_id=order_id, user=request.user, token=request.headers.get("X-Order-Token")
    )
    if order is None and session_allows(request.session, order_id):
        order = selectors.order_detail_queryset().filter(pk=order_id).first()
    if order is None:
        raise Http404
    return order


def _live_context(request, order) -> dict:
    return {
        "order": order,
        "steps": presenters.order_steps(order),
        "tax_percent": rate_percent(order.tax_rate) if order.tax_rate is not None else "",
        "ended": presenters.order_ended(order),
        "settled": presenters.order_settled(order, now=timezone.now()),
        "timeline": presenters.timeline_rows(order),
        "payment_action": order.status == order.Status.ACTION_REQUIRED
        and bool(order.payment_client_secret),
        "stripe_js_url": settings.STRIPE_JS_URL,
        "stripe_publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
    }


@never_cache
def order_detail(request, order_id):
    if "token" in request.GET:
        # A guest link: exchanged for a grant in the session, then the token-less URL (the
        # token appears in one request line only, never in the page or its requests).
        linked = selectors.order_detail_queryset().filter(pk=order_id).first()
        if linked is not None and order_link_valid(linked, request.GET["token"]):
            session_grant(request.session, linked.id)
        _viewable_order(request, order_id)  # 404 for a wrong or expired link (unless allowed)
        return redirect("orders:order-detail", order_id=order_id)
    order = _viewable_order(request, order_id)
    context = _live_context(request, order)
    context["ship_country_name"] = presenters.country_name(order.ship_country)
    # "Thank you! Order … is placed." does not belong above "cancelled" or "refunded" (a card
    # declined while the customer was on the way here): the status message says what happened.
    context["flash"] = [
        message
        for message in messages.get_messages(request)
        if not (context["ended"] and ORDER_PLACED_TAG in message.extra_tags.split())
    ]
    return render(request, "orders/order_detail.html", context)


@never_cache
def order_status(request, order_id):
    """The order as JSON, polled by the order page to update itself: the API representation
    plus the rendered live part of the page (one template for both, no rendering in JS)."""
    order = _viewable_order(request, order_id)
    context = _live_context(request, order)
    data = OrderSerializer(order, context={"request": request}).data
    return JsonResponse(
        {
            **data,
            "status_label": order.get_status_display(),
            "final": order.is_final,
            "settled": context["settled"],
            "payment_client_secret": order.payment_client_secret
            if context["payment_action"]
            else None,
            "html": render_to_string("orders/_order_live.html", context, request=request),
        }
    )


# --- Accounts ----------------------------------------------------------------------------------


@never_cache
def signup(request):
    if request.user.is_authenticated:
        return redirect("orders:account-orders")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        # login() rotates the session key and keeps the session's data: the cart stays.
        login(request, user)  # the one backend in AUTHENTICATION_BACKENDS
        messages.success(request, f"Welcome, {user.username}! Your account is ready.")
        return redirect(_safe_next(request) or "orders:product-list")
    return render(request, "registration/signup.html", {"form": form})


@login_required
def account_orders(request):
    orders = selectors.orders_of_customer(user=request.user)
    page = Paginator(orders, 20).get_page(request.GET.get("page"))
    return render(request, "orders/account_orders.html", {"page": page})
