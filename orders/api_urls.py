from django.urls import path

from orders import api

app_name = "api"

urlpatterns = [
    path("products/", api.ProductListView.as_view(), name="product-list"),
    path("orders/", api.OrderCreateView.as_view(), name="order-create"),
    path("payment-intents/", api.PaymentIntentCreateView.as_view(), name="payment-intent-create"),
    path("orders/<uuid:order_id>/", api.OrderDetailView.as_view(), name="order-detail"),
    path(
        "orders/<uuid:order_id>/invoice.pdf",
        api.invoice_pdf,
        name="order-invoice-pdf",
    ),
    path(
        "orders/<uuid:order_id>/credit-notes/<str:number>.pdf",
        api.credit_note_pdf,
        name="order-credit-note-pdf",
    ),
]
