import logging

from celery import shared_task

from shipping import services
from shipping.client import PartnerError
from shipping.selectors import open_shipment_ids

logger = logging.getLogger(__name__)


@shared_task(name="shipping.poll_open_shipments")
def poll_open_shipments() -> int:
    """Beat task (SHIPPING_POLL_SECONDS): ask the partner about every open shipment. One
    shipment's error is logged and skipped; the next run asks again."""
    polled = 0
    for shipment_id in open_shipment_ids():
        try:
            if services.shipment_poll(shipment_id=shipment_id) is not None:
                polled += 1
        except PartnerError as exc:
            logger.warning("polling shipment %s failed: %s", shipment_id, exc)
    return polled
