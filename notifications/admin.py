from django.contrib import admin, messages
from django.db import transaction
from django.db.models import OuterRef, Subquery

from notifications import services
from notifications.models import EmailAttempt, EmailLog, OrderContact
from notifications.selectors import FAILED_STATUSES
from notifications.tasks import send_email


class EmailAttemptInline(admin.TabularInline):
    model = EmailAttempt
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "number",
        "at",
        "status",
        "forced",
        "requested_by",
        "provider",
        "message_id",
        "error",
        "tracking_event",
        "tracking_detail",
        "tracking_at",
    )

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class FailedFilter(admin.SimpleListFilter):
    title = "failed"
    parameter_name = "failed"

    def lookups(self, request, model_admin):
        return (("yes", "Failed, bounced or marked as spam"),)

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(status__in=FAILED_STATUSES)
        return queryset


@admin.register(EmailLog)
class EmailLogAdmin(admin.ModelAdmin):
    # What an operator scans; provider, retries and the order id are on the email's page.
    list_display = ("order_number", "kind", "recipient", "status", "updated_at")
    list_filter = (FailedFilter, "status", "kind", "provider")
    search_fields = ("order_id", "recipient", "message_id")

    def get_search_results(self, request, queryset, search_term):
        """Also by the order number the customer quotes (CF-…), through OrderContact."""
        results, distinct = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term:
            ids = OrderContact.objects.filter(order_number__iexact=term).values("order_id")
            results = results | queryset.filter(order_id__in=ids)
        return results, distinct

    inlines = (EmailAttemptInline,)
    actions = ("resend",)

    def get_queryset(self, request):
        contact = OrderContact.objects.filter(order_id=OuterRef("order_id"))
        return (
            super()
            .get_queryset(request)
            .annotate(order_number=Subquery(contact.values("order_number")[:1]))
        )

    @admin.display(description="Order", ordering="order_number")
    def order_number(self, obj: EmailLog) -> str | None:
        return obj.order_number

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in EmailLog._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Resend the selected emails (one more attempt each)")
    def resend(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        for log_id in ids:
            services.email_resend_request(log_id=log_id, requested_by=request.user.get_username())
            # After commit, never inside a transaction; the beat task is the fallback.
            transaction.on_commit(lambda log_id=log_id: send_email.delay(log_id), robust=True)
        self.message_user(
            request,
            f"{len(ids)} email(s) queued for resending; each attempt shows below the email.",
            messages.SUCCESS,
        )


@admin.register(OrderContact)
class OrderContactAdmin(admin.ModelAdmin):
    list_display = ("order_number", "email", "created_at")
    search_fields = ("order_number", "order_id", "email")
