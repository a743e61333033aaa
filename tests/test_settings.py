"""Settings come from the environment; production refuses to start without real secrets."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# Real-looking production values (none of them published anywhere).
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "t3st-Only_9xQ2vL7mZp4Rk8Wc1Nd6Yh0Bf5Gj3Ts2Ue7Io4Pa",
    "ALLOWED_HOSTS": "shop.example.com",
    "STRIPE_SECRET_KEY": "sk_live_not_a_real_key_0123456789",
    "STRIPE_PUBLISHABLE_KEY": "pk_live_not_a_real_key_0123456789",
    "STRIPE_WEBHOOK_SECRET": "whsec_not_a_real_secret_0123456789",
    "SHIPPING_PARTNER_API_KEY": "partner-key-not-real-0123456789",
    "ANYMAIL_WEBHOOK_SECRET": "ses:not-a-real-secret-0123456789",
}
CONFIGURED = {
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DEBUG",
    *PRODUCTION,
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "DJANGO_ALLOW_ASYNC_UNSAFE",  # set by the browser tests; never in a deployment
}


def load_settings(
    *, code: str = "print(s.DATABASES['default']['ENGINE'])", **env: str
) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in CONFIGURED}
    return subprocess.run(
        [sys.executable, "-c", f"import chargeflow.settings as s; {code}"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "chargeflow.settings", **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_debug_off_refuses_to_start_without_a_secret_key():
    result = load_settings(**{**PRODUCTION, "SECRET_KEY": ""})
    assert result.returncode != 0
    assert "set SECRET_KEY" in result.stderr


def test_debug_off_refuses_to_start_without_allowed_hosts():
    result = load_settings(**{**PRODUCTION, "ALLOWED_HOSTS": ""})
    assert result.returncode != 0
    assert "set ALLOWED_HOSTS" in result.stderr


def test_debug_off_starts_with_real_secrets():
    result = load_settings(**PRODUCTION)
    assert result.returncode == 0, result.stderr


def test_debug_is_off_unless_set():
    result = load_settings(
        **{k: v for k, v in PRODUCTION.items() if k != "DEBUG"}, code="print(s.DEBUG)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    # Nothing set at all: production mode, which refuses to start without its secrets.
    assert load_settings().returncode != 0


@pytest.mark.parametrize(
    ("name", "example"),
    [
        ("STRIPE_WEBHOOK_SECRET", "whsec_chargeflow_local"),
        ("ANYMAIL_WEBHOOK_SECRET", "local:webhook-secret"),
        ("STRIPE_SECRET_KEY", "sk_test_chargeflow_local"),
        ("STRIPE_PUBLISHABLE_KEY", "pk_test_chargeflow_local"),
        ("SHIPPING_PARTNER_API_KEY", "dev-partner-key"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
    ],
)
def test_debug_off_refuses_every_published_example_secret(name, example):
    result = load_settings(**{**PRODUCTION, name: example})
    assert result.returncode != 0
    assert f"replace the published example value of {name}" in result.stderr


@pytest.mark.parametrize(
    "name", ["STRIPE_WEBHOOK_SECRET", "ANYMAIL_WEBHOOK_SECRET", "STRIPE_SECRET_KEY"]
)
def test_debug_off_refuses_a_missing_secret(name):
    result = load_settings(**{**PRODUCTION, name: ""})
    assert result.returncode != 0
    assert f"set {name}" in result.stderr


def test_env_example_secrets_are_all_refused():
    """Every secret .env.example publishes is in the refusal list."""
    from chargeflow.settings import EXAMPLE_SECRETS

    example = dict(
        line.split("#")[0].strip().split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    for name, value in example.items():
        if name.endswith(("_SECRET", "_KEY", "PASSWORD")) and value.strip():
            assert value.strip() in EXAMPLE_SECRETS.get(name, set()), name


def test_production_transport_security_defaults():
    code = (
        "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE,"
        " s.CSRF_COOKIE_SECURE, hasattr(s, 'SECURE_PROXY_SSL_HEADER'), s.STRIPE_API_BASE == '')"
    )
    result = load_settings(**PRODUCTION, code=code)
    assert result.stdout.split() == ["True", "31536000", "True", "True", "False", "True"]
    behind_proxy = load_settings(
        **PRODUCTION,
        SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
        code="print(s.SECURE_PROXY_SSL_HEADER)",
    )
    assert behind_proxy.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https')"


def test_check_deploy_is_clean_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k not in CONFIGURED},
            "DJANGO_SETTINGS_MODULE": "chargeflow.settings",
            **PRODUCTION,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_embedded_defaults_and_postgres_when_configured():
    embedded = load_settings(DEBUG="true", DATABASE_URL="")
    assert embedded.stdout.strip() == "django.db.backends.sqlite3"
    pg = load_settings(DEBUG="true", DATABASE_URL="postgres://u@127.0.0.1:5432/db")
    assert pg.stdout.strip() == "chargeflow.postgresql"  # Django's, cheaper health check


def test_env_example_lists_every_setting_the_settings_read():
    source = (ROOT / "chargeflow" / "settings.py").read_text()
    read = set(re.findall(r'\benv(?:_bool|_int|_list)?\(\s*"([A-Z][A-Z0-9_]*)"', source))
    read |= set(re.findall(r'os\.environ\.get\("([A-Z][A-Z0-9_]*)"', source))
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    assert read - listed == set(), "read by settings.py but missing from .env.example"
    # Read by a library, not by settings.py: prometheus_client's multiprocess mode.
    read_elsewhere = {"PROMETHEUS_MULTIPROC_DIR"}
    assert listed - read - read_elsewhere == set(), "in .env.example but never read"
