"""Sending, retrying and resending emails, against the real SMTP sink (no mocks)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from django.utils.html import escape

from conftest import free_port
from notifications import services
from notifications.models import EmailAttempt, EmailLog
from notifications.tasks import send_due_emails
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def contact():
    return services.contact_record(
        order_id=str(uuid.uuid4()),
        order_number="CF-000042",
        email="grace@example.com",
        name="Grace Hopper",
        order_url="http://shop.test/orders/abc/?token=t0k3n",
    )


@pytest.fixture
def smtp_down(settings):
    """Nothing listens on the SMTP port: every send fails with a connection error."""
    settings.EMAIL_PORT = free_port()
    return settings


def send(contact, kind="shipped", **context):
    return services.email_send(
        order_id=str(contact.order_id),
        kind=kind,
        context=context or {"shipment": {"carrier": "SimPost", "tracking_number": "SP1"}},
    )


def sent_events() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(type="email.sent").order_by("id"))


def make_due(log: EmailLog) -> None:
    EmailLog.objects.filter(pk=log.pk).update(next_attempt_at=timezone.now() - timedelta(1))


def test_one_email_per_order_and_kind(mailbox, contact):
    first = send(contact)
    again = send(contact)
    assert again.pk == first.pk
    [message] = mailbox.messages()
    assert message["To"] == "grace@example.com"
    assert message["Subject"] == "Your order CF-000042 is on its way"
    assert message["X-ChargeFlow-Kind"] == "shipped"
    assert "SP1" in message.get_body(preferencelist=("plain",)).get_content()
    log = EmailLog.objects.get()
    assert (log.status, log.attempts, log.provider) == ("sent", 1, "smtp")
    assert log.message_id == message["Message-ID"]
    assert [e.data["kind"] for e in sent_events()] == ["shipped"]


def test_first_delivery_records_the_email_and_its_attempt_in_one_transaction(
    mailbox, contact, django_assert_num_queries
):
    """Phases 1 and 2 commit together on a first delivery: the log is written already
    `sending`, with its first attempt, before the send; the answer is recorded after it."""
    # The contact's SELECT; one transaction: the log and its attempt; the send; one
    # transaction: the log, the attempt, email.sent (the test's own transaction turns each
    # BEGIN and COMMIT into a savepoint and its release, counted here).
    with django_assert_num_queries(10):
        log = send(contact)
    [attempt] = log.attempt_rows.all()
    assert (log.status, log.attempts, attempt.number, attempt.status) == ("sent", 1, 1, "sent")
    assert attempt.header_message_id == mailbox.messages()[0]["Message-ID"] == log.message_id
    stored = EmailLog.objects.get()
    assert (stored.status, stored.message_id, stored.sent_at) == (
        "sent",
        log.message_id,
        log.sent_at,
    )


def test_an_email_queued_before_is_sent_by_the_next_delivery(mailbox, contact):
    """A log recorded `queued` (a worker died right after phase 1, or it was queued on its own)
    is found by its unique key and sent once."""
    queued = services.email_queue(order_id=str(contact.order_id), kind="shipped")
    log = send(contact)
    assert log.pk == queued.pk
    assert (log.status, log.attempts) == ("sent", 1)
    assert len(mailbox.messages()) == 1
    assert len(sent_events()) == 1


def test_a_template_error_on_a_first_delivery_records_nothing(mailbox, contact, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("template error")

    monkeypatch.setattr(services, "render_to_string", broken)
    with pytest.raises(ValueError):
        send(contact)
    assert not EmailLog.objects.exists()
    monkeypatch.undo()
    assert send(contact).status == "sent"  # the retry sends it
    assert len(mailbox.messages()) == 1


def test_an_answer_recorded_twice_is_written_once(mailbox, contact):
    """Two workers holding one attempt (the first cut off and resumed after the lease): the
    second to record finds it no longer `sending` and writes nothing, not a second
    `email.sent`."""
    log = send(contact)
    [attempt] = log.attempt_rows.all()
    attempt.status = EmailAttempt.Status.SENDING  # the other worker's copy
    again = services._attempt_sent(attempt=attempt, message_id="<other@example.com>")
    assert (again.status, again.message_id) == ("sent", log.message_id)
    assert EmailAttempt.objects.get().message_id == log.message_id
    assert len(sent_events()) == 1


def test_action_required_links_to_the_order(mailbox, contact):
    send(contact, kind="action_required", payment={"payment_intent": "pi_1"})
    [message] = mailbox.messages()
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Confirm your payment here: http://shop.test/orders/abc/?token=t0k3n" in text
    assert 'href="http://shop.test/orders/abc/?token=t0k3n"' in html
    assert "Confirm your payment" in html


def test_invoice_email_attaches_the_pdf(mailbox, contact):
    path = default_storage.save("invoices/test-invoice.pdf", ContentFile(b"%PDF-1.4 test"))
    services.email_send(
        order_id=str(contact.order_id),
        kind="invoice_issued",
        context={"invoice": {"number": "INV-1", "totals": {"total": "10.00"}, "currency": "EUR"}},
        attachments=[services.Attachment(path, "invoice-INV-1.pdf")],
    )
    [message] = mailbox.messages()
    [pdf] = message.iter_attachments()
    assert pdf.get_filename() == "invoice-INV-1.pdf"
    assert pdf.get_content().startswith(b"%PDF")
    # The invoice is issued before the charge, which may still fail: never claim it succeeded.
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    for body in (text, html):
        assert "We are charging this total to your card" in body
        assert "if your bank declines it" in body
        assert "charged to your card now" not in body


def test_failed_send_is_recorded_and_retried_with_backoff(mailbox, contact, smtp_down):
    log = send(contact)
    assert log.status == EmailLog.Status.PENDING
    assert log.attempts == 1
    assert "ConnectionRefusedError" in log.error
    assert timezone.now() < log.next_attempt_at <= timezone.now() + timedelta(seconds=30)
    assert EmailAttempt.objects.get().status == EmailAttempt.Status.FAILED
    assert sent_events() == []
    assert send_due_emails() == 0  # not due yet

    # Still down when due: the second failure waits longer (backoff).
    make_due(log)
    send_due_emails()
    log.refresh_from_db()
    assert log.attempts == 2 and log.status == EmailLog.Status.PENDING
    assert log.next_attempt_at > timezone.now() + timedelta(seconds=29)

    smtp_down.EMAIL_PORT = mailbox.port  # the server is back
    make_due(log)
    assert send_due_emails() == 1
    log.refresh_from_db()
    assert (log.status, log.attempts, log.error) == ("sent", 3, "")
    assert len(mailbox.messages()) == 1
    assert len(sent_events()) == 1
    assert send(contact).attempts == 3  # a redelivered event changes nothing


def test_gives_up_after_max_attempts(mailbox, contact, smtp_down):
    smtp_down.EMAIL_SEND_MAX_ATTEMPTS = 2
    log = send(contact)
    make_due(log)
    send_due_emails()
    log.refresh_from_db()
    assert log.status == EmailLog.Status.FAILED
    assert log.next_attempt_at is None
    assert log.attempt_rows.count() == 2


def test_forced_resend_is_a_new_attempt_on_the_same_log(mailbox, contact):
    log = send(contact)
    services.email_resend_request(log_id=log.pk, requested_by="ops")
    assert send_due_emails() == 1
    assert send_due_emails() == 0  # once
    log.refresh_from_db()
    assert EmailLog.objects.count() == 1
    assert log.status == EmailLog.Status.SENT and log.attempts == 2
    first, second = log.attempt_rows.all()
    assert not first.forced
    assert second.forced and second.requested_by == "ops"
    assert first.message_id != second.message_id == log.message_id
    assert len(mailbox.messages()) == 2
    assert [e.data["resend"] for e in sent_events()] == [False, True]


def test_forced_resend_that_fails_is_not_retried(mailbox, contact, smtp_down):
    smtp_down.EMAIL_PORT = mailbox.port
    log = send(contact)
    smtp_down.EMAIL_PORT = free_port()
    services.email_resend_request(log_id=log.pk, requested_by="ops")
    send_due_emails()
    log.refresh_from_db()
    assert log.status == EmailLog.Status.FAILED
    assert log.attempt_rows.filter(status="failed", forced=True).count() == 1


def test_admin_resend_action(admin_client, mailbox, contact):
    log = send(contact)
    response = admin_client.post(
        "/admin/notifications/emaillog/",
        {"action": "resend", "_selected_action": [log.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert b"queued for resending" in response.content
    log.refresh_from_db()
    assert log.status == EmailLog.Status.PENDING and log.resend_requested_by == "admin"
    send_due_emails()  # the beat fallback (the on-commit task needs a broker)
    assert len(mailbox.messages()) == 2
    log.refresh_from_db()
    first, second = log.attempt_rows.all()
    assert second.forced and second.requested_by == "admin"
    page = admin_client.get(f"/admin/notifications/emaillog/{log.pk}/change/")
    assert page.status_code == 200
    for attempt in (first, second):  # both attempts are listed on the email's page
        assert escape(attempt.message_id).encode() in page.content


def shipment_created(contact) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": "shipment.created",
        "version": 1,
        "occurred_at": timezone.now().isoformat(),
        "aggregate_id": str(contact.order_id),
        "correlation_id": str(uuid.uuid4()),
        "data": {"carrier": "SimPost", "tracking_number": "SP1"},
    }


def test_message_ids_are_deterministic_per_order_kind_and_resend(mailbox, contact, settings):
    log = send(contact)
    services.email_resend_request(log_id=log.pk, requested_by="ops")
    send_due_emails()
    services.email_resend_request(log_id=log.pk, requested_by="ops")
    send_due_emails()
    domain = settings.EMAIL_MESSAGE_ID_DOMAIN
    # (A long header is folded onto a second line: whitespace before the id is not part of it.)
    assert [m["Message-ID"].strip() for m in mailbox.messages()] == [
        f"<shipped.{contact.order_id}@{domain}>",
        f"<shipped.resend-1.{contact.order_id}@{domain}>",
        f"<shipped.resend-2.{contact.order_id}@{domain}>",
    ]


def test_a_retry_after_a_failed_attempt_keeps_the_message_id(mailbox, contact, smtp_down):
    log = send(contact)
    [failed] = log.attempt_rows.all()
    smtp_down.EMAIL_PORT = mailbox.port
    make_due(log)
    send_due_emails()
    [message] = mailbox.messages()
    assert message["Message-ID"] == failed.header_message_id == log.attempt_rows.last().message_id


def test_send_cut_off_before_its_record_is_resumed_with_the_same_message_id(
    mailbox, contact, monkeypatch, settings
):
    """The provider accepted the email, then the worker lost its database before recording it
    (the recording phase fails once). The attempt stays `sending`; a redelivery within the lease
    leaves it to the worker that may still be at it; after the lease the beat task sends it
    again as the same attempt with the same Message-ID, which the mail store collapses."""
    from django.db import OperationalError

    from outbox.delivery import deliver
    from outbox.models import FailedDelivery

    record = services._attempt_sent
    cut = []

    def record_fails_once(**kwargs):
        if not cut:
            cut.append(kwargs)
            raise OperationalError("server closed the connection unexpectedly")
        return record(**kwargs)

    monkeypatch.setattr(services, "_attempt_sent", record_fails_once)
    envelope = shipment_created(contact)
    subscriber = "notifications.on_shipment_created"

    with pytest.raises(OperationalError):
        deliver(subscriber_name=subscriber, envelope=envelope)
    [accepted] = mailbox.messages()  # the provider has it
    log = EmailLog.objects.get()
    [attempt] = log.attempt_rows.all()
    assert (log.status, attempt.status) == ("sending", "sending")
    assert attempt.header_message_id == accepted["Message-ID"]
    assert FailedDelivery.objects.get(subscriber=subscriber).attempts == 1

    # Redelivered at once (Celery's retry): within the lease the in-flight attempt is not
    # touched (its worker may be alive), so nothing is sent; the delivery is done.
    assert deliver(subscriber_name=subscriber, envelope=envelope)
    assert send_due_emails() == 0
    assert len(mailbox.messages()) == 1

    # The lease is over: the beat task resumes the same attempt.
    stale = timezone.now() - timedelta(seconds=settings.EMAIL_SEND_LEASE_SECONDS + 1)
    EmailLog.objects.filter(pk=log.pk).update(updated_at=stale)
    assert send_due_emails() == 1
    first, second = mailbox.messages()
    assert (
        first["Message-ID"]
        == second["Message-ID"]
        == (f"<shipped.{contact.order_id}@{settings.EMAIL_MESSAGE_ID_DOMAIN}>")
    )
    log.refresh_from_db()
    assert (log.status, log.attempts, log.message_id) == ("sent", 1, first["Message-ID"])
    [attempt] = log.attempt_rows.all()
    assert attempt.status == "sent"
    assert len(sent_events()) == 1  # one email.sent: one timeline entry
    assert not deliver(subscriber_name=subscriber, envelope=envelope)  # later: nothing more
    assert len(mailbox.messages()) == 2
