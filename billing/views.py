"""Billing's web endpoints: the Stripe webhook and the 3-D Secure page."""

from __future__ import annotations

import logging

import stripe
from django.conf import settings
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from billing import selectors, services
from billing.models import Payment
from billing.stripe_client import stripe_client
from chargeflow.errors import NotFoundError

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def stripe_webhook(request):
    """Verified against the endpoint secret (400 and no change otherwise), deduplicated on the
    event id. A failure answers 500 so that Stripe delivers the event again."""
    try:
        event = stripe.Webhook.construct_event(
            request.body.decode("utf-8"),
            request.headers.get("Stripe-Signature", ""),
            settings.STRIPE_WEBHOOK_SECRET,
        )
    except (ValueError, UnicodeDecodeError, stripe.SignatureVerificationError) as exc:
        logger.warning("stripe webhook refused: %s", exc)
        return HttpResponseBadRequest("invalid signature or payload")
    services.stripe_event_handle(event=event)
    return HttpResponse(status=200)


def _payment_for_token(token: str) -> Payment:
    try:
        order_id = services.action_order_id(token)
    except NotFoundError:
        raise Http404 from None
    payment = selectors.payment_for_order(order_id=order_id)
    if payment is None:
        raise Http404
    return payment


@require_GET
def payment_action(request, token: str):
    """The page where the customer completes 3-D Secure with Stripe.js."""
    payment = _payment_for_token(token)
    context = {"payment": payment, "token": token, "amount": selectors.payment_amount(payment)}
    if payment.status == Payment.Status.ACTION_REQUIRED:
        intent = stripe_client().v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
        context |= {
            "client_secret": intent.client_secret,
            "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
            "stripe_js_url": settings.STRIPE_JS_URL,
        }
    return render(request, "billing/payment_action.html", context)


@require_POST
def payment_action_return(request, token: str):
    """Stripe.js finished (or gave up): read the intent back from Stripe, then go to the order."""
    payment = _payment_for_token(token)
    services.payment_sync(order_id=str(payment.order_id))
    if payment.order_url:
        return redirect(payment.order_url)
    return redirect("billing:payment-action", token=token)
