from django.contrib import admin

from invoicing.models import (
    CreditNote,
    Invoice,
    InvoiceLine,
    NumberSequence,
    ShippingZone,
    TaxRate,
)


@admin.register(TaxRate)
class TaxRateAdmin(admin.ModelAdmin):
    list_display = ("country", "name", "rate", "applies_to_shipping")
    search_fields = ("country",)


@admin.register(ShippingZone)
class ShippingZoneAdmin(admin.ModelAdmin):
    list_display = ("name", "countries", "fee", "free_shipping_threshold")
    search_fields = ("name", "countries")


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    readonly_fields = ("sku", "description", "quantity", "unit_price", "line_total")

    def has_add_permission(self, request, obj=None):
        return False


class CreditNoteInline(admin.TabularInline):
    model = CreditNote
    extra = 0
    can_delete = False
    readonly_fields = ("number", "source", "reason", "amount", "issued_at", "pdf")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    """Issued invoices are immutable: everything is read-only."""

    list_display = ("number", "order_number", "email", "total", "currency", "issued_at")
    search_fields = ("number", "order_number", "order_id", "email")
    inlines = (InvoiceLineInline, CreditNoteInline)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Invoice._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CreditNote)
class CreditNoteAdmin(admin.ModelAdmin):
    list_display = ("number", "invoice", "amount", "reason", "issued_at")
    search_fields = ("number", "invoice__number", "invoice__order_id")

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
