// The seed's /queue-list page: polls /queue-json, as the original did.
"use strict";
(function () {
  async function refresh() {
    try {
      const r = await fetch("/queue-json", { cache: "no-store" });
      const q = (await r.json()).stream_queue;
      const ol = document.getElementById("queue");
      ol.replaceChildren(...q.map((n) => { const li = document.createElement("li"); li.textContent = n; return li; }));
    } catch (e) {}
  }
  setInterval(refresh, 2000);
})();
