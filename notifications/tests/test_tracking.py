"""Provider tracking webhooks through anymail's real Amazon SES view and `tracking` signal."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from notifications import services
from notifications.models import EmailLog

pytestmark = pytest.mark.django_db

URL = "/anymail/amazon_ses/tracking/"


@pytest.fixture
def sent_log(mailbox):
    contact = services.contact_record(
        order_id=str(uuid.uuid4()),
        order_number="CF-000007",
        email="linus@example.com",
        name="Linus",
        order_url="http://shop.test/orders/x/",
    )
    return services.email_send(
        order_id=str(contact.order_id), kind="delivered", context={"shipment": {}}
    )


def post_ses_event(client, settings, ses_event: dict, *, auth: str | None = None):
    sns_id = str(uuid.uuid4())
    body = {
        "Type": "Notification",
        "MessageId": sns_id,
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-events",
        "Message": json.dumps(ses_event),
        "Timestamp": "2026-01-01T12:00:00.000Z",
    }
    secret = auth if auth is not None else settings.ANYMAIL["WEBHOOK_SECRET"]
    return client.post(
        URL,
        data=json.dumps(body),
        content_type="text/plain; charset=UTF-8",
        HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification",
        HTTP_X_AMZ_SNS_MESSAGE_ID=sns_id,
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(secret.encode()).decode(),
    )


def ses_event(kind: str, message_id: str, recipient: str = "linus@example.com") -> dict:
    mail = {
        "messageId": message_id,
        "destination": [recipient],
        "timestamp": "2026-01-01T12:00:00Z",
    }
    if kind == "Delivery":
        return {
            "eventType": "Delivery",
            "mail": mail,
            "delivery": {"recipients": [recipient], "smtpResponse": "250 2.0.0 OK"},
        }
    return {
        "eventType": "Bounce",
        "mail": mail,
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {"emailAddress": recipient, "diagnosticCode": "smtp; 550 5.1.1 user unknown"}
            ],
        },
    }


def test_delivery_then_bounce_update_the_log(client, settings, sent_log):
    assert (
        post_ses_event(client, settings, ses_event("Delivery", sent_log.message_id)).status_code
        == 200
    )
    sent_log.refresh_from_db()
    assert sent_log.status == EmailLog.Status.DELIVERED
    attempt = sent_log.attempt_rows.get()
    assert attempt.tracking_event == "delivered"
    assert "250" in attempt.tracking_detail

    assert (
        post_ses_event(client, settings, ses_event("Bounce", sent_log.message_id)).status_code
        == 200
    )
    sent_log.refresh_from_db()
    assert sent_log.status == EmailLog.Status.BOUNCED
    assert "user unknown" in sent_log.error

    # A late or repeated delivery notice never hides the bounce.
    post_ses_event(client, settings, ses_event("Delivery", sent_log.message_id))
    sent_log.refresh_from_db()
    assert sent_log.status == EmailLog.Status.BOUNCED


def test_unknown_message_is_ignored(client, settings, sent_log):
    assert post_ses_event(client, settings, ses_event("Bounce", "not-ours")).status_code == 200
    sent_log.refresh_from_db()
    assert sent_log.status == EmailLog.Status.SENT


def test_webhook_needs_the_shared_secret(client, settings, sent_log):
    response = post_ses_event(
        client, settings, ses_event("Bounce", sent_log.message_id), auth="local:wrong"
    )
    assert response.status_code == 400
    sent_log.refresh_from_db()
    assert sent_log.status == EmailLog.Status.SENT


def test_bounce_of_an_older_attempt_does_not_touch_a_newer_one(client, settings, sent_log):
    old_message_id = sent_log.message_id
    services.email_resend_request(log_id=sent_log.pk, requested_by="ops")
    services.email_retry(log_id=sent_log.pk)
    post_ses_event(client, settings, ses_event("Bounce", old_message_id))
    sent_log.refresh_from_db()
    assert sent_log.status == EmailLog.Status.SENT
    first, second = sent_log.attempt_rows.all()
    assert first.tracking_event == "bounced" and second.tracking_event == ""
