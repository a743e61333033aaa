import secrets
import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

NUMBER_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_order_number() -> str:
    """CF- and 8 characters of NUMBER_ALPHABET, uniformly random: one draw of the whole number
    (the same distribution as 8 independent choices, one system call instead of 8)."""
    value, base, chars = secrets.randbelow(len(NUMBER_ALPHABET) ** 8), len(NUMBER_ALPHABET), []
    for _ in range(8):
        value, digit = divmod(value, base)
        chars.append(NUMBER_ALPHABET[digit])
    return "CF-" + "".join(chars)


class Product(models.Model):
    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default=settings.SHOP_CURRENCY)
    stock = models.PositiveIntegerField(default=0, help_text="Units available to sell.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gte=0), name="product_price_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


class TaxRate(models.Model):
    """VAT/sales tax by destination country, edited by operators in the admin.

    Applied to the goods and, when `applies_to_shipping`, to the shipping fee too: extracted from
    gross prices or added to net ones (settings.PRICES_INCLUDE_TAX, docs/pricing.md). A country
    without a row uses settings.DEFAULT_TAX_RATE."""

    country = models.CharField(max_length=2, unique=True, help_text="ISO 3166-1 alpha-2")
    rate = models.DecimalField(max_digits=5, decimal_places=4, help_text="0.1900 for 19 %")
    name = models.CharField(max_length=50, default="VAT")
    applies_to_shipping = models.BooleanField(default=True)

    class Meta:
        ordering = ("country",)

    def __str__(self) -> str:
        return f"{self.country} {self.name} {self.rate:%}"


class ShippingZone(models.Model):
    """A shipping fee by destination zone, with an optional free-shipping threshold.

    A zone lists its countries; the zone with no countries is the fallback for every other one.
    Without any zone, settings.SHIPPING_FEE and FREE_SHIPPING_THRESHOLD apply. Amounts are in the
    catalog's terms: VAT included when settings.PRICES_INCLUDE_TAX (docs/pricing.md)."""

    name = models.CharField(max_length=50, unique=True)
    countries = models.CharField(
        max_length=1000,
        blank=True,
        help_text="Comma-separated ISO codes (DE,AT,FR). Empty: every country of no other zone.",
    )
    fee = models.DecimalField(max_digits=10, decimal_places=2)
    free_shipping_threshold = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Goods subtotal (as shown in the shop) from which shipping is free. "
        "Empty: never free.",
    )

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    @property
    def country_codes(self) -> set[str]:
        return {c.strip().upper() for c in self.countries.split(",") if c.strip()}


class Order(models.Model):
    class Status(models.TextChoices):
        PLACED = "placed", "Placed"
        INVOICED = "invoiced", "Invoiced"
        ACTION_REQUIRED = "action_required", "Payment action required"
        PAID = "paid", "Paid"
        SHIPPED = "shipped", "Shipped"
        DELIVERED = "delivered", "Delivered"
        CANCELLED = "cancelled", "Cancelled"
        REFUNDED = "refunded", "Refunded"

    class PaymentStatus(models.TextChoices):
        """What billing reported about the payment (the API's `payment.status`, DESIGN.md §6);
        blank until billing reports anything."""

        PENDING = "pending", "Pending"
        ACTION_REQUIRED = "action_required", "Action required"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
        REFUNDED = "refunded", "Refunded"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.CharField(max_length=16, unique=True, default=new_order_number)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PLACED)
    email = models.EmailField()
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="orders",
    )
    ship_name = models.CharField("name", max_length=200)
    ship_line1 = models.CharField("address line 1", max_length=200)
    ship_line2 = models.CharField("address line 2", max_length=200, blank=True)
    ship_city = models.CharField("city", max_length=100)
    ship_postal_code = models.CharField("postal code", max_length=20)
    ship_country = models.CharField("country", max_length=2)
    # How it pays: a card the checkout page authorized (`payment_intent`, captured after the
    # invoice), or, on the API, a payment method charged after the invoice.
    payment_method = models.CharField(max_length=255, blank=True)
    payment_intent = models.CharField(max_length=255, blank=True)
    currency = models.CharField(max_length=3)
    idempotency_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)

    # The totals, fixed when the order is placed (orders/pricing.py) and carried by order.placed:
    # subtotal and shipping_fee are net, subtotal + shipping_fee + tax == total. (Orders placed
    # before this existed got them from invoice.issued.)
    subtotal = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    shipping_fee = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    tax = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    total = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    tax_name = models.CharField(max_length=50, blank=True)
    tax_rate = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    shipping_zone = models.CharField(max_length=50, blank=True)
    prices_include_tax = models.BooleanField(
        null=True, blank=True, help_text="How the shop showed the prices when it was placed."
    )
    # What the shopper saw: goods and shipping in the catalog's terms (gross when prices include
    # tax; equal to subtotal and shipping_fee otherwise).
    goods_shown = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    shipping_shown = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)

    # Copies of facts reported by the other apps' events (event-carried state).
    invoice_number = models.CharField(max_length=32, blank=True)
    invoice_pdf_path = models.CharField(max_length=255, blank=True)
    payment_status = models.CharField(max_length=32, blank=True, choices=PaymentStatus.choices)
    payment_message = models.CharField(max_length=500, blank=True)
    payment_client_secret = models.CharField(max_length=255, blank=True)
    refunded_amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    carrier = models.CharField(max_length=64, blank=True)
    tracking_number = models.CharField(max_length=64, blank=True)
    shipment_status = models.CharField(max_length=32, blank=True)

    stock_released_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_progress_at = models.DateTimeField(default=timezone.now)
    stuck_since = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = [
            models.Index(fields=["status", "last_progress_at"], name="order_status_progress")
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def shipping_address(self) -> dict[str, str]:
        return {
            "name": self.ship_name,
            "line1": self.ship_line1,
            "line2": self.ship_line2,
            "city": self.ship_city,
            "postal_code": self.ship_postal_code,
            "country": self.ship_country,
        }


S = Order.Status
FINAL_STATUSES = frozenset({S.DELIVERED, S.CANCELLED, S.REFUNDED})

# The order state machine (DESIGN.md §4): every allowed move, and nothing else. Forward skips are
# allowed because events of different apps may arrive out of order (a payment.succeeded handled
# before the invoice.issued that caused it); nothing ever moves back.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    S.PLACED: frozenset(
        {S.INVOICED, S.ACTION_REQUIRED, S.PAID, S.SHIPPED, S.DELIVERED, S.CANCELLED, S.REFUNDED}
    ),
    S.INVOICED: frozenset(
        {S.ACTION_REQUIRED, S.PAID, S.SHIPPED, S.DELIVERED, S.CANCELLED, S.REFUNDED}
    ),
    S.ACTION_REQUIRED: frozenset({S.PAID, S.SHIPPED, S.DELIVERED, S.CANCELLED, S.REFUNDED}),
    S.PAID: frozenset({S.SHIPPED, S.DELIVERED, S.REFUNDED}),
    S.SHIPPED: frozenset({S.DELIVERED, S.REFUNDED}),
    S.DELIVERED: frozenset({S.REFUNDED}),
    S.CANCELLED: frozenset(),
    S.REFUNDED: frozenset(),
}


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    sku = models.CharField(max_length=32)
    name = models.CharField(max_length=200)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField()
    line_total = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.quantity} × {self.sku}"


