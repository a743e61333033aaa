"""The dead-letter viewer and `manage.py dlq_replay`: messages shown with their order, sent back
to their queue, safely repeatable (the inbox skips a second delivery)."""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.core.management import call_command

import outbox
from chargeflow.celery import app
from conftest import place_order
from outbox.delivery import deliver
from outbox.dlq import _decode
from outbox.models import OutboxEvent
from outbox.registry import subscribers_for

pytestmark = pytest.mark.django_db


def dead_letter(sqs, queue_app: str, *, subscriber: str, envelope: dict, copies: int = 1) -> None:
    """Put a real Celery message into `queue_app`'s dead-letter queue, as SQS's RedrivePolicy
    does: sent by Celery to the queue, then moved with its body and attributes unchanged."""
    client = sqs.client
    name = settings.QUEUE_NAMES[queue_app]
    source = client.get_queue_url(QueueName=name)["QueueUrl"]
    dlq = client.get_queue_url(QueueName=name + "-dlq")["QueueUrl"]
    for _ in range(copies):
        app.send_task(
            "outbox.deliver", kwargs={"subscriber": subscriber, "event": envelope}, queue=name
        )
    moved = 0
    while moved < copies:
        for message in client.receive_message(
            QueueUrl=source,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
        ).get("Messages", []):
            kwargs = {"QueueUrl": dlq, "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                kwargs["MessageAttributes"] = message["MessageAttributes"]
            client.send_message(**kwargs)
            client.delete_message(QueueUrl=source, ReceiptHandle=message["ReceiptHandle"])
            moved += 1


def depth(sqs, name: str) -> int:
    url = sqs.client.get_queue_url(QueueName=name)["QueueUrl"]
    attrs = sqs.client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


@pytest.fixture
def poisoned(sqs, catalog, stripe_server):
    sqs.purge()
    created = place_order("dlq-1")
    row = OutboxEvent.objects.get(aggregate_id=created["id"], type="order.placed")
    sub = next(
        s for s in subscribers_for("order.placed") if s.queue == settings.QUEUE_NAMES["billing"]
    )
    envelope = row.as_event().to_envelope()
    dead_letter(sqs, "billing", subscriber=sub.name, envelope=envelope, copies=2)
    yield created, sub
    sqs.purge()


def test_the_viewer_shows_dead_letters_with_their_order_and_leaves_them(
    sqs, poisoned, staff_client
):
    created, sub = poisoned
    letters = outbox.dead_letters("billing")
    assert len(letters) == 2
    assert {(letter.subscriber, letter.event_type, letter.aggregate_id) for letter in letters} == {
        (sub.name, "order.placed", created["id"])
    }
    assert all(letter.task == "outbox.deliver" and letter.sent_at for letter in letters)
    page = staff_client.get("/admin/desk/dead-letters/", {"queue": "billing"}).content.decode()
    assert f'href="/admin/desk/orders/{created["id"]}/">{created["number"]}</a>' in page
    assert sub.name in page and "order.placed" in page
    # Looking does not consume them.
    assert depth(sqs, settings.QUEUE_NAMES["billing"] + "-dlq") == 2
    dashboard = staff_client.get("/admin/desk/").content.decode()
    assert 'href="/admin/desk/dead-letters/?queue=billing"' in dashboard


def test_dlq_replay_dry_run_then_for_real_and_again(sqs, poisoned):
    created, _sub = poisoned
    dlq = settings.QUEUE_NAMES["billing"] + "-dlq"
    out = io.StringIO()
    call_command("dlq_replay", "--queue", "billing", "--dry-run", stdout=out)
    assert "would send back 2 message(s) (billing: 2)" in out.getvalue()
    assert f"order={created['id']}" in out.getvalue()
    assert depth(sqs, dlq) == 2

    out = io.StringIO()
    call_command("dlq_replay", stdout=out)
    assert "sent back 2 message(s) (billing: 2)" in out.getvalue()
    assert depth(sqs, dlq) == 0
    out = io.StringIO()
    call_command("dlq_replay", stdout=out)
    assert "sent back 0 message(s) (nothing)" in out.getvalue()

    # Both copies are back on the billing queue, unchanged: delivering them twice is harmless.
    messages = sqs.receive("billing")
    assert len(messages) == 2
    results = []
    for message in messages:
        kwargs = _decode(message["Body"])["kwargs"]
        results.append(deliver(subscriber_name=kwargs["subscriber"], envelope=kwargs["event"]))
    assert sorted(results) == [False, True]


def test_the_viewer_sends_back_the_selected_messages(sqs, poisoned, staff_client):
    first, second = outbox.dead_letters("billing")
    response = staff_client.post(
        "/admin/desk/dead-letters/redrive/",
        {"queue": "billing", "send_selected": "1", "message": [first.message_id]},
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/desk/dead-letters/?queue=billing"
    left = outbox.dead_letters("billing")
    assert [letter.message_id for letter in left] == [second.message_id]
    staff_client.post("/admin/desk/dead-letters/redrive/", {"queue": "", "send_all": "1"})
    assert outbox.dead_letters() == []
    assert depth(sqs, settings.QUEUE_NAMES["billing"]) == 2
