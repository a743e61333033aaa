"""Logs of a whole pipeline run hold no secrets (issue 13): the web process under gunicorn with
the project's config (its access log), the relay and the worker, while a guest orders through
the API, reads the order with its token, follows the emailed link and the order page polls,
and someone guesses a Basic-auth password. None of the order's tokens, the customer's email
address, card data, the guessed password or the configured secrets may appear in any log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from conftest import GUEST_ADDRESS, GUEST_ITEMS, ROOT, _child_env, free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

EMAIL = "ada.logcheck@example.com"
PASSWORD_GUESS = "hunter2-not-in-any-log"


@pytest.fixture
def web(live_stack, tmp_path):
    port = free_port()
    log_path = tmp_path / "web.log"
    log = open(log_path, "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "chargeflow.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "4",
            "--access-logfile",
            "-",
        ],
        cwd=ROOT,
        env=_child_env({"SITE_URL": f"http://127.0.0.1:{port}"}),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: _answers(f"{base}/api/v1/products/"), timeout=30, message="gunicorn to answer"
    )
    yield base, log_path
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(20)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_a_whole_pipeline_run_leaves_no_secret_in_any_log(
    web, live_stack, stripe_server, partner, mailbox, catalog
):
    base, web_log = web
    # The stack's logs are appended to across runs: read this run's part only.
    paths = {
        role: live_stack.logs / f"{live_stack.name}-{role}.log" for role in ("relay", "worker")
    }
    offsets = {role: path.stat().st_size if path.exists() else 0 for role, path in paths.items()}
    live_stack.start("relay")
    live_stack.start("worker")

    created = requests.post(
        f"{base}/api/v1/orders/",
        json={
            "email": EMAIL,
            "shipping_address": GUEST_ADDRESS,
            "items": GUEST_ITEMS,
            "payment_method": "pm_card_visa",
        },
        headers={"Idempotency-Key": "log-hygiene-1"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    order = created.json()
    token = order["access_token"]

    def shipped():
        response = requests.get(
            f"{base}/api/v1/orders/{order['id']}/", headers={"X-Order-Token": token}, timeout=10
        )
        return response.json()["status"] in {"shipped", "delivered"}

    wait_until(shipped, timeout=120, interval=1, message="the order to ship")

    # The guest follows the emailed link; the page then polls its status.
    confirmation = next(m for m in mailbox.messages() if order["number"] in m["Subject"])
    text = confirmation.get_body(("plain",)).get_content()
    link = next(word for word in text.split() if "?token=" in word)
    link_token = link.split("?token=", 1)[1]
    browser = requests.Session()
    page = browser.get(link, timeout=10)
    assert page.status_code == 200 and page.url == f"{base}/orders/{order['id']}/"
    assert browser.get(f"{page.url}status.json", timeout=10).status_code == 200

    # A password guess over Basic authentication.
    guess = requests.get(f"{base}/api/v1/products/", auth=("admin", PASSWORD_GUESS), timeout=10)
    assert guess.status_code in (401, 403)

    time.sleep(1)  # let the processes flush their logs
    logs = {"web (gunicorn)": web_log.read_text(errors="replace")}
    for role, path in paths.items():
        with open(path, "rb") as log:
            log.seek(offsets[role])
            logs[role] = log.read().decode(errors="replace")
    assert logs["worker"], "the worker logged nothing"
    assert f"/orders/{order['id']}/" in logs["web (gunicorn)"]  # the access log is there

    secrets = {
        "the API access token": token,
        "the emailed link's token": link_token,
        "the customer's email address": EMAIL,
        "a card number": "4242424242424242",
        "a guessed password": PASSWORD_GUESS,
        "the Stripe secret key": settings.STRIPE_SECRET_KEY,
        "the Stripe webhook secret": settings.STRIPE_WEBHOOK_SECRET,
        "the partner API key": settings.SHIPPING_PARTNER_API_KEY,
        "the anymail webhook secret": settings.ANYMAIL["WEBHOOK_SECRET"],
    }
    leaks = [
        f"{what} in the {name} log"
        for name, content in logs.items()
        for what, value in secrets.items()
        if value and value in content
    ]
    assert leaks == []
