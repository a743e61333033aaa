// Checkout: the card goes to Stripe (Stripe.js createPaymentMethod); only the PaymentMethod id
// (pm_…) is posted to our server, in the hidden `payment_method` field.
(function () {
  "use strict";
  const form = document.getElementById("checkout-form");
  if (!form) return;
  const errors = document.getElementById("card-errors");
  const button = document.getElementById("place-order");
  const paymentMethod = form.elements["payment_method"];
  const LABEL = button.textContent;
  if (typeof Stripe === "undefined") {
    errors.textContent = "Card payments could not be loaded. Check your connection and reload.";
    button.disabled = true;
    return;
  }
  const stripe = Stripe(form.dataset.stripeKey);
  const card = stripe.elements().create("card", { hidePostalCode: true });
  card.mount("#card-element");
  card.on("change", function (event) {
    errors.textContent = event && event.error ? event.error.message : "";
  });

  // What the customer reads when the card is refused before the order is placed. Stripe's own
  // messages for card and validation errors are written for customers; other errors (a bare
  // "Bad request", a network failure) get a sentence by their code, or a plain one.
  const MESSAGES = {
    incomplete_number: "Your card number is incomplete.",
    invalid_number: "Your card number is invalid.",
    incorrect_number: "Your card number is invalid.",
    invalid_expiry_month: "The card's expiry month is invalid.",
    invalid_expiry_year: "The card's expiry year is invalid.",
    incomplete_expiry: "The card's expiry date is incomplete.",
    expired_card: "Your card has expired.",
    invalid_cvc: "The card's security code (CVC) is invalid.",
    incomplete_cvc: "The card's security code (CVC) is incomplete.",
  };
  const UNREADABLE = "Your card details could not be checked: check the card number, " +
    "expiry date and security code (CVC) and try again.";

  function messageFor(error) {
    if (!error) return UNREADABLE;
    if ((error.type === "card_error" || error.type === "validation_error") && error.message) {
      return error.message;
    }
    return MESSAGES[error.code] || UNREADABLE;
  }

  let busy = false;
  function idle() {
    busy = false;
    button.disabled = false;
    button.textContent = LABEL;
  }
  form.addEventListener("submit", async function (event) {
    if (busy) {  // a second click while the first is on its way
      event.preventDefault();
      return;
    }
    busy = true;
    button.disabled = true;
    if (paymentMethod.value) return;  // already created (e.g. back button): post the same form
    event.preventDefault();
    button.textContent = "Checking your card…";
    let result;
    try {
      result = await stripe.createPaymentMethod({
        type: "card",
        card: card,
        billing_details: {
          name: form.elements["name"].value,
          email: form.elements["email"].value,
        },
      });
    } catch (err) {
      result = null;  // Stripe unreachable: the customer gets the plain sentence
    }
    if (!result || result.error || !result.paymentMethod) {
      errors.textContent = messageFor(result && result.error);
      idle();
      return;
    }
    paymentMethod.value = result.paymentMethod.id;
    button.textContent = "Placing your order…";
    form.submit();
  });
  // Coming back with the back button restores the page from the cache: make the button usable.
  window.addEventListener("pageshow", idle);
})();
