"""Amazon SES through anymail's real backend, against moto's SESv2 server (no mocks).

An order placed through the API runs through the in-process pipeline with
EMAIL_BACKEND=anymail.backends.amazon_ses.EmailBackend; moto records what SES was asked to send.
"""

from __future__ import annotations

import email
import email.policy

import boto3
import pytest
import requests
from rest_framework.test import APIClient

from notifications.models import EmailLog

pytestmark = pytest.mark.django_db

SENDER = "shop@chargeflow.example"


@pytest.fixture
def ses(sqs, settings):
    """moto's server (the `sqs` fixture's, it serves SESv2 too) as the email provider."""
    params = {
        "endpoint_url": f"http://127.0.0.1:{sqs.port}",
        "region_name": "eu-west-1",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    settings.EMAIL_BACKEND = "anymail.backends.amazon_ses.EmailBackend"
    settings.ANYMAIL = {**settings.ANYMAIL, "AMAZON_SES_CLIENT_PARAMS": params}
    boto3.client("ses", **params).verify_email_identity(EmailAddress=SENDER)  # moto insists

    def sent_messages() -> dict[str, email.message.EmailMessage]:
        url = f"{params['endpoint_url']}/moto-api/data.json"
        data = requests.get(url, timeout=5).json()
        return {
            raw["id"]: email.message_from_string(raw["raw_data"], policy=email.policy.default)
            for raw in data["ses"]["RawMessage"]
        }

    return sent_messages


def test_invoice_email_with_its_pdf_through_sesv2(ses, pipeline, catalog):
    response = APIClient().post(
        "/api/v1/orders/",
        {
            "email": "ada@example.com",
            "shipping_address": {
                "name": "Ada Lovelace",
                "line1": "12 Analytical Row",
                "city": "London",
                "postal_code": "N1 9GU",
                "country": "GB",
            },
            "items": [{"sku": "MOUSE-01", "quantity": 1}],
            "payment_method": "pm_card_visa",
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY="ses-invoice",
    )
    assert response.status_code == 201, response.content
    pipeline.drain()

    log = EmailLog.objects.get(order_id=response.json()["id"], kind="invoice_issued")
    assert (log.status, log.provider) == ("sent", "Amazon SES")
    message = ses()[log.message_id]  # the SES MessageId anymail reported is what SES stored
    assert message["To"] == "ada@example.com"
    assert message["Subject"].startswith("Your invoice for order")
    [pdf] = message.iter_attachments()
    assert pdf.get_filename().startswith("invoice-") and pdf.get_filename().endswith(".pdf")
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_content().startswith(b"%PDF")
    assert "X-ChargeFlow-Kind: invoice_issued" in message.as_string()

    # Every other email of the order went the same way, once each.
    logs = EmailLog.objects.filter(order_id=response.json()["id"])
    assert {entry.provider for entry in logs} == {"Amazon SES"}
    assert all(entry.message_id in ses() for entry in logs)
