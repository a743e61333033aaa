"""The admin lists, made for an operator: every list shows and finds the order number, no fact
can be deleted or freely edited, and an order opens on its desk page.

The outbox knows nothing about orders, so its lists are extended here (the desk may import
both; docs/architecture.md): their order column and search go through orders' selectors."""

from __future__ import annotations

from django.contrib import admin
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from billing.models import Payment, Refund, StripeCustomer, StripeEvent
from desk import search
from invoicing.models import CreditNote, Invoice, NumberSequence
from notifications.models import EmailLog
from orders.admin import OrderAdmin
from orders.models import Order, OrderCreditNote, OrderLine, TimelineEntry
from orders.selectors import order_numbers
from outbox.admin import FailedDeliveryAdmin, InboxMessageAdmin, OutboxEventAdmin
from outbox.models import FailedDelivery, InboxMessage, OutboxEvent
from shipping.models import Shipment

# Facts: written by the pipeline's services only. No delete anywhere in the admin, and their
# change pages are read-only (each app's ModelAdmin lists its fields as read-only; here the
# permission itself is withdrawn so no Save or Delete button shows).
FACTS = (
    Order,
    OrderLine,
    OrderCreditNote,
    TimelineEntry,
    Payment,
    Refund,
    StripeCustomer,
    StripeEvent,
    Invoice,
    CreditNote,
    NumberSequence,
    Shipment,
    EmailLog,
    OutboxEvent,
    InboxMessage,
    FailedDelivery,
)


# The admin's app list on the left took a quarter of a 1280 px screen and pushed the lists'
# last columns (last error, resolved at) out of sight; the header carries the desk's links and
# the find box instead, and the index page lists every model.
admin.site.enable_nav_sidebar = False


def _when(value) -> str:
    """A timestamp as operators compare it with the logs: local time, to the second."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "–"


def _order_link(order_id: str, number: str | None):
    if not number:
        return order_id
    return format_html('<a href="{}">{}</a>', reverse("desk:order", args=[order_id]), number)


class OrderNumberMixin:
    """A list of rows keyed by an order id (`aggregate_id`): shows the order number, linked to
    the desk, and its search box also takes whatever search.order_ids understands."""

    order_field = "aggregate_id"

    def get_list_display(self, request):
        fields = list(super().get_list_display(request))
        if self.order_field in fields:
            fields[fields.index(self.order_field)] = "order"
        return fields

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        self._numbers = order_numbers(
            order_ids={getattr(row, self.order_field) for row in changelist.result_list}
        )
        return changelist

    @admin.display(description="Order")
    def order(self, obj):
        key = str(getattr(obj, self.order_field))
        return _order_link(key, getattr(self, "_numbers", {}).get(key))

    def get_search_results(self, request, queryset, search_term):
        results, distinct = super().get_search_results(request, queryset, search_term)
        ids = [str(pk) for pk in search.order_ids(search_term)]
        if ids:
            results = results | queryset.filter(**{f"{self.order_field}__in": ids})
        return results, distinct


class ReadOnlyFacts:
    def has_delete_permission(self, request, obj=None):
        return False


NO_SAVE = {
    "show_save": False,
    "show_save_and_continue": False,
    "show_save_and_add_another": False,
    "show_delete_link": False,
}


def _without_save(change_view):
    """A fact's change page is read-only: no Save buttons (the actions stay on the list)."""

    def view(request, object_id, form_url="", extra_context=None):
        return change_view(request, object_id, form_url, {**(extra_context or {}), **NO_SAVE})

    return view


admin.site.unregister(OutboxEvent)
admin.site.unregister(FailedDelivery)
admin.site.unregister(InboxMessage)


@admin.register(OutboxEvent)
class DeskOutboxEventAdmin(OrderNumberMixin, ReadOnlyFacts, OutboxEventAdmin):
    list_display = ("id", "type", "aggregate_id", "status", "attempts", "occurred", "published")

    @admin.display(description="Occurred", ordering="occurred_at")
    def occurred(self, obj: OutboxEvent) -> str:
        return _when(obj.occurred_at)

    @admin.display(description="Published", ordering="published_at")
    def published(self, obj: OutboxEvent) -> str:
        return _when(obj.published_at)


class LiveFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("live", "Live (still failing)"), ("resolved", "Resolved"))

    def queryset(self, request, queryset):
        if self.value() == "live":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(FailedDelivery)
class DeskFailedDeliveryAdmin(OrderNumberMixin, ReadOnlyFacts, FailedDeliveryAdmin):
    list_filter = (LiveFilter, "subscriber")
    list_display = (
        "state",
        "aggregate_id",
        "subscriber",
        "event_type",
        "attempts",
        "error",
        "last_failed",
    )

    @admin.display(description="Last failed", ordering="last_failed_at")
    def last_failed(self, obj: FailedDelivery) -> str:
        return _when(obj.last_failed_at)

    @admin.display(description="State", ordering="resolved_at")
    def state(self, obj: FailedDelivery):
        if obj.resolved_at:
            return format_html(
                '<span style="color:#1b5e2a">Resolved {}</span>', _when(obj.resolved_at)
            )
        return format_html('<strong style="color:#ba2121">{}</strong>', "Live")

    @admin.display(description="Last error")
    def error(self, obj: FailedDelivery):
        lines = (obj.last_error or "").strip().splitlines()
        last = lines[-1] if lines else ""
        return format_html(
            '<span title="{}">{}</span>',
            obj.last_error,
            last[:120] + ("…" if len(last) > 120 else ""),
        )


@admin.register(InboxMessage)
class DeskInboxMessageAdmin(OrderNumberMixin, ReadOnlyFacts, InboxMessageAdmin):
    def has_change_permission(self, request, obj=None):
        return False


class DeskOrderAdmin(ReadOnlyFacts, OrderAdmin):
    """The order list; an order opens on its desk page (the admin's change page would be a
    form of raw fields). Its search also finds PaymentIntents, refunds, credit notes…"""

    list_display = (
        "number_link",
        "email",
        "status",
        "total",
        "currency",
        "created_at",
        "last_progress_at",
        "stuck_since",
    )
    list_display_links = None

    @admin.display(description="Number", ordering="number")
    def number_link(self, order: Order):
        return _order_link(str(order.pk), order.number)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return redirect("desk:order", order_id=object_id)

    def get_search_results(self, request, queryset, search_term):
        results, distinct = super().get_search_results(request, queryset, search_term)
        ids = search.order_ids(search_term)
        if ids:
            results = results | queryset.filter(pk__in=ids)
        return results, distinct


admin.site.unregister(Order)
admin.site.register(Order, DeskOrderAdmin)

for model in FACTS:
    model_admin = admin.site._registry.get(model)
    if model_admin is None or model is Order:
        continue
    # Instance attributes on the registered ModelAdmin (each app's own class stays as it is).
    model_admin.has_delete_permission = lambda request, obj=None: False
    model_admin.change_view = _without_save(model_admin.change_view)
