"""Wake the relays from PostgreSQL itself: a statement-level trigger NOTIFYs the outbox channel
when rows are inserted, instead of a `SELECT pg_notify(...)` round trip after every publish()
(issue 11). NOTIFY is still delivered at commit only, collapsed per transaction. SQLite (the
local default) has no NOTIFY: the relay polls there, as before."""

from django.db import migrations

CHANNEL = "chargeflow_outbox"  # outbox.services.NOTIFY_CHANNEL, frozen here

CREATE = f"""
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS outbox_notify ON outbox_outboxevent;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox_outboxevent
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
"""
DROP = """
DROP TRIGGER IF EXISTS outbox_notify ON outbox_outboxevent;
DROP FUNCTION IF EXISTS outbox_notify();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("outbox", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
