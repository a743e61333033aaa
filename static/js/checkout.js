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
      result = { error: { message: "Your card could not be checked. Please try again." } };
    }
    if (!result || result.error || !result.paymentMethod) {
      errors.textContent = (result && result.error && result.error.message) ||
        "Your card could not be checked. Please try again.";
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
