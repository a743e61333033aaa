// Polls the order's status JSON and updates the page until the order reaches a final status.
(function () {
  "use strict";
  const live = document.getElementById("order-live");
  const statusEl = document.getElementById("order-status");
  if (!live || !statusEl) return;
  const FINAL = ["delivered", "cancelled", "refunded"];
  const LABELS = {
    placed: "Placed", invoiced: "Invoiced", action_required: "Payment action required",
    paid: "Paid", shipped: "Shipped", delivered: "Delivered", cancelled: "Cancelled", refunded: "Refunded",
  };
  function describe(entry) {
    const d = entry.detail || {};
    if (entry.type === "status_changed") return "status " + (d.from || "—") + " → " + d.to;
    if (entry.type === "email_sent") return "email sent: " + d.kind;
    return entry.type + " " + JSON.stringify(d);
  }
  function render(order) {
    statusEl.textContent = LABELS[order.status] || order.status;
    statusEl.dataset.status = order.status;
    const token = new URL(live.dataset.url, location.href).searchParams.get("token") || "";
    if (order.totals) document.getElementById("order-total").textContent =
      "Total " + order.totals.total + " " + order.totals.currency;
    if (order.invoice) {
      const p = document.getElementById("order-invoice");
      p.textContent = "Invoice ";
      const a = document.createElement("a");
      a.href = order.invoice.pdf_url + "?token=" + encodeURIComponent(token);
      a.textContent = order.invoice.number + " (PDF)";
      p.appendChild(a);
    }
    if (order.shipment && order.shipment.tracking_number) document.getElementById("order-tracking").textContent =
      "Tracking: " + order.shipment.carrier + " " + order.shipment.tracking_number;
    const list = document.getElementById("order-timeline");
    list.replaceChildren(...order.timeline.map(function (entry) {
      const li = document.createElement("li");
      li.textContent = new Date(entry.at).toLocaleTimeString() + " — " + describe(entry);
      return li;
    }));
  }
  async function poll() {
    try {
      const response = await fetch(live.dataset.url, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const order = await response.json();
        render(order);
        if (FINAL.includes(order.status)) return;
      }
    } catch (e) { /* network blip: try again */ }
    setTimeout(poll, 1500);
  }
  if (!FINAL.includes(statusEl.dataset.status)) setTimeout(poll, 1000);
})();
