from django.contrib import admin, messages
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join

import outbox
from orders import presenters
from orders.models import (
    Order,
    OrderCreditNote,
    OrderLine,
    Product,
    ShippingZone,
    TaxRate,
    TimelineEntry,
)
from orders.services import order_retry_stuck, order_unflag_stuck


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "price", "currency", "stock", "is_active")
    list_filter = ("is_active",)
    search_fields = ("sku", "name")
    list_editable = ("stock", "is_active")


@admin.register(TaxRate)
class TaxRateAdmin(admin.ModelAdmin):
    """Changes apply to orders placed afterwards; placed orders keep their totals."""

    list_display = ("country", "name", "rate", "applies_to_shipping")
    search_fields = ("country",)


@admin.register(ShippingZone)
class ShippingZoneAdmin(admin.ModelAdmin):
    list_display = ("name", "countries", "fee", "free_shipping_threshold")
    search_fields = ("name", "countries")


def _with_seconds(value) -> str:
    """A timestamp as operators compare it with the logs: local time, to the second."""
    return date_format(timezone.localtime(value), "Y-m-d H:i:s") if value else "-"


class ReadOnlyInline(admin.TabularInline):
    """An order's record (lines, credit notes, timeline): shown, never added or removed here."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    readonly_fields = ("sku", "name", "unit_price", "quantity", "line_total")
    exclude = ("product",)


class CreditNoteInline(ReadOnlyInline):
    model = OrderCreditNote
    fields = ("number", "amount", "pdf_path", "issued")
    readonly_fields = fields

    @admin.display(description="Issued at")
    def issued(self, note: OrderCreditNote) -> str:
        return _with_seconds(note.issued_at)


class TimelineInline(ReadOnlyInline):
    model = TimelineEntry
    fields = ("time", "type", "description", "detail")
    readonly_fields = fields

    @admin.display(description="At")
    def time(self, entry: TimelineEntry) -> str:
        return _with_seconds(entry.at)

    @admin.display(description="What happened")
    def description(self, entry: TimelineEntry) -> str:
        return presenters.describe(entry, currency=entry.order.currency, customer=False)


class StuckFilter(admin.SimpleListFilter):
    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return (("yes", "Stuck"),)

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(stuck_since__isnull=False)
        return queryset


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = (
        "number",
        "email",
        "status",
        "total",
        "currency",
        "created_at",
        "last_progress_at",
        "stuck_since",
    )
    list_filter = ("status", StuckFilter)
    search_fields = ("number", "id", "email", "invoice_number", "tracking_number")
    date_hierarchy = "created_at"
    inlines = (OrderLineInline, CreditNoteInline, TimelineInline)
    readonly_fields = ["delivery_failures", "unpublished_events"] + [
        f.name for f in Order._meta.fields
    ]
    actions = ("retry_stuck_step", "clear_stuck")

    def has_add_permission(self, request):
        return False

    @admin.display(description="Failed deliveries (cause)")
    def delivery_failures(self, order: Order):
        failures = outbox.undelivered(order.id).failures
        if not failures:
            return "None"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li><strong>{} &larr; {}</strong> ({} attempt(s), last {}):"
                "<br><code>{}</code></li>",
                (
                    (f.subscriber, f.event_type, f.attempts, f.last_failed_at, f.last_error)
                    for f in failures
                ),
            ),
        )

    @admin.display(description="Unpublished outbox events")
    def unpublished_events(self, order: Order):
        events = outbox.undelivered(order.id).unpublished
        if not events:
            return "None"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{} ({}, {} attempt(s)) {}</li>",
                ((e.event_type, e.status, e.attempts, e.last_error) for e in events),
            ),
        )

    @admin.action(description="Retry the stuck step (redeliver failures, republish events)")
    def retry_stuck_step(self, request, queryset):
        redelivered = rearmed = republished = nothing = 0
        for order in queryset.order_by("pk"):
            result = order_retry_stuck(order_id=order.pk, by=request.user.get_username())
            redelivered += result.redelivered
            rearmed += result.rearmed
            republished += result.republished
            nothing += not result.anything
        summary = (
            f"{redelivered} failed delivery(ies) sent again, {rearmed} outbox event(s) due now."
        )
        if republished:
            summary += f" {republished} published event(s) sent again (handled ones are skipped)."
        self.message_user(request, summary, messages.SUCCESS)
        if nothing:
            self.message_user(
                request,
                f"{nothing} order(s) had nothing to retry: look at the dead-letter queues and "
                "the worker logs for their order id.",
                messages.WARNING,
            )

    @admin.action(description="Clear the stuck flag (after fixing the cause)")
    def clear_stuck(self, request, queryset):
        count = 0
        for order in queryset.filter(stuck_since__isnull=False).order_by("pk"):
            order_unflag_stuck(order_id=order.pk, by=request.user.get_username())
            count += 1
        self.message_user(request, f"{count} order(s) unflagged.", messages.SUCCESS)
