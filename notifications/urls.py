from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("mailbox/", views.mailbox, name="mailbox"),
    path("mailbox/<str:name>/", views.mailbox_message, name="mailbox-message"),
]
