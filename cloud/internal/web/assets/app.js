// Bosun dashboard: live updates and a few conveniences. Every page works
// without this file; it only makes pages live and quicker to use.
//
// The server streams fleet events (server-sent events, GET /events); each
// becomes a DOM event on <body> that htmx elements listen for with
// hx-trigger="bosun:device from:body":
//
//   bosun:device, bosun:device:<id>   a device connected, was accepted, ...
//   bosun:call,   bosun:call:<device> a call finished
//   bosun:deployment, bosun:deployment:<id>  a deployment or one of its
//                                     devices changed
//   bosun:ota,    bosun:ota:<device>  a device reported an update's status
//   bosun:pending, bosun:devices      like bosun:device, but held back while
//                                     a checkbox of a [data-hold] form is ticked
//
// Each name fires at most once per PACE ms, and the last event of a burst
// always fires at the end of it (htmx's own throttle would drop it, leaving
// a stale part), so elements need no throttle of their own.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  if (window.htmx) {
    // Swap error answers too: they carry a message for the user.
    htmx.config.responseHandling = [
      { code: "204", swap: false },
      { code: "[23]..", swap: true },
      { code: "[45]..", swap: true, error: true },
    ];
  }
  var held = false, PACE = 500, timers = {}, waiting = {};
  function dispatch(name, detail) {
    document.body.dispatchEvent(new CustomEvent(name, { detail: detail }));
  }
  function fire(name, detail) {
    if (timers[name]) { waiting[name] = detail; return; }
    dispatch(name, detail);
    timers[name] = setTimeout(function tick() {
      if (name in waiting) {
        var d = waiting[name];
        delete waiting[name];
        dispatch(name, d);
        timers[name] = setTimeout(tick, PACE);
      } else {
        delete timers[name];
      }
    }, PACE);
  }
  function holding() {
    return document.querySelector("form[data-hold] input[type=checkbox]:checked") !== null;
  }
  function fireHeld(detail) {
    if (holding()) { held = true; return; }
    held = false;
    fire("bosun:pending", detail);
    fire("bosun:devices", detail);
  }
  document.addEventListener("change", function () {
    if (held && !holding()) fireHeld({});
  });
  // "Select all" boxes tick every box of their form.
  document.addEventListener("click", function (ev) {
    var all = ev.target.closest && ev.target.closest("input[data-select-all]");
    if (!all) return;
    var boxes = all.form.querySelectorAll("input[type=checkbox][name=id]");
    for (var i = 0; i < boxes.length; i++) boxes[i].checked = all.checked;
  });
  // Pretty-print the JSON of the console's params box on demand.
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest && ev.target.closest("[data-format-json]");
    if (!b) return;
    var ta = document.getElementById(b.getAttribute("data-format-json"));
    try { ta.value = JSON.stringify(JSON.parse(ta.value || "{}"), null, 2); ta.setCustomValidity(""); }
    catch (e) { ta.setCustomValidity("not valid JSON: " + e.message); ta.reportValidity(); }
  });
  // The header's menu button opens and closes the navigation on narrow
  // screens (the stylesheet shows the button only there).
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest && ev.target.closest("#menu");
    if (!b) return;
    var open = b.getAttribute("aria-expanded") !== "true";
    b.setAttribute("aria-expanded", String(open));
    document.querySelector("header.top").classList.toggle("open", open);
  });

  // A method typed in "Or another" replaces the picker's (the server's
  // rule too): the picker is disabled, so it is not sent either.
  document.addEventListener("input", function (ev) {
    if (ev.target.id !== "method-other") return;
    var sel = document.querySelector("select#method");
    if (sel) sel.disabled = ev.target.value.trim() !== "";
  });

  // The RPC console (form[data-console]): while a call runs the Call
  // button is disabled (hx-disabled-elt), the previous result or error is
  // cleared, the time runs, and Abandon stops waiting for the answer (the
  // call itself goes on; its outcome lands in the call history).
  var timer = null, started = 0;
  function elapsedText(ms) {
    var s = Math.floor(ms / 1000);
    return s < 60 ? s + " s" : Math.floor(s / 60) + " min " + (s % 60) + " s";
  }
  function consoleOf(ev) {
    var f = ev.detail && ev.detail.elt;
    return f && f.matches && f.matches("form[data-console]") ? f : null;
  }
  function say(cls, text) {
    var r = document.getElementById("result"), p = document.createElement("div");
    p.className = cls; p.id = "call-abandoned"; p.setAttribute("role", "status"); p.textContent = text;
    r.replaceChildren(p);
  }
  document.addEventListener("htmx:beforeRequest", function (ev) {
    if (!consoleOf(ev)) return;
    document.getElementById("result").replaceChildren();
    var run = document.getElementById("running"), el = document.getElementById("elapsed");
    started = Date.now();
    el.textContent = "0 s";
    run.hidden = false;
    clearInterval(timer);
    timer = setInterval(function () { el.textContent = elapsedText(Date.now() - started); }, 250);
  });
  document.addEventListener("htmx:afterRequest", function (ev) {
    if (!consoleOf(ev)) return;
    clearInterval(timer);
    document.getElementById("running").hidden = true;
  });
  document.addEventListener("htmx:sendAbort", function (ev) {
    if (!consoleOf(ev)) return;
    say("flash", "Abandoned after " + elapsedText(Date.now() - started) +
      ". The call goes on; its outcome will appear in the call history.");
  });
  document.addEventListener("click", function (ev) {
    if (!(ev.target.closest && ev.target.closest("#abandon"))) return;
    var f = document.querySelector("form[data-console]");
    if (f) htmx.trigger(f, "htmx:abort");
  });

  // Lists of calls refreshed live keep the calls that were open open.
  var open = [];
  document.addEventListener("htmx:beforeSwap", function (ev) {
    open = [];
    var ds = ev.detail.target.querySelectorAll("details[data-call][open]");
    for (var i = 0; i < ds.length; i++) open.push(ds[i].getAttribute("data-call"));
  });
  document.addEventListener("htmx:afterSwap", function (ev) {
    for (var i = 0; i < open.length; i++) {
      var d = ev.detail.target.querySelector('details[data-call="' + CSS.escape(open[i]) + '"]');
      if (d) d.open = true;
    }
    open = [];
  });

  if (!document.body || !document.body.hasAttribute("data-live") || !window.EventSource) return;
  var status = document.getElementById("live");
  var es = new EventSource("/events");
  es.onopen = function () { if (status) { status.className = "live on"; status.title = "live"; } };
  es.onerror = function () { if (status) { status.className = "live off"; status.title = "reconnecting"; } };
  es.onmessage = function (m) {
    var e;
    try { e = JSON.parse(m.data); } catch (x) { return; }
    var kind = String(e.type || "").split(".")[0];
    fire("bosun:" + kind, e);
    if (e.device_id) fire("bosun:" + kind + ":" + e.device_id, e);
    if (e.deployment) fire("bosun:" + kind + ":" + e.deployment, e);
    if (kind === "device") fireHeld(e);
  };
  // The session ended (logout elsewhere, role or password changed).
  es.addEventListener("ended", function () { es.close(); window.location.href = "/login"; });
  window.addEventListener("pagehide", function () { es.close(); });
})();
