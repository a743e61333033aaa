from django.contrib import admin

from shipping.models import Shipment


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    list_display = (
        "order_number",
        "status",
        "carrier",
        "tracking_number",
        "attempts",
        "failure_reason",
        "updated_at",
    )
    list_filter = ("status",)
    search_fields = ("order_number", "order_id", "tracking_number", "partner_shipment_id")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Shipment._meta.fields]

    def has_add_permission(self, request):
        return False
