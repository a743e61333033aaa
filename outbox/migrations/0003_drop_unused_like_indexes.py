"""Drop the `varchar_pattern_ops` ("_like") indexes Django adds on PostgreSQL beside the indexes
of `outbox_outboxevent.type` and `outbox_outboxevent.aggregate_id`. They serve only
`LIKE 'prefix%'` queries, and nothing queries these columns so (the relay, redeliveries and the
admin's filters use equality; its search, `icontains`, cannot use them). Every event paid for
them twice: at its insert, and again when the relay marks it published (that update changes
indexed columns, so every index gets the new row version). Issue 11. The plain indexes on
both columns stay.

Dropped CONCURRENTLY (no lock on the table); the reverse builds them again. SQLite has none.
Django drops such an index with IF EXISTS when a later migration alters the field."""

from django.db import migrations

COLUMNS = ("type", "aggregate_id")


def _like_names(schema_editor):
    table = "outbox_outboxevent"
    return [schema_editor._create_index_name(table, [c], suffix="_like") for c in COLUMNS]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in _like_names(schema_editor):
        schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column, name in zip(COLUMNS, _like_names(schema_editor), strict=True):
        schema_editor.execute(
            f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" '
            f'ON "outbox_outboxevent" ("{column}" varchar_pattern_ops)'
        )


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY cannot run in a transaction
    dependencies = [("outbox", "0002_notify_trigger")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
