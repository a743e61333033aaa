"""The desk's pages. Staff only; they read through selectors and act through the services the
pipeline uses, outside any transaction when those call Stripe (billing.services.refund_create)."""

from __future__ import annotations

import logging

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

import outbox
from billing import services as billing
from chargeflow.errors import ApplicationError
from desk import dashboard as dash
from desk import orderfile, search
from desk.forms import RefundForm
from notifications import services as notifications
from notifications.tasks import send_email
from orders import selectors as order_selectors
from orders import services as orders

logger = logging.getLogger(__name__)


def _context(request, **extra):
    # The desk's pages use the whole width: no admin app list on the left.
    return {**admin.site.each_context(request), "is_nav_sidebar_enabled": False, **extra}


def _who(request) -> str:
    return request.user.get_username()


def _order_page(request, file, *, refund_form=None, status=200):
    form = refund_form or RefundForm(order=file.order)
    return TemplateResponse(
        request,
        "desk/order.html",
        _context(
            request,
            title=f"Order {file.order.number}",
            file=file,
            order=file.order,
            refund_form=form,
            shipment_status=orderfile.shipment_status_for(file),
        ),
        status=status,
    )


def _load(order_id):
    file = orderfile.load(order_id)
    if file is None:
        raise Http404("No such order.")
    return file


def _back(order_id, anchor: str = "") -> HttpResponseRedirect:
    return redirect(reverse("desk:order", kwargs={"order_id": order_id}) + anchor)


@staff_member_required
def order_page(request, order_id):
    return _order_page(request, _load(order_id))


@staff_member_required
@require_POST
def order_refund(request, order_id):
    """Refund from the order page. Errors (form or billing's) re-render the order page with the
    form as typed; success redirects back to it (no resubmission on reload)."""
    file = _load(order_id)
    form = RefundForm(request.POST, order=file.order)
    if not form.is_valid():
        return _order_page(request, file, refund_form=form, status=400)
    data = form.cleaned_data
    who = _who(request)
    source = f"admin:{data['token']}"
    asked = data["amount"] if data["amount"] is not None else file.refundable
    first_time = not any(r.source == source for r in file.refunds)
    if first_time:
        # Written before Stripe is called, so the timeline reads: asked, then refunded.
        orders.order_note_add(
            order_id=file.order.id,
            message=f"Refund of {asked} {file.currency} asked from the desk: {data['reason']}",
            by=who,
        )
    try:
        refund, created = billing.refund_create(
            order_id=str(file.order.id),
            source=source,
            reason=f"{data['reason']} (by {who})",
            amount=data["amount"],
        )
    except ApplicationError as exc:
        if first_time:
            orders.order_note_add(
                order_id=file.order.id, message=f"Refund refused: {exc.message}", by=who
            )
        form.add_error(None, exc.message)
        return _order_page(request, _load(order_id), refund_form=form, status=400)
    amount = f"{refund.amount_minor / 100:.2f} {file.currency}"
    if not created:
        messages.info(request, f"This refund was already made ({amount}, {refund.status}).")
        return _back(order_id, "#money")
    messages.success(request, f"Refunded {amount} ({refund.status}).")
    if data["restock"] and data["quantities"]:
        try:
            units = orders.order_restock(
                order_id=file.order.id,
                quantities=data["quantities"],
                by=who,
                reason=data["reason"],
            )
        except ApplicationError as exc:
            messages.warning(request, f"Refunded, but not restocked: {exc.message}")
        else:
            messages.success(request, f"{units} unit(s) put back in stock.")
    return _back(order_id, "#money")


@staff_member_required
@require_POST
def order_retry(request, order_id):
    file = _load(order_id)
    result = orders.order_retry_stuck(order_id=file.order.id, by=_who(request))
    if result.anything:
        messages.success(
            request,
            f"{result.redelivered} failed delivery(ies) sent again, {result.rearmed} event(s) "
            f"due now, {result.republished} published again.",
        )
    else:
        messages.warning(request, "Nothing to retry: look at the dead-letter queues.")
    return _back(order_id)


@staff_member_required
@require_POST
def email_resend(request, order_id):
    file = _load(order_id)
    try:
        log_id = int(request.POST.get("email", ""))
    except ValueError:
        raise Http404("No such email.") from None
    log = next((e for e in file.emails if e.pk == log_id), None)
    if log is None:
        raise Http404("No such email.")
    notifications.email_resend_request(log_id=log.pk, requested_by=_who(request))
    orders.order_note_add(
        order_id=file.order.id,
        message=f"Email {log.kind.replace('_', ' ')} resent from the desk",
        by=_who(request),
    )
    try:
        send_email.delay(log.pk)  # no transaction open here; the beat task is the fallback
    except Exception as exc:  # the broker is down: the beat task sends it when it is back
        logger.warning("resend of email %s not queued now: %s", log.pk, exc)
    messages.success(request, f"{log.kind.replace('_', ' ').capitalize()} email queued again.")
    return _back(order_id, "#emails")


@staff_member_required
def find(request):
    """One box for whatever is quoted: one order opens its page, several are listed."""
    term = request.GET.get("q", "").strip()
    ids = search.order_ids(term)
    if len(ids) == 1:
        return _back(ids[0])
    found = list(order_selectors.orders_by_ids(order_ids=ids)) if ids else []
    return TemplateResponse(
        request,
        "desk/search.html",
        _context(request, title="Find an order", term=term, found=found),
    )


@staff_member_required
def dashboard(request):
    return TemplateResponse(
        request,
        "desk/dashboard.html",
        _context(request, title="Operations dashboard", **dash.summary(fresh=True)),
    )


@staff_member_required
def dead_letters(request):
    queue = request.GET.get("queue") or None
    error = ""
    letters = []
    try:
        letters = outbox.dead_letters(queue)
    except ValueError as exc:
        raise Http404(str(exc)) from exc
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    numbers = order_selectors.order_numbers(order_ids=[letter.aggregate_id for letter in letters])
    depths, depth_error = dash.dead_letter_depths(fresh=True)
    return TemplateResponse(
        request,
        "desk/dead_letters.html",
        _context(
            request,
            title="Dead-letter queues",
            queue=queue,
            letters=[(letter, numbers.get(letter.aggregate_id)) for letter in letters],
            depths=depths,
            error=error or depth_error,
        ),
    )


@staff_member_required
@require_POST
def dead_letters_redrive(request):
    queue = request.POST.get("queue") or None
    selected = set(request.POST.getlist("message"))
    send_all = "send_all" in request.POST
    if not send_all and not selected:
        messages.warning(request, "Choose messages to send back, or send back all.")
    else:
        try:
            result = outbox.dead_letters_redrive(queue, message_ids=None if send_all else selected)
        except ValueError as exc:
            raise Http404(str(exc)) from exc
        logger.info("dead letters redriven by %s: %s", _who(request), result.moved)
        messages.success(
            request,
            f"{result.total} message(s) sent back to their queue "
            "(handled ones are skipped by the inbox).",
        )
    target = reverse("desk:dead-letters")
    return redirect(f"{target}?{urlencode({'queue': queue})}" if queue else target)
