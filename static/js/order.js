// The order page updates itself: it polls the order's status JSON and swaps in the server-rendered
// live part. A final status is not the end of the news: the emails and the credit note follow it
// by a few seconds, so the page keeps polling (more slowly) until the server says the order has
// settled (final and quiet for a minute), and at most FINAL_GRACE_MS after it first saw the final
// status. When the bank asks for it (3-D Secure), "Complete payment" runs Stripe.js
// confirmCardPayment with the client secret.
(function () {
  "use strict";
  const live = document.getElementById("order-live");
  if (!live) return;
  const ACTIVE_DELAY = 1000;
  const FINAL_DELAY = 2000;
  const MAX_DELAY = 15000;
  const FINAL_GRACE_MS = 60000;
  let paying = false;
  let delay = ACTIVE_DELAY;
  let finalSince = null;
  let lastHtml = null;  // the live part as the server last sent it

  function statusData() {
    const status = document.getElementById("order-status");
    return status ? status.dataset : {};
  }

  // The order ended (cancelled, refunded) after the page was rendered: "Thank you! Order … is
  // placed." no longer fits above the status message that explains it.
  function dropPlacedMessage(status) {
    if (status !== "cancelled" && status !== "refunded") return;
    document.querySelectorAll(".message.order-placed").forEach(function (message) {
      const list = message.parentElement;
      message.remove();
      if (list && list.classList.contains("messages") && !list.children.length) list.remove();
    });
  }

  // Whether to ask again: not once the order has settled, nor long after its final status.
  function keepPolling(order) {
    if (order.settled) return false;
    if (!order.final) {
      finalSince = null;
      return true;
    }
    if (finalSince === null) finalSince = Date.now();
    return Date.now() - finalSince < FINAL_GRACE_MS;
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
          // Swapping only what changed keeps the reader's selection and focus in the page.
          if (!paying && order.html !== lastHtml) {
            live.innerHTML = order.html;
            lastHtml = order.html;
          }
          dropPlacedMessage(order.status);
          if (!keepPolling(order)) return;
          delay = order.final ? FINAL_DELAY : ACTIVE_DELAY;
        } else {
          delay = Math.min(delay * 2, MAX_DELAY);
        }
      } catch (e) {
        delay = Math.min(delay * 2, MAX_DELAY);  // network blip: back off, try again
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

  const initial = statusData();
  dropPlacedMessage(initial.status);
  if (initial.settled !== "true") setTimeout(poll, initial.final === "true" ? FINAL_DELAY : delay);
})();
