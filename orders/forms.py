import re

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

from orders.countries import country_choices

POSTAL_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9 -]{1,9}$")
# secrets.token_urlsafe(24) in the form; checked before it is looked up.
CHECKOUT_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")


class AddToCartForm(forms.Form):
    sku = forms.CharField(max_length=32)
    quantity = forms.IntegerField(min_value=1, max_value=1000, initial=1)


class CartUpdateForm(forms.Form):
    """Quantity 0 removes the line; negative and non-numbers are refused."""

    sku = forms.CharField(max_length=32)
    quantity = forms.IntegerField(
        min_value=0,
        max_value=1000,
        error_messages={
            "invalid": "Quantity must be a whole number.",
            "min_value": "Quantity cannot be negative.",
            "max_value": "At most 1000 of one product.",
            "required": "Enter a quantity.",
        },
    )


class CheckoutForm(forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    name = forms.CharField(
        max_length=200, label="Full name", widget=forms.TextInput(attrs={"autocomplete": "name"})
    )
    line1 = forms.CharField(
        max_length=200,
        label="Address",
        widget=forms.TextInput(attrs={"autocomplete": "address-line1"}),
    )
    line2 = forms.CharField(
        max_length=200,
        required=False,
        label="Address line 2 (optional)",
        widget=forms.TextInput(attrs={"autocomplete": "address-line2"}),
    )
    city = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"autocomplete": "address-level2"})
    )
    postal_code = forms.CharField(
        max_length=20,
        label="Postal code",
        widget=forms.TextInput(attrs={"autocomplete": "postal-code"}),
    )
    # Nothing preselected unless the shopper's choice, account or browser gives one
    # (cart.preferred_country).
    country = forms.ChoiceField(
        choices=lambda: [("", "Choose your country"), *country_choices()],
        error_messages={"required": "Choose the country to ship to."},
        widget=forms.Select(attrs={"autocomplete": "country"}),
    )
    checkout_token = forms.RegexField(
        CHECKOUT_TOKEN_RE, min_length=16, max_length=64, widget=forms.HiddenInput
    )

    def clean_postal_code(self) -> str:
        value = " ".join(self.cleaned_data["postal_code"].upper().split())
        if not POSTAL_CODE_RE.match(value):
            raise forms.ValidationError("Enter a valid postal code (letters, digits, spaces).")
        return value


class SignUpForm(UserCreationForm):
    email = forms.EmailField(help_text="Order confirmations are sent here.")

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")


ORDER_NUMBER_RE = re.compile(r"^CF-[2-9A-Z]{8}$")


class FindOrderForm(forms.Form):
    """ "Find my order": the email address and the order number, as in the confirmation."""

    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    number = forms.CharField(
        max_length=20,
        label="Order number",
        help_text="In your confirmation email, e.g. CF-7KQ2M9XA.",
        widget=forms.TextInput(attrs={"autocapitalize": "characters", "spellcheck": "false"}),
    )

    def clean_number(self) -> str:
        value = "".join(self.cleaned_data["number"].split()).upper()
        value = value if value.startswith("CF-") else f"CF-{value.removeprefix('CF')}"
        if not ORDER_NUMBER_RE.fullmatch(value):
            raise forms.ValidationError("Enter the order number as in your email (CF-…).")
        return value
