"""Keep the SQS messages a worker holds invisible to other workers while it still holds them.

SQS hides a received message for the queue's VisibilityTimeout; when that runs out the message is
handed to another worker. One large timeout (longer than the longest task plus the longest retry
countdown, 480 s before) also means that a message held by a worker that died comes back only
after all that time. Instead the queues get a short timeout (SQS_VISIBILITY_TIMEOUT, 60 s) and
this worker bootstep extends it, every SQS_VISIBILITY_HEARTBEAT seconds, for every message the
worker has received and not yet acknowledged or rejected: running tasks, tasks waiting for
their retry countdown (Celery keeps those in memory, unacknowledged) and prefetched ones. A
worker that dies stops extending: its messages come back within one timeout.

A message held longer than SQS_VISIBILITY_MAX_HOLD (the longest task plus the longest countdown)
is no longer extended: a task that hangs past its time limit without being rejected must not
keep its message forever. Other brokers (Redis for the benchmark) are left alone.

It runs in a thread of the worker's main process (not on the event loop), so a busy loop or
`--pool solo` does not starve it. The boto3 client is kombu's own (boto3 clients are thread-safe);
kombu's table of delivered messages is only read here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

from celery import bootsteps
from django.conf import settings

logger = logging.getLogger(__name__)

SQS_BATCH_LIMIT = 10  # ChangeMessageVisibilityBatch takes at most ten entries


class VisibilityHeartbeat(bootsteps.StartStopStep):
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, parent):
        channel = getattr(parent.task_consumer, "channel", None)
        if channel is None or not hasattr(channel, "sqs") or not hasattr(channel, "qos"):
            return  # not the SQS transport
        self._stop = threading.Event()
        beat = Heartbeat(
            channel,
            timeout=settings.SQS_VISIBILITY_TIMEOUT,
            max_hold=settings.SQS_VISIBILITY_MAX_HOLD,
        )
        self._thread = threading.Thread(
            target=beat.run,
            kwargs={"interval": settings.SQS_VISIBILITY_HEARTBEAT, "stop": self._stop},
            name="sqs-visibility-heartbeat",
            daemon=True,
        )
        self._thread.start()
        logger.info(
            "SQS visibility heartbeat: extending held messages to %ss every %ss",
            settings.SQS_VISIBILITY_TIMEOUT,
            settings.SQS_VISIBILITY_HEARTBEAT,
        )

    def stop(self, parent):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    shutdown = stop


class Heartbeat:
    """Extends the visibility of the messages one kombu SQS channel holds."""

    def __init__(self, channel, *, timeout: int, max_hold: float):
        self.channel = channel
        self.timeout = timeout
        self.max_hold = max_hold
        self.first_seen: dict[str, float] = {}
        self.let_go: set[str] = set()

    def run(self, *, interval: float, stop: threading.Event) -> None:
        while not stop.wait(interval):
            try:
                self.beat()
            except Exception as exc:  # the broker paused: try again at the next beat
                logger.warning("SQS visibility heartbeat failed, will retry: %s", exc)

    def held(self) -> list[tuple[str, dict]]:
        """(receipt handle, delivery_info) of each message received and not yet settled."""
        qos = self.channel.qos
        for _ in range(5):
            try:  # another thread may change the table while it is copied
                delivered = list(qos._delivered.items())
                settled = set(qos._dirty)
                break
            except RuntimeError:
                continue
        else:
            return []
        return [
            (tag, message.delivery_info)
            for tag, message in delivered
            if tag not in settled and message.delivery_info.get("sqs_message")
        ]

    def beat(self) -> int:
        """Extend every held message once; returns how many were extended."""
        now = time.monotonic()
        by_queue: dict[tuple[str, str], list[str]] = defaultdict(list)
        first_seen = {}
        for tag, info in self.held():
            since = first_seen[tag] = self.first_seen.get(tag, now)
            if now - since > self.max_hold:
                if tag not in self.let_go:
                    logger.warning(
                        "SQS message on %s held for %.0fs, over SQS_VISIBILITY_MAX_HOLD: no "
                        "longer extended, SQS will deliver it again",
                        info.get("routing_key"),
                        now - since,
                    )
                    self.let_go.add(tag)
                continue
            by_queue[(info.get("routing_key") or "", info["sqs_queue"])].append(tag)
        self.let_go &= first_seen.keys()
        self.first_seen = first_seen
        extended = 0
        for (queue, url), tags in by_queue.items():
            client = self.channel.sqs(queue=queue or None)
            for start in range(0, len(tags), SQS_BATCH_LIMIT):
                chunk = tags[start : start + SQS_BATCH_LIMIT]
                answer = client.change_message_visibility_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": tag, "VisibilityTimeout": self.timeout}
                        for i, tag in enumerate(chunk)
                    ],
                )
                failed = answer.get("Failed") or []
                for failure in failed:
                    logger.warning(
                        "SQS visibility of a held message on %s not extended: %s",
                        queue,
                        failure.get("Message") or failure.get("Code"),
                    )
                extended += len(chunk) - len(failed)
        return extended
