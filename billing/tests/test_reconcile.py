import uuid

import pytest
from django.core.management import call_command

from billing.models import Payment, Refund
from billing.stripe_client import stripe_client
from billing.tests.helpers import charge, events, prepare
from billing.tests.test_webhook import intent_created_at_stripe_only

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, int]:
    from io import StringIO

    out = StringIO()
    try:
        call_command("reconcile_payments", *args, stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return out.getvalue(), code


def test_reconcile_reports_and_repairs_mismatches(stripe_server):
    stripe_server.flush()
    clean = prepare()
    charge(clean)
    refunded_elsewhere = prepare()
    payment = charge(refunded_elsewhere)
    stripe_client().v1.refunds.create(
        params={
            "payment_intent": payment.stripe_payment_intent_id,
            "amount": 500,
            "metadata": {"order_id": refunded_elsewhere, "source": "api:lost"},
        }
    )
    lost_worker = prepare()
    intent_created_at_stripe_only(lost_worker)
    stranger = str(uuid.uuid4())
    stripe_client().v1.payment_intents.create(
        params={"amount": 100, "currency": "eur", "metadata": {"order_id": stranger}}
    )

    report, code = run()
    assert code == 1
    assert f"MISMATCH order {refunded_elsewhere} refund_missing_here" in report
    assert f"MISMATCH order {lost_worker} status: ours pending, Stripe succeeded" in report
    assert f"MISMATCH order {stranger} unknown_order" in report
    assert clean not in report
    assert Payment.objects.get(order_id=lost_worker).status == "pending"  # report only

    report, code = run("--repair")
    assert f"REPAIRED order {refunded_elsewhere} refund_missing_here" in report
    assert f"REPAIRED order {lost_worker} status" in report
    assert Payment.objects.get(order_id=lost_worker).status == "succeeded"
    assert len(events("payment.succeeded", lost_worker)) == 1
    adopted = Refund.objects.get(payment__order_id=refunded_elsewhere)
    assert (adopted.amount_minor, adopted.source) == (500, "api:lost")
    assert Payment.objects.get(order_id=refunded_elsewhere).status == "partially_refunded"

    report, code = run()
    assert report.count("MISMATCH") == 1 and "unknown_order" in report  # a person decides
