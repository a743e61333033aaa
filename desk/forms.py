from __future__ import annotations

import uuid
from decimal import Decimal

from django import forms

from orders import selectors as orders


class RefundForm(forms.Form):
    """A refund from the order page: an amount, or units of lines (their price, tax included);
    with "restock", those units go back into stock. The token makes a double submit one refund."""

    amount = forms.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0.01"),
        required=False,
        help_text="Leave empty to refund the lines chosen below, or everything left if none.",
    )
    reason = forms.CharField(max_length=200)
    restock = forms.BooleanField(required=False, label="Put the chosen units back in stock")
    token = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, order, **kwargs):
        super().__init__(*args, **kwargs)
        self.order = order
        self.lines = list(order.lines.all())
        for line in self.lines:
            self.fields[f"line_{line.pk}"] = forms.IntegerField(
                min_value=0,
                max_value=line.quantity,
                required=False,
                label=f"{line.name} ({line.sku})",
                widget=forms.NumberInput(attrs={"size": 3, "min": 0, "max": line.quantity}),
            )
        if not self.is_bound:
            self.initial.setdefault("token", uuid.uuid4().hex)

    def line_fields(self):
        return [(line, self[f"line_{line.pk}"]) for line in self.lines]

    def clean(self):
        data = super().clean()
        quantities = {
            line.pk: data.get(f"line_{line.pk}") or 0
            for line in self.lines
            if data.get(f"line_{line.pk}")
        }
        data["quantities"] = quantities
        if data.get("restock") and not quantities:
            raise forms.ValidationError("To restock, say how many units of which lines.")
        if data.get("amount") is None and quantities:
            data["amount"] = orders.lines_amount(order=self.order, quantities=quantities)
        return data