class OrderCreditNote(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="credit_notes")
    number = models.CharField(max_length=32, unique=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    pdf_path = models.CharField(max_length=255, blank=True)
    issued_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("issued_at", "id")

    def __str__(self) -> str:
        return self.number


class TimelineEntry(models.Model):
    class Type(models.TextChoices):
        # The API contract names the first two (DESIGN.md §6); the others are ours.
        STATUS_CHANGED = "status_changed", "Status changed"
        EMAIL_SENT = "email_sent", "Email sent"
        INVOICE_ISSUED = "invoice_issued", "Invoice issued"
        PAYMENT = "payment", "Payment"
        SHIPMENT = "shipment", "Shipment"
        REFUND = "refund", "Refund"
        CREDIT_NOTE_ISSUED = "credit_note_issued", "Credit note issued"
        NOTE = "note", "Note"
        RESTOCK = "restock", "Put back in stock"  # an operator's restock (orders.services)

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="timeline")
    type = models.CharField(max_length=32, choices=Type.choices)
    at = models.DateTimeField(default=timezone.now)
    detail = models.JSONField(encoder=DjangoJSONEncoder, default=dict)

    class Meta:
        ordering = ("at", "id")
        verbose_name_plural = "timeline"

    def __str__(self) -> str:
        # What the admin heads an inline row with: readable, the detail is in its own column.
        what = self.type.replace("_", " ").capitalize()
        return f"{what} at {timezone.localtime(self.at):%Y-%m-%d %H:%M:%S}" if self.at else what


class Checkout(models.Model):
    """A shopper paying right now: the cart, address and exact total, the stock held for them
    while their card is authorized (CHECKOUT_HOLD_MINUTES), and the PaymentIntent opened for that
    total. Its id and number are the ones the order gets once the card is authorized: the intent
    carries them (metadata), so the webhook and the sweep find the checkout of an authorization.

    holding -> placed (the card was authorized: the order exists, with the held stock)
    holding -> expired (the hold ran out: stock back; the intent is still to settle)
    holding/expired -> releasing -> released (the sweep voids the intent: nothing stays held)
    """

    class Status(models.TextChoices):
        HOLDING = "holding", "Holding stock while the card is authorized"
        EXPIRED = "expired", "Hold expired, stock released"
        RELEASING = "releasing", "Releasing the authorization"
        RELEASED = "released", "Released"
        PLACED = "placed", "Order placed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.CharField(max_length=16, unique=True, default=new_order_number)
    # The storefront form's checkout token, or the API's Idempotency-Key (prefixed "api:").
    token = models.CharField(max_length=300, unique=True)
    # What the hold and the total are for (items, address, email): another request, another hold.
    fingerprint = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.HOLDING)
    email = models.EmailField(blank=True)
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    shipping_address = models.JSONField(default=dict)
    # [{sku, name, quantity, unit_price}]: the prices are fixed with the hold.
    lines = models.JSONField(default=list)
    currency = models.CharField(max_length=3)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    payment_intent = models.CharField(max_length=255, blank=True, db_index=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = [
            models.Index(
                fields=["expires_at"],
                condition=models.Q(status__in=["holding", "expired", "releasing"]),
                name="checkout_open_expiry_idx",
            )
        ]

    def __str__(self) -> str:
        return f"checkout {self.number} ({self.status})"
