"""Drop the `varchar_pattern_ops` ("_like") indexes Django adds on PostgreSQL beside the unique
indexes of `orders_order.number` and `orders_order.idempotency_key`. They serve only
`LIKE 'prefix%'` queries, and nothing queries these columns so (the desk and the admin look them
up by equality, `iexact` or `icontains`, which these indexes do not serve); every API checkout
paid for inserting into both (issue 11: with the outbox's two, ~0.04 ms of PostgreSQL's CPU
per checkout). The unique indexes stay: numbers and Idempotency-Keys are unique as before.

Dropped CONCURRENTLY, reversible (chargeflow.migration_operations.DropLikeIndexes)."""

from django.db import migrations

from chargeflow.migration_operations import DropLikeIndexes


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY cannot run in a transaction
    dependencies = [("orders", "0007_stock_take_function")]
    operations = [DropLikeIndexes(table="orders_order", columns=["number", "idempotency_key"])]
