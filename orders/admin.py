from django.contrib import admin, messages
from django.utils import timezone

from orders.models import Order, OrderCreditNote, OrderLine, Product, TimelineEntry


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "price", "currency", "stock", "is_active")
    list_filter = ("is_active",)
    search_fields = ("sku", "name")
    list_editable = ("stock", "is_active")


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    readonly_fields = ("sku", "name", "unit_price", "quantity", "line_total")
    exclude = ("product",)


class CreditNoteInline(admin.TabularInline):
    model = OrderCreditNote
    extra = 0
    can_delete = False
    readonly_fields = ("number", "amount", "pdf_path", "issued_at")


class TimelineInline(admin.TabularInline):
    model = TimelineEntry
    extra = 0
    can_delete = False
    readonly_fields = ("at", "type", "detail")


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
    list_display = ("number", "email", "status", "total", "currency", "created_at", "stuck_since")
    list_filter = ("status", StuckFilter)
    search_fields = ("number", "id", "email", "invoice_number", "tracking_number")
    date_hierarchy = "created_at"
    inlines = (OrderLineInline, CreditNoteInline, TimelineInline)
    readonly_fields = [f.name for f in Order._meta.fields if f.name not in ()]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Clear the stuck flag (after fixing the cause)")
    def clear_stuck(self, request, queryset):
        count = queryset.update(stuck_since=None, last_progress_at=timezone.now())
        self.message_user(request, f"{count} order(s) unflagged.", messages.SUCCESS)

    actions = ("clear_stuck",)
