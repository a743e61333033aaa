"""Migration operations shared by the apps' migrations."""

from __future__ import annotations

from django.db.migrations.operations.base import Operation


class DropLikeIndexes(Operation):
    """Drop the `varchar_pattern_ops` ("_like") indexes Django adds on PostgreSQL beside the
    index of each of `columns` of `table` (they serve only `LIKE 'prefix%'`), CONCURRENTLY: no
    lock on the table, so the migration must say `atomic = False`. The reverse builds them
    again. Nothing on SQLite, which has none. Django drops such an index with IF EXISTS when a
    later migration alters the field."""

    reversible = True

    def __init__(self, table: str, columns: list[str]):
        self.table = table
        self.columns = list(columns)

    def deconstruct(self):
        return (self.__class__.__name__, [], {"table": self.table, "columns": self.columns})

    def state_forwards(self, app_label, state):
        pass  # the models do not change: only indexes Django made for them on PostgreSQL

    def _names(self, schema_editor) -> list[tuple[str, str]]:
        return [
            (column, schema_editor._create_index_name(self.table, [column], suffix="_like"))
            for column in self.columns
        ]

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return
        for _column, name in self._names(schema_editor):
            schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return
        for column, name in self._names(schema_editor):
            schema_editor.execute(
                f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" '
                f'ON "{self.table}" ("{column}" varchar_pattern_ops)'
            )

    def describe(self):
        return f"Drop the _like indexes of {self.table} ({', '.join(self.columns)})"
