from shipping.models import Shipment


def open_shipment_ids() -> list[int]:
    return list(
        Shipment.objects.filter(
            status__in=[Shipment.Status.CREATED, Shipment.Status.IN_TRANSIT]
        ).values_list("pk", flat=True)
    )
