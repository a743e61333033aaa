"""`orders_stock_take()`: the checkout's stock reservation as a PostgreSQL function, so that the
API's checkout writes the order, its lines, its timeline row, `order.placed` and the reservation
in ONE statement sent in autocommit (orders.services, issue 11). SQLite (the local default)
keeps the ORM path and needs nothing here.

The function takes the stock of each product in the order given (primary-key order: concurrent
checkouts never deadlock) with one conditional UPDATE per product, the same as the ORM path's
`_stock_reserve`: `stock >= n` (never oversell) and the product as the checkout read it (active,
price, currency, SKU, name: a change committed since makes the UPDATE miss and the checkout is
redone on the new catalog). The row lock is taken by that UPDATE and held to the commit only,
which follows at once (the statement is the transaction). When any product misses, it raises
(`orders_stock_take`, SQLSTATE P0001) with a JSON detail of the misses
(`[{"id", "changed", "available"}]`), which rolls the whole statement back: no order, no event,
no stock taken."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION orders_stock_take(
    ids bigint[], quantities integer[], prices numeric[], skus text[], names text[], cur text
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    missed jsonb := '[]'::jsonb;
    now_row record;
BEGIN
    FOR i IN 1 .. coalesce(array_length(ids, 1), 0) LOOP
        UPDATE orders_product SET stock = stock - quantities[i]
         WHERE id = ids[i] AND is_active AND price = prices[i] AND currency = cur
           AND sku = skus[i] AND name = names[i] AND stock >= quantities[i];
        IF NOT FOUND THEN
            SELECT p.is_active, p.price, p.currency, p.sku, p.name, p.stock INTO now_row
              FROM orders_product p WHERE p.id = ids[i];
            IF NOT FOUND THEN
                missed := missed || jsonb_build_array(
                    jsonb_build_object('id', ids[i], 'changed', true, 'available', 0));
            ELSE
                missed := missed || jsonb_build_array(jsonb_build_object(
                    'id', ids[i],
                    'changed', NOT (now_row.is_active AND now_row.price = prices[i]
                        AND now_row.currency = cur AND now_row.sku = skus[i]
                        AND now_row.name = names[i]),
                    'available', now_row.stock));
            END IF;
        END IF;
    END LOOP;
    IF jsonb_array_length(missed) > 0 THEN
        RAISE EXCEPTION 'orders_stock_take' USING DETAIL = missed::text;
    END IF;
    RETURN coalesce(array_length(ids, 1), 0);
END $$;
"""
DROP = "DROP FUNCTION IF EXISTS orders_stock_take(bigint[], integer[], numeric[], text[], text[], text);"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("orders", "0006_timeline_restock_type")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
