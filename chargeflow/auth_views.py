"""Django's login view with the project's `next` rule (chargeflow.redirects)."""

from django.contrib.auth import views as auth_views

from chargeflow.redirects import SafeNextMixin


class LoginView(SafeNextMixin, auth_views.LoginView):
    pass
