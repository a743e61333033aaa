"""chargeflow.redis_transport: kombu's Redis transport with one client per channel for its
per-message commands (issue 11). Same keys, same emulated acknowledgements."""

from __future__ import annotations

import uuid

import pytest
import redis
from django.conf import settings
from kombu import Connection
from kombu.transport import redis as kombu_redis

from chargeflow.redis_transport import Channel, Transport

TRANSPORT = "chargeflow.redis_transport:Transport"


@pytest.fixture
def conn():
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: set REDIS_URL")
    prefix = f"test-rt-{uuid.uuid4().hex[:8]}-"
    connection = Connection(
        settings.REDIS_URL, transport=TRANSPORT, transport_options={"global_keyprefix": prefix}
    )
    connection.test_prefix = prefix
    yield connection
    connection.release()
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


def test_the_transport_is_kombus_redis_transport_with_its_driver_type(conn):
    assert issubclass(Transport, kombu_redis.Transport)
    assert issubclass(Channel, kombu_redis.Channel)
    assert conn.transport.driver_type == "redis"  # the relay's batched writer keys on it
    assert isinstance(conn.default_channel, Channel)


def test_one_client_for_the_per_message_commands_a_new_one_after_a_pool_reset(conn):
    channel = conn.default_channel
    with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
        assert first is second
    given = object()
    with channel.conn_or_acquire(given) as client:
        assert client is given
    channel._disconnect_pools()  # what kombu does after a connection error
    with channel.conn_or_acquire() as third:
        assert third is not first
        assert third.connection_pool is channel.pool


def test_unacked_messages_are_kept_acked_and_restored_as_with_kombus_transport(conn):
    queue = conn.SimpleQueue(f"q-{uuid.uuid4().hex[:8]}")
    channel = queue.channel
    raw = redis.Redis.from_url(settings.REDIS_URL)
    unacked, index = (f"{conn.test_prefix}{k}" for k in ("unacked", "unacked_index"))
    try:
        queue.put({"n": 1})
        queue.put({"n": 2})
        first = queue.get(timeout=5)
        # delivered, not acknowledged yet: in the unacked hash and its index
        assert (raw.hlen(unacked), raw.zcard(index)) == (1, 1)
        first.ack()
        assert (raw.hlen(unacked), raw.zcard(index)) == (0, 0)
        second = queue.get(timeout=5)
        assert second.payload == {"n": 2}
        second.requeue()  # back on the queue, out of the unacked hash
        assert (raw.hlen(unacked), raw.zcard(index)) == (0, 0)
        again = queue.get(timeout=5)
        assert again.payload == {"n": 2}
        # A channel closed while holding a message gives it back (restore_unacked).
        channel.qos.restore_unacked()
        restored = queue.get(timeout=5)
        assert restored.payload == {"n": 2}
        restored.ack()
        assert (raw.hlen(unacked), raw.zcard(index)) == (0, 0)
        assert first.payload == {"n": 1}
    finally:
        queue.close()


def test_settings_use_it_for_a_redis_broker_only():
    if settings.CELERY_BROKER_URL.startswith("redis://"):
        assert settings.CELERY_BROKER_TRANSPORT == TRANSPORT
    else:
        assert getattr(settings, "CELERY_BROKER_TRANSPORT", None) is None
