// Bosun dashboard: live updates. The server streams fleet events
// (server-sent events, GET /events); each becomes a DOM event on <body>
// that htmx elements listen for with hx-trigger="bosun:device from:body":
//
//   bosun:device, bosun:device:<id>   a device connected, was accepted, ...
//   bosun:call,   bosun:call:<device> a call finished
//   bosun:pending                     like bosun:device, but held back while
//                                     a checkbox of a [data-hold] form is ticked
(function () {
  "use strict";
  if (window.htmx) {
    // Swap error answers too: they carry a message for the user.
    htmx.config.responseHandling = [
      { code: "204", swap: false },
      { code: "[23]..", swap: true },
      { code: "[45]..", swap: true, error: true },
    ];
  }
  var held = false;
  function fire(name, detail) {
    document.body.dispatchEvent(new CustomEvent(name, { detail: detail }));
  }
  function holding() {
    return document.querySelector("form[data-hold] input[type=checkbox]:checked") !== null;
  }
  function firePending(detail) {
    if (holding()) { held = true; return; }
    held = false;
    fire("bosun:pending", detail);
  }
  document.addEventListener("change", function () {
    if (held && !holding()) firePending({});
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
    if (kind === "device") firePending(e);
  };
  // The session ended (logout elsewhere, role or password changed).
  es.addEventListener("ended", function () { es.close(); window.location.href = "/login"; });
  window.addEventListener("pagehide", function () { es.close(); });
})();
