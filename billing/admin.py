import uuid

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from billing import services
from billing.models import Payment, Refund, StripeCustomer, StripeEvent
from chargeflow.errors import ApplicationError


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

    def has_add_permission(self, request, obj=None):
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


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ("order_number", "email", "amount_minor", "currency", "status", "updated_at")
    list_filter = ("status",)
    search_fields = ("order_number", "order_id", "email", "stripe_payment_intent_id")
    inlines = (RefundInline,)
    actions = ("refund",)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Payment._meta.fields]

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
                    f"{verb} {refund.amount_minor / 100:.2f} {payment.currency} "
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
