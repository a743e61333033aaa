from django.urls import path

from desk import views

app_name = "desk"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("find/", views.find, name="find"),
    path("orders/<uuid:order_id>/", views.order_page, name="order"),
    path("orders/<uuid:order_id>/refund/", views.order_refund, name="order-refund"),
    path("orders/<uuid:order_id>/retry/", views.order_retry, name="order-retry"),
    path("orders/<uuid:order_id>/resend/", views.email_resend, name="email-resend"),
    path("dead-letters/", views.dead_letters, name="dead-letters"),
    path("dead-letters/redrive/", views.dead_letters_redrive, name="dead-letters-redrive"),
]
