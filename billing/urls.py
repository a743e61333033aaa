from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("stripe/webhook/", views.stripe_webhook, name="stripe-webhook"),
    path("pay/<str:token>/", views.payment_action, name="payment-action"),
    path("pay/<str:token>/return/", views.payment_action_return, name="payment-action-return"),
]
