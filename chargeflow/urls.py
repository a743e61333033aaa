from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from chargeflow.auth_views import LoginView
from chargeflow.health import health, ready
from desk.metrics import metrics

urlpatterns = [
    path("health/", health, name="health"),
    path("ready/", ready, name="ready"),
    path("metrics", metrics, name="metrics"),
    path("admin/desk/", include("desk.urls")),
    path("admin/", admin.site.urls),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("orders.api_urls")),
    path("api/v1/", include("billing.api_urls")),
    path("billing/", include("billing.urls")),
    path("notifications/", include("notifications.urls")),
    path("anymail/", include("anymail.urls")),  # ESP tracking webhooks (notifications)
    path("", include("orders.urls")),
]

# JSON errors under /api/ (paths the API's routes do not match, requests Django refuses).
handler400 = "chargeflow.api.bad_request"
handler404 = "chargeflow.api.page_not_found"
handler500 = "chargeflow.api.server_error"
