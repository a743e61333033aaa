"""Drop the `varchar_pattern_ops` ("_like") indexes Django adds on PostgreSQL beside the indexes
of `outbox_outboxevent.type` and `outbox_outboxevent.aggregate_id`. They serve only
`LIKE 'prefix%'` queries, and nothing queries these columns so (the relay, redeliveries and the
admin's filters use equality; its search, `icontains`, cannot use them). Every event paid for
them twice: at its insert, and again when the relay marks it published (that update changes
indexed columns, so every index gets the new row version). Issue 11. The plain indexes on
both columns stay.

Dropped CONCURRENTLY, reversible (chargeflow.migration_operations.DropLikeIndexes)."""

from django.db import migrations

from chargeflow.migration_operations import DropLikeIndexes


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY cannot run in a transaction
    dependencies = [("outbox", "0002_notify_trigger")]
    operations = [DropLikeIndexes(table="outbox_outboxevent", columns=["type", "aggregate_id"])]
