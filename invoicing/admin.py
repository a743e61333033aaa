from django.contrib import admin

from chargeflow.money import format_amount
from invoicing.models import (
    CreditNote,
    Invoice,
    InvoiceLine,
    NumberSequence,
)


class ReadOnlyInline(admin.TabularInline):
    """Issued documents never change: no add link, no editable field."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class InvoiceLineInline(ReadOnlyInline):
    model = InvoiceLine
    fields = readonly_fields = ("sku", "description", "quantity", "unit_price", "line_total")


class CreditNoteInline(ReadOnlyInline):
    model = CreditNote
    fields = readonly_fields = ("number", "source", "reason", "amount", "issued_at", "pdf")


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    """Issued invoices are immutable: everything is read-only."""

    list_display = ("number", "order_number", "amount", "issued_at")
    search_fields = ("number", "order_number", "order_id", "email")
    inlines = (InvoiceLineInline, CreditNoteInline)

    @admin.display(description="Total", ordering="total")
    def amount(self, obj: Invoice) -> str:
        return format_amount(obj.total, obj.currency)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Invoice._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CreditNote)
class CreditNoteAdmin(admin.ModelAdmin):
    list_display = ("number", "invoice", "credited", "issued_at")
    list_select_related = ("invoice",)
    search_fields = ("number", "invoice__number", "invoice__order_id")

    @admin.display(description="Amount", ordering="amount")
    def credited(self, obj: CreditNote) -> str:
        return format_amount(obj.amount, obj.invoice.currency)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in CreditNote._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(NumberSequence)
class NumberSequenceAdmin(admin.ModelAdmin):
    list_display = ("series", "year", "last_value")

    def get_readonly_fields(self, request, obj=None):
        return ("series", "year", "last_value")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
