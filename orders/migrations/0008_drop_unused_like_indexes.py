"""Drop the `varchar_pattern_ops` ("_like") indexes Django adds on PostgreSQL beside the unique
indexes of `orders_order.number` and `orders_order.idempotency_key`. They serve only
`LIKE 'prefix%'` queries, and nothing queries these columns so (the desk and the admin look them
up by equality, `iexact` or `icontains`, which these indexes do not serve); every API checkout
paid for inserting into both (issue 11: with the outbox's two, ~0.04 ms of PostgreSQL's CPU
per checkout). The unique indexes stay: numbers and Idempotency-Keys are unique as before.

Dropped CONCURRENTLY (no lock on the table); the reverse builds them again. SQLite has none.
Django drops such an index with IF EXISTS when a later migration alters the field."""

from django.db import migrations

COLUMNS = ("number", "idempotency_key")


def _like_names(schema_editor):
    table = "orders_order"
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
            f'ON "orders_order" ("{column}" varchar_pattern_ops)'
        )


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY cannot run in a transaction
    dependencies = [("orders", "0007_stock_take_function")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
