// motherstream pages: live updates over Server-Sent Events, copy buttons, graphs.
// No framework: the pages work without this script, it only keeps them current.
"use strict";
(function () {
  const MS = (window.MS = {});

  // Seconds → m:ss (or h:mm:ss).
  MS.clock = function (secs) {
    secs = Math.max(0, Math.round(secs));
    const h = Math.floor(secs / 3600), m = Math.floor(secs / 60) % 60, s = secs % 60;
    const mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  };

  // Subscribes to /api/v1/events. EventSource retries dropped connections by itself, but
  // gives up for good on an HTTP error (a proxy's 502 while the server restarts): then we
  // start over after a pause, so pages and overlays recover alone.
  MS.connect = function (handlers) {
    let source;
    const open = () => {
      source = new EventSource("/api/v1/events");
      for (const [name, handler] of Object.entries(handlers)) {
        source.addEventListener(name, (e) => {
          try { handler(JSON.parse(e.data)); } catch (err) { console.error(err); }
        });
      }
      source.onopen = () => document.documentElement.classList.remove("offline");
      source.onerror = () => {
        document.documentElement.classList.add("offline");
        if (source.readyState === EventSource.CLOSED) setTimeout(open, 2000);
      };
    };
    open();
  };

  // A countdown that ticks locally between server updates.
  MS.Countdown = function (elements) {
    let deadline = null, paused = false, left = 0;
    const paint = () => {
      const secs = paused || deadline === null ? left : (deadline - Date.now()) / 1000;
      for (const el of elements) if (el) el.textContent = MS.clock(secs);
    };
    setInterval(paint, 250);
    return {
      set(seconds, isPaused) {
        left = seconds; paused = !!isPaused;
        deadline = Date.now() + seconds * 1000;
        paint();
      },
    };
  };

  // A small two-line chart (kbit/s and fps) of the last two minutes.
  MS.Graph = function (canvas, points = 120) {
    const kbps = [], fps = [];
    const css = getComputedStyle(document.documentElement);
    const draw = () => {
      const ratio = window.devicePixelRatio || 1;
      const w = canvas.clientWidth, h = canvas.clientHeight;
      if (canvas.width !== w * ratio) { canvas.width = w * ratio; canvas.height = h * ratio; }
      const ctx = canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, w, h);
      const line = (values, max, color) => {
        if (values.length < 2) return;
        ctx.beginPath();
        values.forEach((v, i) => {
          const x = w - (values.length - 1 - i) * (w / (points - 1));
          const y = h - 4 - (Math.min(v, max) / max) * (h - 12);
          i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
        });
        ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.stroke();
      };
      const kMax = Math.max(1000, ...kbps) * 1.15, fMax = Math.max(30, ...fps) * 1.15;
      line(kbps, kMax, css.getPropertyValue("--accent").trim() || "#ff4f7b");
      line(fps, fMax, css.getPropertyValue("--ok").trim() || "#3ddc97");
    };
    return {
      push(bitrateBps, videoFps) {
        kbps.push((bitrateBps || 0) / 1000); fps.push(videoFps || 0);
        if (kbps.length > points) { kbps.shift(); fps.shift(); }
        draw();
      },
    };
  };

  // Copy buttons: <button data-copy="element-id">.
  document.addEventListener("click", async (e) => {
    const button = e.target.closest("[data-copy]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    const text = source ? (source.value ?? source.textContent).trim() : "";
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      if (source && source.select) { source.select(); document.execCommand("copy"); }
    }
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = label), 1500);
  });
})();
