"""kombu's Redis transport, with one client object per channel for its per-message commands.

kombu's Redis channel builds a new `redis.Redis` client (a few hundred objects: response
callbacks, a lock, the retry policy) for every command it sends outside its BRPOP client:
storing each delivered message in the `unacked` hash (a MULTI), acknowledging it (a
pipeline), restoring unacknowledged messages. In a Celery worker that is two clients per task,
~0.1 ms of CPU each, in the main process that every task passes through (issue 11: 17 tasks
per order). This channel builds that client once and reuses it: the same connection pool,
the same commands, the same keys and transactions, so every guarantee of kombu's Redis
transport (emulated acks, visibility timeout, restore of unacknowledged messages) is unchanged.
A `redis.Redis` client is safe to share: each command takes a connection from the pool.

Selected by settings.py when CELERY_BROKER_URL is a redis:// URL (SQS is unaffected). kombu
is pinned (requirements.txt); `chargeflow/tests/test_redis_transport.py` checks the method
this overrides still has kombu's signature and behaviour.
"""

from __future__ import annotations

from contextlib import contextmanager

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _shared_client = None
    _shared_client_pool = None

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        pool = self.pool
        if self._shared_client is None or self._shared_client_pool is not pool:
            # A new pool (kombu disconnects the old one after a connection error): a new client.
            self._shared_client = self._create_client()
            self._shared_client_pool = pool
        yield self._shared_client


class Transport(kombu_redis.Transport):
    Channel = Channel
