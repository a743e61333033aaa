"""The chaos run's audit helpers (bench/chaos.py): what they count must be right, or the table lies.

The run itself (`make chaos`, `make chaos-short` in CI) starts a whole shop; these tests check the
pieces that turn what it finds into numbers: numbering gaps, the mailbox read through the SMTP
sink, the check table's verdicts.
"""

from __future__ import annotations

import smtplib
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from chaos import Check, check_table, kill_round, mailbox, number_gaps, parse_args


def test_number_gaps_counts_gaps_and_duplicates_per_series():
    assert number_gaps(["2026-000001", "2026-000002", "CN-2026-000001"]) == (0, 0)
    assert number_gaps(["2026-000001", "2026-000003"]) == (1, 0)
    assert number_gaps(["2026-000001", "2026-000001", "2026-000002"]) == (0, 1)
    assert number_gaps(["CN-2026-000002", "2026-000001"]) == (1, 0)  # CN-…-000001 missing
    assert number_gaps([]) == (0, 0)


def test_mailbox_groups_message_ids_by_order_and_kind(tmp_path):
    """Through the real SMTP sink: two copies of one email (same Message-ID) and another kind."""
    from chargeflow.localdev.smtp_sink import start_smtp_sink

    sink = start_smtp_sink(tmp_path / "mailbox", port=0)
    try:
        for kind, message_id in (
            ("shipped", "<shipped.1@x>"),
            ("shipped", "<shipped.1@x>"),
            ("delivered", "<delivered.1@x>"),
        ):
            message = EmailMessage()
            message["From"] = "shop@example.com"
            message["To"] = "ada@example.com"
            message["Subject"] = kind
            message["Message-ID"] = message_id
            message["X-ChargeFlow-Order"] = "CF-1"
            message["X-ChargeFlow-Kind"] = kind
            message.set_content("hello")
            with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as smtp:
                smtp.send_message(message)
    finally:
        sink.stop()
    box = mailbox(tmp_path / "mailbox")
    assert box[("CF-1", "shipped")] == ["<shipped.1@x>", "<shipped.1@x>"]
    assert box[("CF-1", "delivered")] == ["<delivered.1@x>"]


def test_check_table_marks_failures_and_explains_them():
    lines = check_table([Check("orders lost", 0, 0), Check("orders not final", 0, 2, "a b")])
    assert "| orders lost | 0 | 0 | OK |" in lines
    assert "| orders not final | 0 | 2 | FAIL |" in lines
    assert lines[-1] == "FAIL orders not final: a b"


@pytest.mark.parametrize("argv", [[], ["--short"], ["--short", "--orders", "12"]])
def test_short_variant_keeps_every_fault_and_explicit_options(argv):
    args = parse_args(argv)
    assert args.broker_pause > 0 and args.pg_restart and args.kill_rounds > 0
    assert args.partner_errors == 0.2 and args.partner_lost == 0.05
    if "--orders" in argv:
        assert args.orders == 12
    elif argv:
        assert args.orders == 30
    else:
        assert args.orders == 300


def test_a_kill_round_hits_every_process_once_alternating_workers_and_relays():
    import random

    roles = ["orders-worker", "relay-1", "relay-2", "shipping-worker", "worker-1", "worker-2"]
    for seed in range(20):
        order = kill_round(roles, random.Random(seed))
        assert sorted(order) == roles
        assert not order[0].startswith("relay")
        assert [r.startswith("relay") for r in order[:4]] == [False, True, False, True]
