"""SQS queue administration: one queue per consuming app, each with a dead-letter queue."""

from __future__ import annotations

import json
from urllib.parse import unquote, urlsplit

import boto3
from botocore.config import Config
from django.conf import settings

DLQ_SUFFIX = "-dlq"
DLQ_RETENTION_SECONDS = 14 * 24 * 3600


def sqs_client():
    """A boto3 SQS client for the broker URL: its host is the endpoint (moto locally)."""
    url = urlsplit(settings.CELERY_BROKER_URL)
    if url.scheme != "sqs":
        raise ValueError(f"the broker is {url.scheme}://, not SQS")
    kwargs = {
        "region_name": settings.AWS_REGION,
        "config": Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 2}),
    }
    if url.hostname:
        scheme = "https" if settings.SQS_IS_SECURE else "http"
        port = f":{url.port}" if url.port else ""
        kwargs["endpoint_url"] = f"{scheme}://{url.hostname}{port}"
    if url.username:
        kwargs["aws_access_key_id"] = unquote(url.username)
        kwargs["aws_secret_access_key"] = unquote(url.password or "")
    return boto3.client("sqs", **kwargs)


def queue_url(client, name: str) -> str | None:
    try:
        return client.get_queue_url(QueueName=name)["QueueUrl"]
    except client.exceptions.QueueDoesNotExist:
        return None


def ensure_queue(client, name: str, attributes: dict[str, str]) -> tuple[str, bool]:
    """Create the queue or bring an existing one to `attributes`. Returns (url, created)."""
    url = queue_url(client, name)
    if url is None:
        try:
            return client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"], True
        except client.exceptions.QueueNameExists:
            url = queue_url(client, name)  # another process created it a moment ago
    client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url, False


def ensure_queues(client=None) -> list[tuple[str, bool]]:
    client = client or sqs_client()
    results = []
    for name in settings.QUEUE_NAMES.values():
        dlq_url, dlq_created = ensure_queue(
            client,
            name + DLQ_SUFFIX,
            {"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)},
        )
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        _, created = ensure_queue(
            client,
            name,
            {
                "VisibilityTimeout": str(settings.SQS_VISIBILITY_TIMEOUT),
                "RedrivePolicy": json.dumps(
                    {
                        "deadLetterTargetArn": dlq_arn,
                        "maxReceiveCount": str(settings.SQS_MAX_RECEIVE_COUNT),
                    }
                ),
            },
        )
        results += [(name + DLQ_SUFFIX, dlq_created), (name, created)]
    return results


def queue_depths(client=None) -> dict[str, dict[str, int]]:
    """Visible and in-flight messages per queue (Celery inspect does not work over SQS)."""
    client = client or sqs_client()
    depths = {}
    for base in settings.QUEUE_NAMES.values():
        for name in (base, base + DLQ_SUFFIX):
            url = queue_url(client, name)
            if not url:
                continue
            attrs = client.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            depths[name] = {
                "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
                "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
            }
    return depths
