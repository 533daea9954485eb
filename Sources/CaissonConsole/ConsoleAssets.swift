/// The console's style sheet and script, compiled into the binary: nothing is fetched from
/// anywhere else (no CDN, no web font), and the page works offline on the device's own network.
enum ConsoleAssets {
    static let css: [UInt8] = Array(cssText.utf8)
    static let js: [UInt8] = Array(jsText.utf8)

    static let cssText = #"""
*,*::before,*::after{box-sizing:border-box}
html{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;font-size:17px;line-height:1.45;color:#1b1b1b;background:#f3f4f6}
body{margin:0;overflow-wrap:anywhere}
.skip{position:absolute;left:-999px;top:0;background:#fff;padding:.5rem}
.skip:focus{left:.5rem;z-index:2}
header.top{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:.5rem;background:#12355b;color:#fff;padding:.6rem 1rem}
.brand{font-weight:700;font-size:1.15rem;letter-spacing:.02em}
nav{display:flex;flex-wrap:wrap;gap:1rem;align-items:center}
nav a,nav button.link{color:#fff;font-size:1rem}
main{max-width:60rem;margin:0 auto;padding:1rem}
h1{font-size:1.6rem;margin:.4rem 0 1rem}
h2{font-size:1.2rem;margin:0 0 .6rem}
.card{background:#fff;border:1px solid #c9ced6;border-radius:8px;padding:1rem;margin:0 0 1rem}
.narrow{max-width:24rem}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:0}
.facts dt{font-weight:600}
.facts dd{margin:0}
ul.services,ul.packages,ul.history,ul.checks,ul.issues{list-style:none;padding:0;margin:0}
li.service{border-top:1px solid #e3e6ea;padding:.7rem 0;display:grid;gap:.2rem}
li.service:first-child{border-top:0}
.service .name,.packages .name{font-weight:700;font-size:1.05rem}
.packages li,.history li{border-top:1px solid #e3e6ea;padding:.6rem 0}
.packages li:first-child,.history li:first-child{border-top:0}
.packages form{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}
.good{color:#0b6b2f}
.bad{color:#a3120f}
.warn{color:#7a4a00}
.muted{color:#4b5563}
.checks li::before{content:"\2713\00a0";font-weight:700}
.checks li.bad::before{content:"\2717\00a0"}
.checks li.muted::before{content:"\2013\00a0"}
.issues li{margin:.5rem 0}
.alert{border-radius:8px;padding:.7rem 1rem;border:2px solid currentColor;background:#fff}
.result.good{border-left:8px solid #0b6b2f}
.result.bad{border-left:8px solid #a3120f}
.result.muted{border-left:8px solid #4b5563}
.result h2{font-size:1.35rem}
button,.button{display:inline-block;font:inherit;font-size:1rem;padding:.55rem 1rem;border-radius:6px;border:2px solid #12355b;background:#fff;color:#12355b;text-decoration:none;cursor:pointer;min-height:44px}
button.primary,.button.primary{background:#12355b;color:#fff}
button.big{font-size:1.15rem;padding:.8rem 1.4rem}
button.link{border:0;background:none;padding:0;min-height:0;text-decoration:underline;cursor:pointer}
a{color:#0b4f9c}
:focus-visible{outline:3px solid #f5a300;outline-offset:2px}
form.inline{display:inline}
.actions{display:flex;flex-wrap:wrap;gap:.8rem;align-items:center;margin:1rem 0}
.upload{display:grid;gap:.4rem;margin-top:1rem;border-top:1px solid #e3e6ea;padding-top:1rem}
.upload label{font-weight:600}
input[type=file],input[type=password]{font:inherit;max-width:100%}
input[type=password]{display:block;width:100%;padding:.5rem;border:2px solid #6b7280;border-radius:6px;margin:.3rem 0 .8rem}
progress{width:100%;height:1.3rem}
ol.stages{list-style:none;display:flex;flex-wrap:wrap;gap:.4rem;padding:0;margin:0 0 .8rem}
ol.stages li{padding:.3rem .7rem;border-radius:999px;border:1px solid #9ca3af;color:#374151;background:#fff}
ol.stages li.now{background:#12355b;color:#fff;border-color:#12355b}
ol.stages li.done{background:#e7f4ec;color:#0b6b2f;border-color:#0b6b2f}
ol.events{padding-left:1.2rem}
details summary{cursor:pointer;color:#374151}
code{font-size:.9em;background:#eef0f3;padding:0 .2rem;border-radius:3px}
pre.log-tail{white-space:pre-wrap;overflow-wrap:anywhere;max-height:24rem;overflow-y:auto;background:#eef0f3;padding:.5rem;border-radius:4px;font-size:.85rem}
.evidence-item{border-top:1px solid #e3e6ea;padding:.5rem 0}
.evidence-item:first-of-type{border-top:0}
@media (max-width:30rem){html{font-size:16px}main{padding:.6rem}.facts{grid-template-columns:1fr}.facts dd{margin-bottom:.4rem}}
"""#

    static let jsText = #"""
"use strict";
(function () {
  var body = document.body;
  var csrf = body.getAttribute("data-csrf") || "";
  var stageLabels = {"Copying": "Copying", "Validating": "Checking", "Loading image": "Installing"};

  // Upload a package: streamed by the browser, with a progress bar.
  var form = document.getElementById("upload");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var input = document.getElementById("upload-file");
      var status = document.getElementById("upload-status");
      var bar = document.getElementById("upload-progress");
      if (!input.files || !input.files.length) { status.textContent = "Choose a package file first."; return; }
      var file = input.files[0];
      var xhr = new XMLHttpRequest();
      xhr.open("POST", "/upload");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("X-Filename", encodeURIComponent(file.name));
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      bar.hidden = false; bar.value = 0;
      status.textContent = "Uploading " + file.name + "…";
      xhr.upload.onprogress = function (e) { if (e.lengthComputable) { bar.value = Math.floor(e.loaded * 100 / e.total); } };
      xhr.onload = function () {
        var answer = {};
        try { answer = JSON.parse(xhr.responseText); } catch (e) {}
        if (xhr.status === 201) { status.textContent = "Uploaded. Reloading the list…"; location.reload(); }
        else { status.textContent = "The upload was refused: " + (answer.message || xhr.status); bar.hidden = true; }
      };
      xhr.onerror = function () { status.textContent = "The upload was cut off. Nothing was kept; try again."; bar.hidden = true; };
      xhr.send(file);
    });
  }

  // Live progress: state and audit events over Server-Sent Events.
  if (body.getAttribute("data-live") !== "1" || !window.EventSource) { return; }
  var phase = body.getAttribute("data-phase");
  var version = body.getAttribute("data-version");
  var opId = body.getAttribute("data-op");
  var list = document.getElementById("events");
  var source = new EventSource("/events?after=" + encodeURIComponent(body.getAttribute("data-after") || "0"));
  var reloading = false;
  function reload() { if (!reloading) { reloading = true; source.close(); location.reload(); } }
  source.addEventListener("audit", function (ev) {
    var e = JSON.parse(ev.data);
    if (!list) { return; }
    var li = document.createElement("li");
    li.textContent = e.at.replace("T", " ").replace("Z", " UTC") + " · " + e.text + (e.kind === "console_action" ? ": " + e.message : "");
    list.appendChild(li);
  });
  source.addEventListener("state", function (ev) {
    var s = JSON.parse(ev.data);
    var op = s.op;
    // The console restarted on another Caisson (a self-update): show its page.
    if (version && s.version && s.version !== version) { reload(); return; }
    // The device page: follows another Caisson program when one starts working.
    if (phase === "idle") { if (s.other) { reload(); } return; }
    if (phase === "none" || phase === "external") {
      if (op && op.phase !== "finished") { reload(); return; }
      // Another Caisson process: follow it while it works, reload when it starts or is over.
      if (phase === "none" && s.other) { reload(); return; }
      if (phase === "external" && !s.other) { reload(); return; }
      if (s.other) {
        var o = s.other;
        if (o.attempts.length && !document.getElementById("other-step")) { reload(); return; }
        var ow = document.getElementById("other-words");
        if (ow) { ow.textContent = o.words; }
        var os = document.getElementById("other-step");
        if (os && o.attempts.length) {
          var a = o.attempts[0];
          var left = null;
          for (var k = 0; k < s.in_flight.length; k++) {
            if (s.in_flight[k].update_id === a.update_id) { left = s.in_flight[k].health_remaining_secs; }
          }
          os.textContent = a.service + ": " + a.words + (left != null ? " (up to " + left + " s left)" : "");
        }
        var oss = document.getElementById("other-step-since");
        if (oss && o.attempts.length && o.attempts[0].step_at) { oss.textContent = o.attempts[0].step_at.replace("T", " ").replace("Z", " UTC"); }
      }
      var js = document.getElementById("journal-step");
      if (js && s.in_flight.length) { js.textContent = s.in_flight[0].step_detail || s.in_flight[0].status; }
      return;
    }
    if (!op || op.id !== opId || op.phase !== phase) { reload(); return; }
    var bar = document.getElementById("bar");
    if (bar && op.bytes_total > 0) { bar.value = Math.floor(op.bytes_done * 100 / op.bytes_total); bar.textContent = bar.value + "%"; }
    var label = document.getElementById("bar-label");
    if (label && op.byte_label) { label.textContent = (stageLabels[op.byte_label] || op.byte_label) + " " + (bar ? bar.value : 0) + "%"; }
    var step = document.getElementById("step");
    if (step && op.steps.length) { step.textContent = op.steps[op.steps.length - 1]; }
    var stick = document.getElementById("stick");
    if (stick && op.medium_removable) { stick.hidden = false; }
    var stages = document.querySelectorAll("#stages li");
    var current = op.byte_label;
    var flight = s.in_flight.length ? s.in_flight[0] : null;
    if (flight) { current = flight.status === "health_checking" ? "health" : "swap"; }
    var seen = false;
    for (var i = stages.length - 1; i >= 0; i--) {
      var li = stages[i];
      var name = li.getAttribute("data-stage");
      li.className = name === current ? "now" : (seen ? "done" : "");
      if (name === current) { seen = true; }
    }
    var cd = document.getElementById("countdown");
    if (cd) { cd.textContent = flight && flight.health_remaining_secs != null ? "(up to " + flight.health_remaining_secs + " s)" : ""; }
  });
})();
"""#
}
