"""Django's PostgreSQL backend, whose health check (CONN_HEALTH_CHECKS) asks the connection's
socket before asking the server.

Django checks a reused connection before the first query of every request and task with
`SELECT 1`: a round trip, ~0.2 ms of PostgreSQL's CPU and ~0.15 ms of ours per request, a
fifth of the API checkout's own database time once that is one prepared statement (issue 11).
A connection the server has dropped (a restart, `pg_terminate_backend`, a crash: PostgreSQL
sends "terminating connection" and closes it, or the kernel closes it) has something to read
on its socket while it sits idle between requests; a healthy idle connection has nothing. So:
nothing to read (a poll with no wait) -> usable, no query; anything to read -> Django's own
`SELECT 1` decides, as before (a notice or parameter status sent unasked only costs that
query). What only the query would find, a peer gone without a word (no FIN: a network
partition), it would also find only after a TCP timeout; both answer an error then."""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import is_psycopg3


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        conn = self.connection
        if conn is None:
            return False
        if is_psycopg3:
            try:
                from psycopg.pq import TransactionStatus

                idle = conn.info.transaction_status == TransactionStatus.IDLE
                if idle and not conn.closed and not _readable(conn.fileno()):
                    return True
            except Exception:  # any doubt: the server is asked, as Django does
                pass
        return super().is_usable()


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))
