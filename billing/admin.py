from django.contrib import admin

from billing.models import Payment, Refund, StripeCustomer


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    readonly_fields = (
        "source",
        "reason",
        "amount_minor",
        "stripe_refund_id",
        "status",
        "created_at",
    )


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ("order_number", "email", "amount_minor", "currency", "status", "updated_at")
    list_filter = ("status",)
    search_fields = ("order_number", "order_id", "email", "stripe_payment_intent_id")
    inlines = (RefundInline,)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Payment._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(StripeCustomer)
class StripeCustomerAdmin(admin.ModelAdmin):
    list_display = ("email", "stripe_id", "created_at")
    search_fields = ("email", "stripe_id")
