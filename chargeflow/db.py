"""A cursor for the few statements a process runs over and over (the API checkout, the relay's
claim and mark): on PostgreSQL with psycopg 3, server-side parameters and a prepared statement
per connection, through Django's cursor wrapper (errors wrapped as Django's, queries logged and
counted, execute_wrapper hooks applied).

Django's PostgreSQL connections, by default, bind parameters on the client (`ClientCursor`:
every value quoted into the SQL text in Python) and never prepare (`prepare_threshold` None),
so PostgreSQL parses and plans each statement again. settings.py changes both for every ORM
statement (`DATABASE_SERVER_SIDE_BINDING`: server-side binding, and psycopg prepares a
statement its connection has run 5 times); this cursor prepares its statements at once, also
when that setting is off. For the checkout's one-statement CTE that was ~0.7 ms of
PostgreSQL's CPU per order out of ~1.6, and the quoting ~0.1 ms of the web process's (issue 11,
docs/performance.md). A prepared statement lives on its connection (psycopg keeps the last 100
per connection and prepares again on a new one); PostgreSQL re-plans it by itself after a
schema change. Behind a pooler in transaction mode, prepared statements need PgBouncer >= 1.21
(`max_prepared_statements`); `DATABASE_PREPARED_STATEMENTS=false` turns them off.

Elsewhere (SQLite, psycopg 2, turned off) it is `connection.cursor()`."""

from __future__ import annotations

from django.conf import settings
from django.db import connection

_cursor_class = None
_NEVER_BY_COUNT = 2**31 - 1


class _Executed:
    __slots__ = ("query",)

    def __init__(self, query):
        self.query = query.encode() if isinstance(query, str) else query


def _prepared_cursor_class():
    global _cursor_class
    if _cursor_class is None:
        from django.db.backends.postgresql.base import ServerBindingCursor

        class PreparedCursor(ServerBindingCursor):
            """psycopg's server-side binding cursor that prepares what it executes."""

            def execute(self, query, params=None, *, prepare=None, binary=None):
                result = super().execute(query, params, prepare=True, binary=binary)
                # What Django logs as the query (connection.queries, CaptureQueriesContext)
                # is `cursor._query.query`: psycopg leaves it unset for a statement already
                # prepared. The statement's text then (parameters are not in it).
                if self._query is None:
                    self._query = _Executed(query)
                return result

        _cursor_class = PreparedCursor
    return _cursor_class


def prepared_possible() -> bool:
    if connection.vendor != "postgresql" or not getattr(settings, "DATABASE_PREPARED", True):
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3


def prepared_cursor():
    """A cursor (use it as a context manager) whose statements are prepared on PostgreSQL.
    Pass `%s` placeholders and parameters as to `connection.cursor()`; cast each parameter
    in the SQL where its type matters (`%s::jsonb`, `%s::bigint[]`): values are sent typed
    by psycopg, not as literals."""
    if not prepared_possible():
        return connection.cursor()
    # What connection.cursor() does (BaseDatabaseWrapper._cursor), with our cursor class.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django opens connections with psycopg's automatic preparation off (None), which
        # also refuses an explicit `prepare=True`. A threshold no statement reaches keeps it
        # off for every other cursor (Django's client-side cursors never prepare anyway).
        raw.prepare_threshold = _NEVER_BY_COUNT
    with connection.wrap_database_errors:
        return connection._prepare_cursor(_prepared_cursor_class()(raw))
