import uuid

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from billing import services
from billing.models import Payment, Refund, StripeCustomer, StripeEvent
from chargeflow.errors import ApplicationError
from chargeflow.money import format_amount, from_minor


def _money(minor: int | None, currency: str) -> str | None:
    """Integer minor units as "1,271.96 EUR" (None shows as the admin's empty value)."""
    return None if minor is None else format_amount(from_minor(minor), currency)


class RefundInline(admin.TabularInline):
    """Refunds are made with the "Refund" action and never edited here: read-only."""

    model = Refund
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "source",
        "reason",
        "amount",
        "status",
        "stripe_refund_id",
        "created_at",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("payment")

    @admin.display(description="Amount")
    def amount(self, obj: Refund) -> str | None:
        return _money(obj.amount_minor, obj.payment.currency)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RefundForm(forms.Form):
    amount = forms.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=0,
        required=False,
        help_text="Empty: everything not refunded yet.",
    )
    reason = forms.CharField(max_length=255)
    # Generated when the form is shown: submitting it twice refunds once.
    token = forms.CharField(widget=forms.HiddenInput)


# Integer minor-unit fields and the display method shown in their place.
PAYMENT_AMOUNTS = {
    "expected_subtotal_minor": "expected_subtotal",
    "expected_total_minor": "expected_total",
    "amount_minor": "amount",
    "refunded_minor": "refunded",
}


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ("order_number", "status", "amount", "updated_at")
    list_filter = ("status",)
    search_fields = ("order_number", "order_id", "email", "stripe_payment_intent_id")
    inlines = (RefundInline,)
    actions = ("refund",)

    @admin.display(description="Amount", ordering="amount_minor")
    def amount(self, obj: Payment) -> str | None:
        return _money(obj.amount_minor, obj.currency)

    @admin.display(description="Refunded")
    def refunded(self, obj: Payment) -> str | None:
        return _money(obj.refunded_minor, obj.currency)

    @admin.display(description="Expected subtotal")
    def expected_subtotal(self, obj: Payment) -> str | None:
        return _money(obj.expected_subtotal_minor, obj.currency)

    @admin.display(description="Expected total")
    def expected_total(self, obj: Payment) -> str | None:
        return _money(obj.expected_total_minor, obj.currency)

    def get_fields(self, request, obj=None):
        return [PAYMENT_AMOUNTS.get(f.name, f.name) for f in Payment._meta.fields]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Refund (full or partial)…", permissions=("change",))
    def refund(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Refund one payment at a time.", messages.WARNING)
            return None
        payment = queryset.get()
        if "apply" in request.POST:
            form = RefundForm(request.POST)
            if form.is_valid():
                try:
                    refund, created = services.refund_create(
                        order_id=str(payment.order_id),
                        source=f"admin:{form.cleaned_data['token']}",
                        reason=form.cleaned_data["reason"],
                        amount=form.cleaned_data["amount"],
                    )
                except ApplicationError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                    return None
                verb = "Refunded" if created else "Already refunded"
                self.message_user(
                    request,
                    f"{verb} {_money(refund.amount_minor, payment.currency)} "
                    f"on {payment.order_number}.",
                    messages.SUCCESS,
                )
                return None
        else:
            form = RefundForm(initial={"token": uuid.uuid4().hex})
        return TemplateResponse(
            request,
            "admin/billing/refund.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Refund {payment.order_number}",
                "payment": payment,
                "form": form,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )


@admin.register(StripeCustomer)
class StripeCustomerAdmin(admin.ModelAdmin):
    list_display = ("email", "stripe_id", "created_at")
    search_fields = ("email", "stripe_id")


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin):
    list_display = ("event_id", "type", "order_id", "received_at")
    list_filter = ("type",)
    search_fields = ("event_id", "object_id", "order_id")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in StripeEvent._meta.fields]

    def has_add_permission(self, request):
        return False
