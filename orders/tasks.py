from celery import shared_task

from orders.services import orders_flag_stuck


@shared_task(name="orders.flag_stuck_orders")
def flag_stuck_orders() -> int:
    return orders_flag_stuck()
