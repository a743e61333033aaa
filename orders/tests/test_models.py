from orders.models import Order, TimelineEntry


def test_payment_statuses_are_the_ones_the_api_contract_lists():
    # DESIGN.md §6: `payment.status` is one of these (blank, before billing reports, is `null`).
    assert set(Order.PaymentStatus.values) == {
        "pending",
        "succeeded",
        "failed",
        "action_required",
        "refunded",
        "partially_refunded",
    }


def test_timeline_types_include_the_two_the_api_contract_names():
    assert {"status_changed", "email_sent"} <= set(TimelineEntry.Type.values)
