from shipping.models import OPEN_STATUSES, Shipment


def open_shipment_ids() -> list[int]:
    return list(
        Shipment.objects.filter(status__in=OPEN_STATUSES)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def shipment_for_order(*, order_id) -> Shipment | None:
    return Shipment.objects.filter(order_id=order_id).first()


def order_ids_for_tracking(*, reference: str) -> list:
    """Orders whose shipment the carrier or the partner quotes (tracking or partner id)."""
    from django.db.models import Q

    reference = reference.strip()
    if not reference:
        return []
    return list(
        Shipment.objects.filter(
            Q(tracking_number__iexact=reference) | Q(partner_shipment_id=reference)
        ).values_list("order_id", flat=True)
    )
