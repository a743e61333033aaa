// Cart and checkout: when the destination country changes, fetch the exact totals for it
// (GET /cart/totals/?country=XX, the same calculation the order is placed and charged with) and
// swap in the server-rendered totals block, without a reload. Without JavaScript the pages have
// a "Recalculate" button instead.
(function () {
  "use strict";
  const box = document.getElementById("quote-totals");
  if (!box) return;
  const select = document.getElementById(box.dataset.countryField);
  if (!select) return;
  let latest = 0;
  select.addEventListener("change", async function () {
    if (!select.value) return;  // "Choose your country": nothing to price yet
    const mine = ++latest;  // answers arriving out of order: only the last choice counts
    box.setAttribute("aria-busy", "true");
    try {
      const url = box.dataset.url + "?country=" + encodeURIComponent(select.value);
      const response = await fetch(url, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const data = await response.json();
      if (mine !== latest) return;
      box.innerHTML = data.html;
    } catch (err) {
      if (mine !== latest) return;
      box.innerHTML = '<p class="field-error">The total for this country could not be ' +
        "loaded. Reload the page to see it.</p>";
    } finally {
      if (mine === latest) box.removeAttribute("aria-busy");
    }
  });
})();
