// The watch and embed pages: plays the program's HLS playlist and keeps who is on air, the
// track and the queue current over the shared event stream (live.js). A DJ's preview (the
// dashboard, /preview/{id}) uses the same player on their own stream.
// hls.js (vendor/, loaded before this file) wherever it runs (Media Source: every desktop
// browser, iPadOS, iOS 17.1+); the browser's own HLS only where it cannot (older iPhones).
// Chromium has begun to answer `canPlayType` for HLS itself, and its own player then hung
// at "loading" in the browser tests, so that answer is not what decides.
// `?player=native` or `?player=hlsjs` forces one, to compare or debug them.
"use strict";
(function () {
  const box = document.getElementById("player");
  if (!box) return;
  const video = document.getElementById("watch-video");
  const message = document.getElementById("player-message");
  const playButton = document.getElementById("player-play");
  const unmuteButton = document.getElementById("player-unmute");
  const src = box.dataset.src;
  const autoplay = box.dataset.autoplay === "1";
  const forced = new URLSearchParams(location.search).get("player");
  const preview = box.dataset.preview === "1";
  // The dashboard folds its preview away until the DJ opens it.
  const fold = box.closest("details");

  let hls = null, retry = null;
  const say = (state, text) => {
    box.dataset.state = state;
    message.textContent = text;
    buttons();
  };
  const buttons = () => {
    const off = box.dataset.state === "off";
    playButton.hidden = off || !video.paused;
    unmuteButton.hidden = off || video.paused || !video.muted;
  };
  const again = (ms) => {
    clearTimeout(retry);
    retry = setTimeout(start, ms);
  };
  // Browsers refuse to start a video with sound before the visitor clicked: then it starts
  // muted, and the unmute button shows.
  const play = () =>
    video.play().catch((e) => {
      if (e && e.name === "NotAllowedError" && !video.muted) {
        video.muted = true;
        return play();
      }
      buttons();
    });

  const useHlsJs = () => {
    box.dataset.player = "hls.js";
    // No worker: the policy allows scripts from this site only (hls.js would start one
    // from a blob: address), and fMP4 needs no transmuxing for a worker to take over.
    hls = new window.Hls({ enableWorker: false, lowLatencyMode: true, backBufferLength: 30 });
    hls.on(window.Hls.Events.ERROR, (_, data) => {
      if (!data.fatal) return;
      if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
        return;
      }
      hls.destroy();
      hls = null;
      say("loading", "Lost the stream; reconnecting…");
      again(2000);
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  };

  // Asks for the playlist first: a 404 means this server has HLS turned off, which no
  // amount of retrying changes.
  async function start() {
    let response;
    try {
      response = await fetch(src, { cache: "no-store" });
    } catch {
      say("loading", "Cannot reach the server; trying again…");
      again(3000);
      return;
    }
    // A preview's 404: the DJ is not streaming (yet).
    if (response.status === 404 && preview) {
      say("loading", "Start streaming in OBS to see your preview here.");
      again(5000);
      return;
    }
    if (response.status === 404) {
      say("off", "Watching on this site is turned off: the server's HLS output is disabled in its configuration.");
      return;
    }
    if (!response.ok) {
      say("loading", "The stream is starting…");
      again(2000);
      return;
    }
    // The preview was closed while its playlist was being asked for.
    if (fold && !fold.open) return;
    const hlsJs = window.Hls && window.Hls.isSupported();
    const canNative = video.canPlayType("application/vnd.apple.mpegurl") !== "";
    const native = forced ? forced === "native" : !hlsJs && canNative;
    if (native) {
      box.dataset.player = "native";
      video.src = src;
    } else if (hlsJs) {
      useHlsJs();
    } else {
      say("off", "This browser cannot play the stream.");
      return;
    }
    say("loading", "Loading the stream…");
    if (autoplay) play();
  }

  video.addEventListener("playing", () => say("playing", ""));
  video.addEventListener("waiting", () => say("loading", "Buffering…"));
  video.addEventListener("pause", buttons);
  video.addEventListener("volumechange", buttons);
  video.addEventListener("error", () => {
    // hls.js reports and recovers its own errors; this is the native player's.
    if (hls) return;
    video.removeAttribute("src");
    video.load();
    say("loading", "Lost the stream; reconnecting…");
    again(2000);
  });
  playButton.addEventListener("click", play);
  unmuteButton.addEventListener("click", () => {
    video.muted = false;
    if (video.paused) play();
    buttons();
  });
  // The dashboard's preview runs only while opened: the server stops a preview nobody
  // fetches, so a closed one soon costs it nothing.
  if (fold) {
    fold.addEventListener("toggle", () => {
      if (fold.open) {
        start();
        return;
      }
      clearTimeout(retry);
      if (hls) hls.destroy();
      hls = null;
      video.removeAttribute("src");
      video.load();
    });
  } else {
    start();
  }

  // What is on air, live.
  const root = document.getElementById("watch");
  if (!root) return;
  const status = document.getElementById("watch-status");
  const label = document.getElementById("watch-status-label");
  const name = document.getElementById("watch-on-air");
  const track = document.getElementById("watch-track");
  const queue = document.getElementById("watch-queue");
  const empty = document.getElementById("watch-queue-empty");
  window.MS.connect({
    queue(q) {
      status.dataset.state = q.on_air ? "on_air" : "slate";
      label.textContent = q.on_air ? "On air" : "Between sets";
      name.textContent = q.on_air || "Nobody — the slate is showing";
      const t = q.now && q.now.dj_name === q.on_air ? q.now.track : null;
      track.hidden = !t;
      track.textContent = t ? t.artist + " – " + t.title : "";
      if (queue) {
        const waiting = q.stream_queue.slice(q.on_air ? 1 : 0);
        queue.replaceChildren(...waiting.map((dj) => Object.assign(document.createElement("li"), { textContent: dj })));
        if (empty) empty.hidden = waiting.length > 0;
      }
    },
  });
})();
