"""Concurrent issuing on PostgreSQL: the locked counter gives consecutive numbers, no gap, no
duplicate, even with some issuers rolling back."""

import threading

import pytest
from django.db import connection, transaction

from invoicing import services
from invoicing.models import Invoice
from invoicing.tests.factories import order_placed

WORKERS = 8
PER_WORKER = 5


class Rollback(Exception):
    pass


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_issuing_gives_consecutive_numbers_without_gap_or_duplicate():
    barrier = threading.Barrier(WORKERS)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            barrier.wait()
            for n in range(PER_WORKER):
                try:
                    with transaction.atomic():
                        services.invoice_issue(**order_placed())
                        if (worker + n) % 4 == 0:  # a quarter roll back after taking a number
                            raise Rollback
                except Rollback:
                    pass
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    committed = WORKERS * PER_WORKER - sum(
        1 for w in range(WORKERS) for n in range(PER_WORKER) if (w + n) % 4 == 0
    )
    assert len(numbers) == committed
    year = numbers[0][:4]
    assert numbers == [f"{year}-{i:06d}" for i in range(1, committed + 1)]
