from django.urls import path

from orders import find_views, views

app_name = "orders"

urlpatterns = [
    path("", views.product_list, name="product-list"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("products/<str:sku>/", views.product_detail, name="product-detail"),
    path("cart/", views.cart_view, name="cart"),
    path("cart/add/", views.cart_add, name="cart-add"),
    path("cart/update/", views.cart_update, name="cart-update"),
    path("cart/totals/", views.cart_totals, name="cart-totals"),
    path("checkout/", views.checkout, name="checkout"),
    path("checkout/pay/", views.checkout_pay, name="checkout-pay"),
    path("checkout/complete/", views.checkout_complete, name="checkout-complete"),
    path("orders/find/", find_views.find_order, name="find-order"),
    path("orders/<uuid:order_id>/", views.order_detail, name="order-detail"),
    path("orders/<uuid:order_id>/status.json", views.order_status, name="order-status"),
    # Next to Django's auth views under accounts/ (chargeflow/urls.py includes them first).
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/orders/", views.account_orders, name="account-orders"),
]
