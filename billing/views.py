"""Billing's web endpoints: the Stripe webhook and the 3-D Secure page."""

from __future__ import annotations

import json
import logging
import uuid

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
from chargeflow.parsers import json_depth_exceeds

logger = logging.getLogger(__name__)


WEBHOOK_MAX_DEPTH = 32


def _text(value, max_length: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= max_length and "\x00" not in value


def _event_problem(payload) -> str | None:
    """Why a (correctly signed) event cannot be used, or None. Checked before anything reads it,
    so a malformed event is a 400, never a 500 that Stripe would retry for days."""
    if json_depth_exceeds(payload, WEBHOOK_MAX_DEPTH):
        return "nested too deeply"
    if not isinstance(payload, dict):
        return "not an object"
    if not _text(payload.get("id"), 255) or not _text(payload.get("type"), 100):
        return "no id or type"
    data = payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return "no data.object"
    if obj.get("id") is not None and not _text(obj["id"], 255):
        return "bad data.object.id"
    metadata = obj.get("metadata")
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        return "bad metadata"
    order_id = metadata.get("order_id")
    if order_id is not None:
        try:
            uuid.UUID(str(order_id))
        except ValueError:
            return "metadata.order_id is not a UUID"
    return None


@csrf_exempt
@require_POST
def stripe_webhook(request):
    """Verified against the endpoint secret, then checked (400 and no change otherwise),
    deduplicated on the event id. A failure answers 500 so that Stripe delivers the event again."""
    try:
        payload = request.body.decode("utf-8")
        signature = request.headers.get("Stripe-Signature", "")
        stripe.WebhookSignature.verify_header(
            payload, signature, settings.STRIPE_WEBHOOK_SECRET, stripe.Webhook.DEFAULT_TOLERANCE
        )
        problem = _event_problem(json.loads(payload))
        event = (
            None
            if problem
            else stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET)
        )
    except (
        ValueError,
        UnicodeDecodeError,
        RecursionError,
        stripe.SignatureVerificationError,
    ) as exc:
        logger.warning("stripe webhook refused: %s", str(exc)[:200])
        return HttpResponseBadRequest("invalid signature or payload")
    if problem:
        logger.warning("stripe webhook refused: %s", problem)
        return HttpResponseBadRequest(f"unusable event: {problem}")
    try:
        services.stripe_event_handle(event=event)
    except stripe.InvalidRequestError as exc:  # Stripe does not know the object: no use retrying
        logger.warning("stripe webhook refused: %s", str(exc)[:200])
        return HttpResponseBadRequest("unusable event: unknown object")
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
