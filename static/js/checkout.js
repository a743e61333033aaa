// Checkout: pay in the page, the way Stripe's card payments work (docs/checkout.md).
// 1. POST the form to /checkout/pay/: the server validates every field at once (errors shown next
//    to each field, nothing typed is lost), holds the stock, fixes the exact total and opens a
//    PaymentIntent for it (manual capture); it answers the intent's client secret.
// 2. stripe.confirmCardPayment(clientSecret, {payment_method: {card}}): the card goes browser ->
//    Stripe, 3-D Secure happens here in the page; a decline is shown next to the card field and
//    another card can be tried at once (same form, same hold, same intent).
// 3. POST the authorized intent to /checkout/complete/: the server checks it at Stripe and places
//    the order; then the order page.
(function () {
  "use strict";
  const form = document.getElementById("checkout-form");
  if (!form) return;
  const cardErrors = document.getElementById("card-errors");
  const formErrors = document.getElementById("checkout-errors");
  const button = document.getElementById("place-order");
  const LABEL = button.textContent;
  if (typeof Stripe === "undefined") {
    cardErrors.textContent = "Card payments could not be loaded. Check your connection and reload.";
    button.disabled = true;
    return;
  }
  const stripe = Stripe(form.dataset.stripeKey);
  const card = stripe.elements().create("card", { hidePostalCode: true });
  card.mount("#card-element");
  card.on("change", function (event) {
    cardErrors.textContent = event && event.error ? event.error.message : "";
  });

  // What the customer reads when the card is refused. Stripe's messages for card and validation
  // errors are written for customers; other errors get a sentence by their code, or a plain one.
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
    payment_intent_authentication_failure:
      "Your bank could not confirm this payment (3-D Secure). Try again or use another card.",
  };
  const UNREADABLE = "Your card could not be checked: check the card number, expiry date and " +
    "security code (CVC) and try again.";

  function cardMessage(error) {
    if (!error) return UNREADABLE;
    if (MESSAGES[error.code]) return MESSAGES[error.code];
    if ((error.type === "card_error" || error.type === "validation_error") && error.message) {
      return error.message;
    }
    return UNREADABLE;
  }

  function clearErrors() {
    formErrors.hidden = true;
    formErrors.textContent = "";
    cardErrors.textContent = "";
    form.querySelectorAll(".field.invalid").forEach(function (field) {
      field.classList.remove("invalid");
    });
    form.querySelectorAll(".field-error.from-server").forEach(function (span) {
      span.remove();
    });
  }

  function showFieldErrors(errors) {
    let first = null;
    Object.keys(errors || {}).forEach(function (name) {
      const input = form.elements[name];
      const messages = errors[name].map(function (e) { return e.message; });
      const wrapper = input && input.closest && input.closest(".field");
      if (!wrapper) {
        showFormError(messages.join(" "));
        return;
      }
      wrapper.classList.add("invalid");
      wrapper.querySelectorAll(".field-error").forEach(function (span) { span.remove(); });
      messages.forEach(function (message) {
        const span = document.createElement("span");
        span.className = "field-error from-server";
        span.id = input.id + "-error";
        span.textContent = message;
        wrapper.appendChild(span);
      });
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", input.id + "-error");
      first = first || input;
    });
    if (first) first.focus();
  }

  function showFormError(message) {
    formErrors.textContent = message;
    formErrors.hidden = false;
  }

  async function post(url, data) {
    const response = await fetch(url, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-Requested-With": "fetch" },
    });
    let body = {};
    try {
      body = await response.json();
    } catch (err) {
      body = { message: "Something went wrong on our side; nothing was charged. Try again." };
    }
    return { ok: response.ok, status: response.status, body: body };
  }

  let busy = false;
  function idle() {
    busy = false;
    button.disabled = false;
    button.textContent = LABEL;
  }

  async function pay() {
    clearErrors();
    button.textContent = "Checking your details…";
    let answer;
    try {
      answer = await post(form.dataset.payUrl, new FormData(form));
    } catch (err) {
      showFormError("We could not reach the shop. Check your connection; nothing was charged.");
      return;
    }
    if (answer.body.redirect && answer.ok) {
      window.location.assign(answer.body.redirect);
      return "leaving";
    }
    if (!answer.ok) {
      if (answer.body.errors) showFieldErrors(answer.body.errors);
      if (answer.body.message) showFormError(answer.body.message);
      if (answer.body.redirect) window.location.assign(answer.body.redirect);
      return;
    }
    button.textContent = "Authorizing your card (your bank may ask you to confirm)…";
    let result;
    try {
      result = await stripe.confirmCardPayment(answer.body.client_secret, {
        payment_method: {
          card: card,
          billing_details: {
            name: form.elements["name"].value,
            email: form.elements["email"].value,
          },
        },
      });
    } catch (err) {
      result = null;  // Stripe unreachable: the plain sentence
    }
    const intent = result && result.paymentIntent;
    if (!intent || intent.status !== "requires_capture") {
      const message = cardMessage(result && result.error);
      cardErrors.textContent = /try again/i.test(message)
        ? message + " Nothing was charged."
        : message + " Nothing was charged: check the card or use another one, then press Pay again.";
      return;
    }
    button.textContent = "Placing your order…";
    const data = new FormData();
    data.append("csrfmiddlewaretoken", form.elements["csrfmiddlewaretoken"].value);
    data.append("checkout_token", form.elements["checkout_token"].value);
    data.append("payment_intent", intent.id);
    let placed;
    try {
      placed = await post(form.dataset.completeUrl, data);
    } catch (err) {
      placed = { ok: false, body: {} };
    }
    if (placed.ok && placed.body.redirect) {
      window.location.assign(placed.body.redirect);
      return "leaving";
    }
    showFormError(
      placed.body.message ||
        "Your card is authorized, but we could not confirm your order yet. Do not pay again: " +
        "we will email you the confirmation shortly.",
    );
  }

  form.addEventListener("submit", async function (event) {
    if (event.submitter && event.submitter.name === "recalculate") return;  // without JS only
    event.preventDefault();
    if (busy) return;  // a second click while the first is on its way
    busy = true;
    button.disabled = true;
    const outcome = await pay();
    if (outcome !== "leaving") idle();
  });
  // Coming back with the back button restores the page from the cache: make the button usable.
  window.addEventListener("pageshow", idle);
})();
