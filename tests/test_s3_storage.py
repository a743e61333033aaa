"""Invoice PDFs in S3 (django-storages) when a bucket is configured: moto's server stands in."""

import boto3
import pytest
from rest_framework.test import APIClient

from conftest import moto_server, place_order

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def s3_endpoint():
    # A moto server of its own: after S3 was used on the shared one, moto answered the SES test's
    # /moto-api/data.json with a 404 (seen here).
    with moto_server() as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def s3_bucket(s3_endpoint, settings):
    """A private bucket on moto's S3, and Django's default storage pointed at it."""
    endpoint = s3_endpoint
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-west-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    client.create_bucket(
        Bucket="chargeflow-documents",
        CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
    )
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "chargeflow-documents",
                "region_name": "eu-west-1",
                "endpoint_url": endpoint,
                "access_key": "test",
                "secret_key": "test",
                "default_acl": "private",
                "file_overwrite": False,
            },
        },
    }
    yield client
    keys = client.list_objects_v2(Bucket="chargeflow-documents").get("Contents", [])
    for key in keys:
        client.delete_object(Bucket="chargeflow-documents", Key=key["Key"])
    client.delete_bucket(Bucket="chargeflow-documents")


def test_invoice_pdf_is_stored_in_s3_and_served_to_the_token_holder(
    catalog, pipeline, s3_bucket, mailbox
):
    created = place_order("s3-invoice")
    pipeline.drain()

    api = APIClient()
    order = api.get(
        f"/api/v1/orders/{created['id']}/", HTTP_X_ORDER_TOKEN=created["access_token"]
    ).json()
    keys = [o["Key"] for o in s3_bucket.list_objects_v2(Bucket="chargeflow-documents")["Contents"]]
    # Stored under a name of its content (invoices/<number>-<sha256 prefix>.pdf).
    number = order["invoice"]["number"]
    assert any(key.startswith(f"invoices/{number}-") for key in keys), keys

    pdf = api.get(order["invoice"]["pdf_url"], HTTP_X_ORDER_TOKEN=created["access_token"])
    assert pdf.status_code == 200
    assert b"".join(pdf.streaming_content).startswith(b"%PDF")
    # The invoice email attached the same document, read back from the bucket.
    (invoice_email,) = [m for m in mailbox.messages() if list(m.iter_attachments())]
    (attachment,) = invoice_email.iter_attachments()
    assert attachment.get_content().startswith(b"%PDF")
