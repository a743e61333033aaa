"""Settings come from the environment; production refuses to start without real secrets."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_settings(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS"}}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import chargeflow.settings as s; print(s.DATABASES['default']['ENGINE'])",
        ],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "chargeflow.settings", **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_debug_off_refuses_to_start_without_a_secret_key():
    result = load_settings(DEBUG="false", ALLOWED_HOSTS="shop.example.com")
    assert result.returncode != 0
    assert "set SECRET_KEY" in result.stderr


def test_debug_off_refuses_to_start_without_allowed_hosts():
    result = load_settings(DEBUG="false", SECRET_KEY="x" * 50)
    assert result.returncode != 0
    assert "set ALLOWED_HOSTS" in result.stderr


def test_debug_off_starts_with_both():
    result = load_settings(DEBUG="false", SECRET_KEY="x" * 50, ALLOWED_HOSTS="shop.example.com")
    assert result.returncode == 0, result.stderr


def test_embedded_defaults_and_postgres_when_configured():
    embedded = load_settings(DATABASE_URL="")
    assert embedded.stdout.strip() == "django.db.backends.sqlite3"
    pg = load_settings(DATABASE_URL="postgres://u@127.0.0.1:5432/db")
    assert pg.stdout.strip() == "django.db.backends.postgresql"
