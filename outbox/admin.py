from django.contrib import admin, messages
from django.db import transaction

from outbox.models import FailedDelivery, InboxMessage, OutboxEvent
from outbox.services import events_rearm, events_republish, failures_redeliver


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "type",
        "aggregate_id",
        "status",
        "attempts",
        "occurred_at",
        "published_at",
    )
    list_filter = ("status", "type")
    search_fields = ("aggregate_id", "event_id", "correlation_id", "last_error")
    readonly_fields = [f.name for f in OutboxEvent._meta.fields]
    actions = ("retry_now", "publish_again")

    def has_add_permission(self, request):
        return False

    @admin.action(description="Publish again (subscribers that already handled it skip it)")
    def publish_again(self, request, queryset):
        """Recovery for messages lost after publishing (a purged queue, an emulator restarted
        with messages in it): send the events again; the inbox makes duplicates harmless."""
        count = events_republish(events=queryset)
        self.message_user(request, f"{count} event(s) will be published again.", messages.SUCCESS)

    @admin.action(description="Retry publishing now")
    def retry_now(self, request, queryset):
        count = events_rearm(events=queryset)
        self.message_user(request, f"{count} event(s) will be published on the relay's next pass.")


@admin.register(InboxMessage)
class InboxMessageAdmin(admin.ModelAdmin):
    list_display = ("event_type", "subscriber", "aggregate_id", "event_id", "handled_at")
    list_filter = ("subscriber", "event_type")
    search_fields = ("aggregate_id", "event_id")
    readonly_fields = [f.name for f in InboxMessage._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(FailedDelivery)
class FailedDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "subscriber",
        "event_type",
        "aggregate_id",
        "attempts",
        "last_failed_at",
        "resolved_at",
    )
    list_filter = (("resolved_at", admin.EmptyFieldListFilter), "subscriber")
    search_fields = ("aggregate_id", "event_id", "last_error")
    readonly_fields = [f.name for f in FailedDelivery._meta.fields]
    actions = ("redeliver",)

    def has_add_permission(self, request):
        return False

    @admin.action(description="Redeliver to the subscriber now")
    def redeliver(self, request, queryset):
        with transaction.atomic():
            sent = failures_redeliver(failures=queryset.order_by("id"))
        self.message_user(request, f"{len(sent)} delivery(ies) sent again.", messages.SUCCESS)
