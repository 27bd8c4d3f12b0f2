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

  // Subscribes to /api/v1/events. One EventSource serves every subscriber of a page and of
  // the same-site frames in it (the /overlays previews): browsers allow only six HTTP/1.1
  // connections per site, and a page of live previews would otherwise take them all.
  // EventSource retries dropped connections by itself, but gives up for good on an HTTP
  // error (a proxy's 502 while the server restarts): then we start over after a pause, so
  // pages and overlays recover alone.
  const subscribers = [];
  let source = null;
  const dispatch = (name, e) => {
    let data;
    try { data = JSON.parse(e.data); } catch (err) { console.error(err); return; }
    for (const handlers of subscribers) {
      if (!handlers[name]) continue;
      try { handlers[name](data); } catch (err) { console.error(err); }
    }
  };
  const open = () => {
    source = new EventSource("/api/v1/events");
    for (const name of ["queue", "stats", "notice"]) source.addEventListener(name, (e) => dispatch(name, e));
    source.onopen = () => document.documentElement.classList.remove("offline");
    source.onerror = () => {
      document.documentElement.classList.add("offline");
      if (source.readyState === EventSource.CLOSED) setTimeout(open, 2000);
    };
  };
  // A page kept in the back/forward cache must not keep its connection: browsers would
  // count it against the six per site, and enough cached pages starve the one on screen.
  window.addEventListener("pagehide", () => {
    if (source) { source.close(); source = null; }
  });
  window.addEventListener("pageshow", (e) => {
    if (e.persisted && subscribers.length && source === null) open();
  });
  MS.connect = function (handlers) {
    try {
      if (window.parent !== window && window.parent.MS && window.parent.MS.connect) {
        return window.parent.MS.connect(handlers);
      }
    } catch {
      // A frame of another site: keep our own connection.
    }
    subscribers.push(handlers);
    if (source === null) open();
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

  // A small two-line chart (kbit/s and fps) of the last minute, one point a second.
  MS.Graph = function (canvas, points = 60) {
    const kbps = [], fps = [];
    const css = getComputedStyle(document.documentElement);
    const draw = () => {
      const ratio = window.devicePixelRatio || 1;
      const w = canvas.clientWidth, h = canvas.clientHeight;
      if (canvas.width !== w * ratio) { canvas.width = w * ratio; canvas.height = h * ratio; }
      const ctx = canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, w, h);
      const line = (values, max, color, fill) => {
        if (values.length < 2) return;
        const x = (i) => w - (values.length - 1 - i) * (w / (points - 1));
        const y = (v) => h - 4 - (Math.min(v, max) / max) * (h - 12);
        ctx.beginPath();
        values.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
        ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.stroke();
        if (fill) {
          ctx.lineTo(x(values.length - 1), h); ctx.lineTo(x(0), h); ctx.closePath();
          ctx.globalAlpha = 0.15; ctx.fillStyle = color; ctx.fill(); ctx.globalAlpha = 1;
        }
      };
      const kMax = Math.max(1000, ...kbps) * 1.15, fMax = Math.max(30, ...fps) * 1.15;
      line(kbps, kMax, css.getPropertyValue("--accent").trim() || "#ff4f7b", true);
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

  // The DJ's dashboard: their status, countdown and upload graph, live.
  // A stream's advice (problem + OBS fix, from the stats event) into a <ul>.
  MS.showAdvice = function (list, advice) {
    list.replaceChildren(...(advice || []).map((a) => {
      const item = document.createElement("li");
      item.dataset.check = a.check;
      const problem = document.createElement("strong");
      problem.textContent = a.problem;
      const fix = document.createElement("span");
      fix.className = "muted small";
      fix.textContent = a.fix;
      item.append(problem, document.createElement("br"), fix);
      return item;
    }));
  };

  MS.dashboard = function (root) {
    const me = root.dataset.dj;
    const status = document.getElementById("live-status");
    const text = document.getElementById("live-status-text");
    const detail = document.getElementById("live-status-detail");
    const timer = document.getElementById("time-left");
    const countdown = MS.Countdown([timer]);
    const graph = MS.Graph(document.getElementById("upload-graph"));
    const kbps = document.getElementById("upload-kbps"), fps = document.getElementById("upload-fps");
    const key = document.getElementById("stream-key"), show = document.getElementById("show-stream-key");
    // A browser notification when the DJ is next and about to go on air (if they allow it),
    // saying what is wrong with their stream, if anything, while there is time to fix it.
    const UP_NEXT_NOTICE_SECS = 300;
    const notify = document.getElementById("notify-up-next");
    const canNotify = "Notification" in window;
    let notifiedBefore = null, advice = [];
    if (canNotify && Notification.permission === "default") {
      notify.hidden = false;
      notify.addEventListener("click", () => Notification.requestPermission().then(() => { notify.hidden = true; }));
    }
    const upNext = (lead, eta) => {
      if (!canNotify || Notification.permission !== "granted" || eta > UP_NEXT_NOTICE_SECS || notifiedBefore === lead) return;
      notifiedBefore = lead;
      const minutes = Math.max(1, Math.round(eta / 60));
      const check = advice.length ? " Check your stream: " + advice.map((a) => a.problem).join("; ") + "." : "";
      new Notification("You're up next", { body: "On air in about " + minutes + " min." + check, tag: "up-next" });
    };
    show.addEventListener("click", () => {
      const hidden = key.type === "password";
      key.type = hidden ? "text" : "password";
      show.textContent = hidden ? "Hide" : "Show";
    });
    MS.connect({
      queue(q) {
        const index = q.stream_queue.indexOf(me);
        let state = "offline";
        // In a back-to-back set, `on_air` names every DJ and `on_air_dj` the one on air.
        const standingBy = q.on_air_dj !== me && (q.on_air_set || []).includes(me);
        if (q.on_air_dj === me) state = "on_air";
        else if (standingBy) state = "standby";
        else if (index >= 0) state = "queued";
        status.dataset.state = state;
        timer.hidden = state === "offline";
        if (state === "on_air") {
          text.textContent = "On air";
          detail.textContent = q.timer_paused ? "Timer paused by the organisers" : "Time left in your set";
          countdown.set(q.remaining_time, q.timer_paused);
        } else if (state === "standby") {
          text.textContent = "Back to back with " + q.on_air_dj;
          detail.textContent = "Time left in your set";
          countdown.set(q.remaining_time, q.timer_paused);
        } else if (state === "queued") {
          const position = q.on_air ? index : index + 1;
          const eta = q.remaining_time + (position - 1) * q.swap_interval;
          text.textContent = position === 1 ? "You're up next" : "Queued at position " + position;
          detail.textContent = position === 1 ? "On air in" : "Estimated wait";
          countdown.set(eta, q.timer_paused);
          if (position === 1) upNext(q.on_air, eta);
        } else {
          text.textContent = "Not streaming";
          detail.textContent = "Start streaming in OBS to join the queue.";
        }
        if (q.now && q.now.dj_name === me && q.now.track) {
          const current = document.getElementById("current-track");
          const strong = document.createElement("strong");
          strong.textContent = q.now.track.artist;
          current.replaceChildren(strong, " – " + q.now.track.title);
        }
      },
      stats(s) {
        const mine = (s.publishers || []).find((p) => p.dj_name === me);
        graph.push(mine ? mine.bitrate_bps : 0, mine ? mine.video_fps : 0);
        kbps.textContent = mine ? Math.round(mine.bitrate_bps / 1000) + " kbit/s" : "not streaming";
        fps.textContent = mine && mine.video_fps ? mine.video_fps.toFixed(1) + " fps" : "— fps";
        advice = mine ? mine.advice : [];
        MS.showAdvice(document.getElementById("stream-advice"), advice);
        document.getElementById("stream-check").hidden = advice.length === 0;
      },
    });
  };

  // The admin console: who is on air, the queue table, graphs for every publisher and
  // destination.
  MS.admin = function (root) {
    const status = document.getElementById("live-status");
    const text = document.getElementById("live-status-text");
    const detail = document.getElementById("live-status-detail");
    const countdown = MS.Countdown([document.getElementById("time-left")]);
    const publisherBox = document.getElementById("publisher-graphs");
    const none = document.getElementById("no-publishers");
    const graphs = new Map();
    for (const canvas of root.querySelectorAll("canvas[data-destination]")) {
      graphs.set("d:" + canvas.dataset.destination, MS.Graph(canvas));
    }
    const publisherGraph = (name) => {
      let graph = graphs.get("p:" + name);
      if (!graph) {
        const box = document.createElement("div");
        box.dataset.publisherBox = name;
        const title = document.createElement("div");
        title.className = "row between";
        title.innerHTML = '<strong></strong><span class="muted small" data-role="numbers"></span>';
        title.querySelector("strong").textContent = name;
        const canvas = document.createElement("canvas");
        canvas.className = "graph";
        canvas.dataset.publisher = name;
        canvas.setAttribute("role", "img");
        canvas.setAttribute("aria-label", "Upload of " + name);
        box.append(title, canvas);
        publisherBox.append(box);
        graph = MS.Graph(canvas);
        graphs.set("p:" + name, graph);
      }
      return graph;
    };
    let shownQueue = Array.from(document.querySelectorAll("#queue-table tr[data-dj]")).map((r) => r.dataset.dj);
    const refreshQueue = async () => {
      const page = await fetch("/admin", { cache: "no-store" }).then((r) => r.text());
      const fresh = new DOMParser().parseFromString(page, "text/html").querySelector("#queue-table tbody");
      if (fresh) document.querySelector("#queue-table tbody").replaceWith(fresh);
    };
    MS.connect({
      queue(q) {
        status.dataset.state = q.on_air ? "on_air" : "offline";
        text.textContent = q.on_air || "Nobody — slate on air";
        detail.textContent = q.on_air ? (q.timer_paused ? "Timer paused" : "Time left") : "Waiting for a DJ";
        countdown.set(q.remaining_time, q.timer_paused || !q.on_air);
        document.getElementById("time-left").hidden = !q.on_air;
        if (q.stream_queue.join("\n") !== shownQueue.join("\n")) {
          shownQueue = q.stream_queue;
          refreshQueue().catch(() => {});
        }
      },
      stats(s) {
        const live = new Set();
        for (const p of s.publishers || []) {
          live.add(p.dj_name);
          publisherGraph(p.dj_name).push(p.bitrate_bps, p.video_fps);
          const numbers = publisherBox.querySelector('[data-publisher-box="' + CSS.escape(p.dj_name) + '"] [data-role="numbers"]');
          if (numbers) numbers.textContent = Math.round(p.bitrate_bps / 1000) + " kbit/s · " + (p.video_fps ? p.video_fps.toFixed(1) : "—") + " fps";
          const row = document.querySelector('#queue-table tr[data-dj="' + CSS.escape(p.dj_name) + '"] ul.advice');
          if (row) MS.showAdvice(row, p.advice);
        }
        for (const box of publisherBox.querySelectorAll("[data-publisher-box]")) {
          if (!live.has(box.dataset.publisherBox)) { box.remove(); graphs.delete("p:" + box.dataset.publisherBox); }
        }
        none.hidden = live.size > 0;
        for (const d of s.destinations || []) {
          const graph = graphs.get("d:" + d.name);
          if (graph) graph.push(d.bitrate_bps, 0);
          const badge = root.querySelector('.destination[data-name="' + CSS.escape(d.name) + '"] [data-role="state"]');
          if (badge) { badge.textContent = d.state; badge.className = "badge " + d.state; }
        }
      },
    });
  };

  // Times rendered in UTC by the server, shown in the DJ's own time zone (settings).
  const localTimes = () => {
    const zone = document.body.dataset.tz;
    // dateStyle/timeStyle cannot be combined with timeZoneName: name the fields instead.
    const fields = { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short" };
    let format;
    try {
      format = new Intl.DateTimeFormat(undefined, { ...fields, timeZone: zone || undefined });
    } catch {
      format = new Intl.DateTimeFormat(undefined, fields); // an unknown zone: the browser's own
    }
    for (const el of document.querySelectorAll("time[data-unix]")) {
      const date = new Date(Number(el.dataset.unix) * 1000);
      el.dateTime = date.toISOString();
      el.textContent = format.format(date);
    }
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", localTimes);
  else localTimes();

  // Booking forms: the server reads a start without a zone as UTC; with this script the
  // start is entered in the browser's own time and sent converted to UTC.
  const localStarts = () => {
    for (const form of document.querySelectorAll("form[data-local-start]")) {
      for (const label of form.querySelectorAll("[data-zone]")) label.textContent = "(your time)";
      form.addEventListener("submit", () => {
        for (const input of form.querySelectorAll('input[type="datetime-local"]')) {
          const date = new Date(input.value); // a value without a zone is local time
          if (!input.value || Number.isNaN(date.getTime())) continue;
          input.type = "text"; // the UTC value must not be re-read as local
          input.value = date.toISOString().slice(0, 16);
        }
      });
    }
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", localStarts);
  else localStarts();

  // Each page's code starts here, not in an inline <script>: the Content-Security-Policy
  // runs scripts from this site's files only.
  const start = () => {
    const dashboard = document.getElementById("dashboard");
    if (dashboard) MS.dashboard(dashboard);
    const admin = document.getElementById("admin");
    if (admin) MS.admin(admin);
    // Overlay addresses: OBS needs the full one, and the server may be reached under several names.
    for (const el of document.querySelectorAll("[data-path]")) el.textContent = location.origin + el.dataset.path;
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();

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
