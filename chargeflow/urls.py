from django.contrib import admin
from django.urls import include, path

from chargeflow.auth_views import LoginView
from chargeflow.health import health

urlpatterns = [
    path("health/", health, name="health"),
    path("admin/", admin.site.urls),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("orders.api_urls")),
    path("api/v1/", include("billing.api_urls")),
    path("billing/", include("billing.urls")),
    path("notifications/", include("notifications.urls")),
    path("anymail/", include("anymail.urls")),  # ESP tracking webhooks (notifications)
    path("", include("orders.urls")),
]
