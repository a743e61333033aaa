from decimal import Decimal

import pytest

from invoicing.tests.factories import item
from invoicing.totals import TotalsError, lines_from_snapshot, rate_percent


@pytest.mark.parametrize(
    "bad",
    [
        {"sku": "A", "name": "A", "quantity": 2, "unit_price": "1.00", "line_total": "2.01"},
        {"sku": "A", "name": "A", "quantity": 1, "unit_price": "1.001", "line_total": "1.001"},
        {"sku": "A", "name": "A", "quantity": 0, "unit_price": "1.00", "line_total": "0.00"},
        {"sku": "A", "name": "A", "quantity": 1, "unit_price": "-1.00", "line_total": "-1.00"},
    ],
)
def test_a_snapshot_that_does_not_add_up_is_refused(bad):
    with pytest.raises(TotalsError):
        lines_from_snapshot([bad])


def test_lines_and_rate_for_documents():
    (line,) = lines_from_snapshot([item("A", "29.99", 3)])
    assert str(line.line_total) == "89.97"
    assert rate_percent(Decimal("0.0725")) == "7.25"
    assert rate_percent(Decimal("0.2000")) == "20"
