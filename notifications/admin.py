from django.contrib import admin, messages
from django.db import transaction

from notifications import services
from notifications.models import EmailAttempt, EmailLog, OrderContact
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


@admin.register(EmailLog)
class EmailLogAdmin(admin.ModelAdmin):
    list_display = (
        "kind",
        "recipient",
        "order_id",
        "status",
        "attempts",
        "provider",
        "sent_at",
        "next_attempt_at",
    )
    list_filter = ("status", "kind", "provider")
    search_fields = ("order_id", "recipient", "message_id")
    inlines = (EmailAttemptInline,)
    actions = ("resend",)

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
