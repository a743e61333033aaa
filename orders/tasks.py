from celery import shared_task

from orders.checkout import checkouts_sweep
from orders.services import orders_flag_stuck


@shared_task(name="orders.flag_stuck_orders")
def flag_stuck_orders() -> int:
    return orders_flag_stuck()


@shared_task(name="orders.sweep_checkouts")
def sweep_checkouts() -> dict[str, int]:
    """Give back the stock of expired holds; void the authorizations of abandoned checkouts."""
    result = checkouts_sweep()
    return {"expired": result.expired, "released": result.released}
