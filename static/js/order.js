// The order page updates itself: it polls the order's status JSON, swaps in the server-rendered
// live part, and stops when the order reaches a final status. When the bank asks for it
// (3-D Secure), "Complete payment" runs Stripe.js confirmCardPayment with the client secret.
(function () {
  "use strict";
  const live = document.getElementById("order-live");
  if (!live) return;
  let paying = false;
  let delay = 1000;

  function isFinal() {
    const status = document.getElementById("order-status");
    return status && status.dataset.final === "true";
  }

  async function poll() {
    if (!paying) {
      try {
        const response = await fetch(live.dataset.url, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
          cache: "no-store",
        });
        if (response.ok) {
          const order = await response.json();
          if (!paying) live.innerHTML = order.html;
          delay = 1000;
          if (order.final) return;
        } else {
          delay = Math.min(delay * 2, 15000);
        }
      } catch (e) {
        delay = Math.min(delay * 2, 15000);  // network blip: back off, try again
      }
    }
    setTimeout(poll, delay);
  }

  function loadStripe() {
    if (typeof Stripe !== "undefined") return Promise.resolve();
    return new Promise(function (resolve, reject) {
      const script = document.createElement("script");
      script.src = live.dataset.stripeJs;
      script.onload = resolve;
      script.onerror = reject;
      document.head.appendChild(script);
    });
  }

  live.addEventListener("click", async function (event) {
    const button = event.target.closest("#complete-payment");
    if (!button || paying) return;
    const error = document.getElementById("payment-action-error");
    paying = true;
    button.disabled = true;
    button.textContent = "Waiting for your bank…";
    error.textContent = "";
    try {
      await loadStripe();
      const stripe = Stripe(live.dataset.stripeKey);
      const result = await stripe.confirmCardPayment(button.dataset.clientSecret);
      if (result.error) {
        error.textContent = result.error.message || "The payment was not confirmed.";
        button.disabled = false;
        button.textContent = "Try again";
      } else {
        button.textContent = "Confirmed: updating your order…";
      }
    } catch (e) {
      error.textContent = "Stripe could not be loaded. Check your connection and try again.";
      button.disabled = false;
      button.textContent = "Complete payment";
    } finally {
      paying = false;
    }
  });

  if (!isFinal()) setTimeout(poll, delay);
})();
