from django import forms

from orders.countries import country_choices


class AddToCartForm(forms.Form):
    sku = forms.CharField(max_length=32)
    quantity = forms.IntegerField(min_value=1, max_value=1000, initial=1)


class CheckoutForm(forms.Form):
    TEST_CARDS = [
        ("pm_card_visa", "Visa test card (pays)"),
        ("pm_card_chargeCustomerFail", "Declined test card"),
    ]
    email = forms.EmailField()
    name = forms.CharField(max_length=200)
    line1 = forms.CharField(max_length=200, label="Address")
    line2 = forms.CharField(max_length=200, required=False, label="Address line 2")
    city = forms.CharField(max_length=100)
    postal_code = forms.CharField(max_length=20)
    country = forms.ChoiceField(choices=country_choices, initial="DE")
    payment_method = forms.CharField(max_length=255, widget=forms.Select(choices=TEST_CARDS))
    checkout_token = forms.CharField(widget=forms.HiddenInput)
