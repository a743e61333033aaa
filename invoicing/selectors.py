from invoicing.models import Invoice


def invoice_for_order(*, order_id) -> Invoice | None:
    return Invoice.objects.filter(order_id=order_id).first()
