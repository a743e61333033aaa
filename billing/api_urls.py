from django.urls import path

from billing import api

app_name = "billing-api"

urlpatterns = [
    path("orders/<uuid:order_id>/refunds/", api.OrderRefundView.as_view(), name="order-refunds"),
]
