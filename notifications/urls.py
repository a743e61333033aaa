from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("mailbox/", views.mailbox, name="mailbox"),
    path("mailbox/<str:name>/", views.mailbox_message, name="mailbox-message"),
    path("mailbox/<str:name>/html/", views.mailbox_message_html, name="mailbox-message-html"),
    path(
        "mailbox/<str:name>/attachments/<int:index>/",
        views.mailbox_attachment,
        name="mailbox-attachment",
    ),
]
