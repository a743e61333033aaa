from django.contrib import admin

from shipping.models import Shipment


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    # What an operator scans; attempts and the failure reason are on the shipment's page.
    list_display = ("order_number", "status", "carrier", "tracking_number", "updated_at")
    list_filter = ("status",)
    search_fields = ("order_number", "order_id", "tracking_number", "partner_shipment_id")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Shipment._meta.fields]

    def has_add_permission(self, request):
        return False
