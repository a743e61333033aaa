from django.contrib import admin

from notifications.models import EmailLog, OrderContact


@admin.register(EmailLog)
class EmailLogAdmin(admin.ModelAdmin):
    list_display = ("kind", "recipient", "order_id", "status", "provider", "sent_at")
    list_filter = ("status", "kind")
    search_fields = ("order_id", "recipient", "message_id")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in EmailLog._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(OrderContact)
class OrderContactAdmin(admin.ModelAdmin):
    list_display = ("order_number", "email", "created_at")
    search_fields = ("order_number", "order_id", "email")
