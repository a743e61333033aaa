"""What a customer reads instead of an internal cause (shared kernel: no business rules).

The pipeline records causes for operators ("Shipping failed: Address is undeliverable: postal code
00000", "payment failed: Your card was declined.", "shipping partner unavailable: HTTP 503").
Emails, order pages and documents show `customer_reason(cause)` instead: a sentence written for
the customer, never an exception's text. A cause that matches no rule below is a reason someone
wrote for the customer (an operator's refund in the admin, an API client's refund reason) and is
shown as it is, trimmed to one sentence of reasonable length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# (pattern on the internal cause, lower-cased; what the customer reads). First match wins.
RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), text)
    for pattern, text in (
        (
            r"undeliverable|postal code \d",
            "Our shipping partner could not deliver to the address given with the order.",
        ),
        (
            r"shipping partner|shipping failed|shipment failed",
            "We could not hand your order to our shipping partner.",
        ),
        (
            r"insufficient[_ ]funds",
            "Your bank declined the payment (insufficient funds).",
        ),
        (
            r"expired[_ ]card|card has expired",
            "Your card has expired.",
        ),
        (
            r"authentication|3-?d ?secure|requires_action|action expired",
            "The payment was not confirmed with your bank in time.",
        ),
        (
            r"authorization (expired|was cancelled|lost)|authorization_canceled",
            "The reservation on your card expired before we could charge it.",
        ),
        (
            r"amount_mismatch|could not verify the amount",
            "We could not verify the amount of this order.",
        ),
        (
            r"declined|card_declined|do_not_honor|payment failed|payment could not",
            "Your bank declined the payment.",
        ),
        (
            r"found at stripe by reconciliation",
            "A refund our team made for you.",
        ),
    )
)
# Internal causes never shown as they are: exception-like texts with technical markers.
TECHNICAL = re.compile(
    r"traceback|exception|error:|errno|http \d{3}|\b[45]\d\d\b|https?://|\bpi_|\bre_|\bch_"
)
FALLBACK = "We could not complete your order."
MAX_LENGTH = 300


def customer_reason(
    cause: str | None, *, codes: Iterable[str] = (), default: str | None = None
) -> str:
    """The customer's sentence for an internal cause (and optional machine codes, such as a
    decline code or a partner error code, tried first). Without a cause, or for one that reads
    like an error, `default` (FALLBACK when None)."""
    fallback = FALLBACK if default is None else default
    for code in codes:
        text = _match(str(code or ""))
        if text:
            return text
    cause = " ".join((cause or "").split())
    if not cause:
        return fallback
    text = _match(cause)
    if text:
        return text
    if TECHNICAL.search(cause.lower()):
        return fallback
    cause = cause[:MAX_LENGTH]
    return cause if cause.endswith((".", "!", "?")) else f"{cause}."


def _match(text: str) -> str:
    lowered = text.lower()
    if not lowered:
        return ""
    for pattern, sentence in RULES:
        if pattern.search(lowered):
            return sentence
    return ""


def join_items(items: Iterable[tuple[int, str]]) -> str:
    """Quantities and names, comma-separated, no stray space: "1 x Mouse, 3 x Laptop Stand"
    (with the multiplication sign)."""
    return ", ".join(f"{quantity} × {name}" for quantity, name in items)
