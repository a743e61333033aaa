"""The outbox, the inbox and the relay, against the real database and the SQS emulator."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import timedelta

import pytest
from celery import Celery
from django.db import connection, transaction
from django.utils import timezone

from chargeflow.celery import app
from conftest import wait_until
from outbox import Event, RetryLater, publish, subscriber
from outbox.delivery import deliver
from outbox.models import FailedDelivery, InboxMessage, OutboxEvent
from outbox.relay import Relay
from outbox.services import OutboxError, outbox_cleanup

CALLS: list[tuple[str, str]] = []


@subscriber("test.pinged", name="orders.test_ping_recorder", app="orders")
def record_ping(event: Event) -> None:
    """A test subscriber (registered under the orders queue) that records every call."""
    CALLS.append((str(event.id), event.data.get("n")))
    if event.data.get("slow"):
        time.sleep(0.5)
    if event.data.get("fail"):
        raise RuntimeError("boom")
    if event.data.get("early"):
        raise RetryLater("what this event depends on has not been handled yet")


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


def make_event(**data) -> dict:
    return Event(
        id=uuid.uuid4(),
        type="test.pinged",
        version=1,
        occurred_at=timezone.now(),
        aggregate_id="order-1",
        correlation_id=uuid.uuid4(),
        data=data,
    ).to_envelope()


@pytest.mark.django_db(transaction=True)
def test_publish_refuses_to_run_outside_a_transaction():
    with pytest.raises(OutboxError, match=r"inside transaction\.atomic"):
        publish("test.pinged", "order-1", {})
    assert OutboxEvent.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_message_delivered_twice_is_handled_once():
    envelope = make_event(n="1")
    assert deliver(subscriber_name="orders.test_ping_recorder", envelope=envelope) is True
    assert deliver(subscriber_name="orders.test_ping_recorder", envelope=envelope) is False
    assert len(CALLS) == 1
    assert InboxMessage.objects.filter(subscriber="orders.test_ping_recorder").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_failing_subscriber_rolls_back_its_claim_and_is_recorded_for_operators():
    envelope = make_event(n="1", fail=True)
    with pytest.raises(RuntimeError):
        deliver(subscriber_name="orders.test_ping_recorder", envelope=envelope)
    assert InboxMessage.objects.count() == 0  # so the retry runs the handler again
    failure = FailedDelivery.objects.get()
    assert failure.aggregate_id == "order-1"
    assert "RuntimeError: boom" in failure.last_error


@pytest.mark.django_db(transaction=True)
def test_an_event_ahead_of_its_dependency_is_retried_quietly():
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("outbox.delivery")
    logger.addHandler(handler)
    envelope = make_event(n="1", early=True)
    try:
        with pytest.raises(RetryLater):
            deliver(subscriber_name="orders.test_ping_recorder", envelope=envelope)
    finally:
        logger.removeHandler(handler)
    assert InboxMessage.objects.count() == 0  # the retry will run the handler again
    assert FailedDelivery.objects.count() == 0  # an ordering race, not a failure (yet)
    assert records and all(r.levelno < logging.WARNING for r in records)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_are_handled_once():
    envelope = make_event(n="1", slow=True)
    results = []

    def worker():
        try:
            results.append(deliver(subscriber_name="orders.test_ping_recorder", envelope=envelope))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, True]
    assert len(CALLS) == 1


def _messages(sqs, app_name: str) -> list[dict]:
    return sqs.take_tasks(app_name)


@pytest.mark.django_db(transaction=True)
def test_relay_sends_one_message_per_subscriber_to_its_queue(sqs):
    sqs.purge()
    with transaction.atomic():
        placed = publish("order.placed", "o-1", {"number": "CF-1"})
        publish("test.pinged", "o-1", {"n": "x"})
    assert Relay(app).run_once() == 2

    for row in OutboxEvent.objects.all():
        assert row.status == OutboxEvent.Status.PUBLISHED
        assert row.published_at is not None
    # order.placed goes to invoicing, billing, shipping and notifications; test.pinged to orders.
    for queue in ("invoicing", "billing", "shipping", "notifications"):
        (task,) = _messages(sqs, queue)
        assert task["event"]["id"] == str(placed.event_id)
        assert task["subscriber"].startswith(queue + ".")
    (ping,) = _messages(sqs, "orders")
    assert ping["subscriber"] == "orders.test_ping_recorder"
    assert Relay(app).run_once() == 0


@pytest.mark.django_db(transaction=True)
def test_relay_records_a_failed_publish_and_backs_off(sqs, settings):
    with transaction.atomic():
        publish("test.pinged", "o-1", {"n": "x"})
    # A broker that refuses connections (nothing listens on port 9).
    broken = Celery("broken", broker="redis://127.0.0.1:9/0", set_as_current=False)
    broken.conf.task_publish_retry = False
    Relay(broken).run_once()
    row = OutboxEvent.objects.get()
    assert row.status == OutboxEvent.Status.FAILING
    assert row.attempts == 1
    assert row.last_error
    assert row.next_attempt_at > timezone.now()
    assert Relay(app).run_once() == 0  # not due yet: backoff
    OutboxEvent.objects.update(next_attempt_at=timezone.now())
    assert Relay(app).run_once() == 1
    assert OutboxEvent.objects.get().status == OutboxEvent.Status.PUBLISHED


@pytest.mark.postgres
@pytest.mark.e2e
def test_relay_killed_mid_batch_and_restarted_loses_nothing(live_stack, sqs):
    total = 150
    with transaction.atomic():
        ids = {
            str(publish("email.sent", f"o-{i}", {"kind": "x", "order_id": "x"}).event_id)
            for i in range(total)
        }

    def published() -> int:
        return OutboxEvent.objects.filter(status=OutboxEvent.Status.PUBLISHED).count()

    live_stack.start("relay", extra_env={"OUTBOX_RELAY_BATCH_SIZE": "10"})
    wait_until(lambda: published() >= 20, timeout=60, interval=0.05, message="a first batch")
    live_stack.kill("relay")  # SIGKILL: no chance to finish the batch in flight
    assert published() < total
    live_stack.start("relay", extra_env={"OUTBOX_RELAY_BATCH_SIZE": "50"})
    wait_until(lambda: published() == total, timeout=120, message="every event published")

    seen = [task["event"]["id"] for task in _messages(sqs, "orders")]
    assert set(seen) == ids  # nothing lost; a few may have been sent twice, the inbox absorbs it


@pytest.mark.django_db
def test_cleanup_removes_published_events_and_inbox_rows_past_retention():
    old = timezone.now() - timedelta(days=30)
    OutboxEvent.objects.create(type="a", aggregate_id="1", status="published", published_at=old)
    OutboxEvent.objects.create(type="a", aggregate_id="2")  # unpublished: kept whatever its age
    OutboxEvent.objects.create(
        type="a", aggregate_id="3", status="published", published_at=timezone.now()
    )
    InboxMessage.objects.create(
        event_id=uuid.uuid4(), subscriber="s", event_type="a", aggregate_id="1", handled_at=old
    )
    assert outbox_cleanup() == (1, 1)
    assert sorted(OutboxEvent.objects.values_list("aggregate_id", flat=True)) == ["2", "3"]


@pytest.mark.django_db
def test_envelope_carries_the_correlation_id_of_the_event_being_handled():
    from outbox.events import handling

    cause = Event.from_envelope(make_event(n="1"))
    with transaction.atomic(), handling(cause):
        child = publish("test.pinged", "order-1", {"n": "2"})
    assert child.correlation_id == cause.correlation_id
    envelope = child.as_event().to_envelope()
    assert set(envelope) == {
        "id",
        "type",
        "version",
        "occurred_at",
        "aggregate_id",
        "correlation_id",
        "data",
    }


PHASED_CALLS: list[tuple[str, bool]] = []


@subscriber("test.phased", name="orders.test_phased_recorder", app="orders", transactional=False)
def record_phased(event: Event) -> None:
    """A subscriber that calls out: it must run with no transaction open."""
    PHASED_CALLS.append((str(event.id), transaction.get_connection().in_atomic_block))
    if event.data.get("fail") and len(PHASED_CALLS) == 1:
        raise RuntimeError("the remote call failed")


@pytest.mark.django_db(transaction=True)
def test_a_non_transactional_subscriber_runs_outside_any_transaction_and_claims_after():
    PHASED_CALLS.clear()
    envelope = {**make_event(fail=True), "type": "test.phased"}
    with pytest.raises(RuntimeError):
        deliver(subscriber_name="orders.test_phased_recorder", envelope=envelope)
    # It failed before claiming: the redelivery runs it again (it resumes from its own phases).
    assert not InboxMessage.objects.filter(subscriber="orders.test_phased_recorder").exists()
    assert FailedDelivery.objects.get(subscriber="orders.test_phased_recorder").resolved_at is None
    assert deliver(subscriber_name="orders.test_phased_recorder", envelope=envelope) is True
    # Once it succeeded, a duplicate does nothing.
    assert deliver(subscriber_name="orders.test_phased_recorder", envelope=envelope) is False
    assert [in_atomic for _, in_atomic in PHASED_CALLS] == [False, False]
    assert FailedDelivery.objects.get(subscriber="orders.test_phased_recorder").resolved_at


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_committed_publish_wakes_a_listening_relay_and_a_rolled_back_one_does_not():
    """The NOTIFY comes from a trigger on the outbox table (no round trip in publish(), issue
    11), and PostgreSQL delivers it at commit only."""
    from outbox.relay import Listener

    listener = Listener()
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            publish("test.thing_happened", "a-rolled-back", {})
            raise RuntimeError("rolled back")
        assert list(listener.conn.notifies(timeout=0.5, stop_after=1)) == []
        with transaction.atomic():
            publish("test.thing_happened", "a-1", {})
            publish("test.thing_happened", "a-2", {})
        woken = list(listener.conn.notifies(timeout=5, stop_after=1))
        assert [n.channel for n in woken] == ["chargeflow_outbox"]
    finally:
        listener.close()


@pytest.mark.django_db(transaction=True)
def test_a_failure_is_resolved_by_the_successful_delivery_claim_itself():
    """The inbox claim resolves the subscriber's failure record in the same statement (issue 11:
    no UPDATE and no transaction of its own after every delivery): resolved when a retry
    succeeds, left open while it fails, and a first delivery costs no extra statement."""
    from django.test.utils import CaptureQueriesContext

    failing = make_event(fail=True)
    with pytest.raises(RuntimeError):
        deliver(subscriber_name="orders.test_ping_recorder", envelope=failing)
    with pytest.raises(RuntimeError):
        deliver(subscriber_name="orders.test_ping_recorder", envelope=failing, attempt=2)
    failure = FailedDelivery.objects.get(subscriber="orders.test_ping_recorder")
    assert (failure.attempts, failure.resolved_at) == (2, None)

    # The cause is fixed (here: the same event without the fault) and a retry succeeds.
    fixed = {**failing, "data": {}}
    assert deliver(subscriber_name="orders.test_ping_recorder", envelope=fixed, attempt=3)
    failure.refresh_from_db()
    assert failure.resolved_at is not None
    assert InboxMessage.objects.filter(event_id=failing["id"]).count() == 1

    # A clean first delivery: BEGIN, the claim (with the resolve), COMMIT; nothing after.
    with CaptureQueriesContext(connection) as queries:
        assert deliver(subscriber_name="orders.test_ping_recorder", envelope=make_event(n="x"))
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    if connection.vendor == "postgresql":
        assert statements == ["BEGIN", "WITH", "COMMIT"]
    assert not any(s == "UPDATE" for s in statements)
