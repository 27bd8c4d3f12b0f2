// Overlays: the page arrives rendered with the state of the moment; this keeps it current
// over /api/v1/events (MS.connect reconnects by itself when the server restarts).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  // ?scale= arrives as an attribute: the Content-Security-Policy refuses inline styles, not
  // styles set from a script.
  document.body.style.setProperty("--scale", document.body.dataset.scale || "1");

  const timers = [$("on-air-time"), $("timer")].filter(Boolean);
  const countdown = timers.length ? MS.Countdown(timers) : null;
  if (countdown) countdown.set(Number(timers[0].dataset.seconds), "paused" in timers[0].dataset);

  const clock = $("clock");
  if (clock) {
    const hhmm = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    let format;
    try {
      format = new Intl.DateTimeFormat("en-GB", { ...hhmm, timeZone: clock.dataset.tz });
    } catch {
      format = new Intl.DateTimeFormat("en-GB", hhmm); // an unknown zone: the viewer's own time
    }
    const paint = () => (clock.textContent = format.format(new Date()));
    paint();
    setInterval(paint, 1000);
  }

  // Booked slots ("Booked: Alice 22:00"): Unix seconds from the server, shown as the
  // overlay's ?tz= time (else the viewer's own).
  const booked = document.querySelectorAll("#booked time[data-unix]");
  if (booked.length) {
    const hhmm = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    const zone = $("booked").dataset.tz;
    let format;
    try {
      format = new Intl.DateTimeFormat("en-GB", { ...hhmm, timeZone: zone || undefined });
    } catch {
      format = new Intl.DateTimeFormat("en-GB", hhmm);
    }
    for (const el of booked) el.textContent = format.format(new Date(Number(el.dataset.unix) * 1000));
  }

  const text = (id, value) => { const el = $(id); if (el) el.textContent = value; };
  const show = (q) => {
    document.body.classList.toggle("nobody", !q.on_air);
    text("on-air-name", q.on_air || "—");
    text("up-next-name", q.up_next || "—");
    const now = q.now || {};
    const picture = $("on-air-picture");
    if (picture) {
      picture.hidden = !now.picture_url;
      if (now.picture_url && picture.getAttribute("src") !== now.picture_url) picture.src = now.picture_url;
    }
    const track = $("on-air-track");
    if (track) {
      track.hidden = !now.track;
      track.textContent = now.track ? now.track.artist + " – " + now.track.title : "";
      // Lets a scene's CSS mark tracks that were recognised rather than entered by the DJ.
      if (now.track) track.dataset.source = now.track.source;
      else delete track.dataset.source;
    }
    const list = $("queue-list");
    if (list) {
      list.replaceChildren(...q.stream_queue.map((name) => {
        const li = document.createElement("li");
        li.textContent = name;
        return li;
      }));
      const empty = $("queue-empty");
      if (empty) empty.hidden = q.stream_queue.length > 0;
    }
    if (countdown) countdown.set(q.remaining_time, q.timer_paused);
  };

  if (document.querySelector("#on-air-name, #up-next-name, #queue-list, #timer")) MS.connect({ queue: show });
})();
