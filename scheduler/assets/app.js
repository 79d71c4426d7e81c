// Kairos web UI: progressive enhancement only. Every page reads without this file;
// with it: the theme toggle, the time zone switch, live output, the editor's
// schedule preview and "select all" in the jobs list.
(function () {
  "use strict";
  var root = document.documentElement;
  var store = {
    get: function (k) { try { return localStorage.getItem(k); } catch (e) { return null; } },
    set: function (k, v) { try { localStorage.setItem(k, v); } catch (e) { /* private mode */ } }
  };

  // Theme: the system's unless chosen; the choice is kept in this browser.
  function applyTheme(t) { if (t === "light" || t === "dark") root.setAttribute("data-theme", t); else root.removeAttribute("data-theme"); }
  applyTheme(store.get("kairos-theme"));

  // Times: rendered in UTC by the server; shown in UTC, the browser's zone or the job's.
  function zoneOf(mode) {
    if (mode === "local") return Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (mode === "job") { var j = document.querySelector("[data-job-zone]"); return j ? j.getAttribute("data-job-zone") : "UTC"; }
    return "UTC";
  }
  function renderTimes() {
    var mode = store.get("kairos-zone") || "utc";
    var zone = zoneOf(mode);
    var fmt;
    try {
      fmt = new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short" });
    } catch (e) { return; }
    document.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d)) return;
      var parts = {}; fmt.formatToParts(d).forEach(function (p) { parts[p.type] = p.value; });
      t.textContent = parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute + ":" + parts.second + " " + (zone === "UTC" ? "UTC" : parts.timeZoneName + " (" + zone + ")");
      t.title = d.toISOString();
    });
    var sel = document.getElementById("zone"); if (sel) sel.value = mode;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var theme = document.getElementById("theme");
    if (theme) {
      theme.hidden = false;
      theme.addEventListener("click", function () {
        var dark = root.getAttribute("data-theme") === "dark" ||
          (!root.getAttribute("data-theme") && window.matchMedia("(prefers-color-scheme: dark)").matches);
        var next = dark ? "light" : "dark"; store.set("kairos-theme", next); applyTheme(next);
      });
    }
    var zone = document.getElementById("zone");
    if (zone) {
      zone.hidden = false;
      if (!document.querySelector("[data-job-zone]")) { var o = zone.querySelector("option[value=job]"); if (o) o.remove(); }
      zone.addEventListener("change", function () { store.set("kairos-zone", zone.value); renderTimes(); });
    }
    renderTimes();

    // "Select all" in the jobs list.
    var all = document.getElementById("select-all");
    if (all) all.addEventListener("change", function () {
      document.querySelectorAll("input[name=job][type=checkbox]").forEach(function (c) { c.checked = all.checked; });
    });

    // Live output: server-sent events, the same stream as TailOutput.
    var live = document.getElementById("live-output");
    if (live && window.EventSource) {
      var follow = document.getElementById("live-follow");
      var state = document.getElementById("live-state");
      var paused = false, buffered = "";
      if (follow) { follow.hidden = false; follow.addEventListener("click", function () {
        paused = !paused; follow.textContent = paused ? "Follow" : "Pause";
        if (!paused && buffered) { live.textContent += buffered; buffered = ""; live.scrollTop = live.scrollHeight; }
      }); }
      var src = new EventSource(live.getAttribute("data-src"));
      live.textContent = "";
      src.addEventListener("output", function (ev) {
        var text = JSON.parse(ev.data);
        if (paused) { buffered += text; return; }
        live.textContent += text; live.scrollTop = live.scrollHeight;
      });
      src.addEventListener("end", function () { src.close(); if (state) state.textContent = "finished — reload for the stored record"; });
      src.onerror = function () { if (state) state.textContent = "reconnecting…"; };
      // Each (re)connection starts with the output's recent tail, then follows it.
      src.onopen = function () { live.textContent = ""; buffered = ""; if (state) state.textContent = "live"; };
    }

    // Editor: the next instants of the schedule being typed.
    var doc = document.getElementById("document");
    var preview = document.getElementById("preview");
    if (doc && preview) {
      var timer = null;
      var refresh = function () {
        var body = new URLSearchParams();
        body.set("document", doc.value);
        var fmt = document.getElementById("format"); if (fmt) body.set("format", fmt.value);
        fetch(preview.getAttribute("data-src"), { method: "POST", body: body, credentials: "same-origin" })
          .then(function (r) { return r.text(); })
          .then(function (html) { preview.innerHTML = html; renderTimes(); })
          .catch(function () { /* keep the last preview */ });
      };
      doc.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 400); });
    }
  });
})();
