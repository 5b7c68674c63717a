// Splitbrain report: canvas timeline (zoom, pan, hover) and counterexample drawing.
// Reads the JSON in #report-data (see html.rs for the packing). No network access.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("report-data").textContent);
  var PALETTE = ["#1f77b4", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#2ca02c"];
  var OUT_COLOR = ["#2ca02c", "#d62728", "#ff7f0e"];
  var OUT_NAME = ["ok", "fail", "info"];

  function dec(b64, T) {
    var s = atob(b64), u = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
    return new T(u.buffer);
  }
  var n = D.n;
  var start = dec(D.start, Float64Array), end = dec(D.end, Float64Array);
  var lane = dec(D.lane, Uint32Array), pid = dec(D.pid, Uint32Array), fidx = dec(D.f, Uint16Array), outc = dec(D.outcome, Uint8Array);
  var T = Math.max(D.end_time, 1);
  var nl = D.lanes.length;
  var effEnd = new Float64Array(n);
  for (var i = 0; i < n; i++) effEnd[i] = end[i] < 0 ? T : Math.max(end[i], start[i]);

  // Ops of each lane in start order, with the running maximum of their ends so that a binary
  // search finds the first op that can reach into the view.
  var laneOps = [], laneMax = [];
  (function () {
    var counts = new Uint32Array(nl), k;
    for (k = 0; k < n; k++) counts[lane[k]]++;
    for (k = 0; k < nl; k++) laneOps.push(new Int32Array(counts[k]));
    var fill = new Uint32Array(nl);
    for (k = 0; k < n; k++) laneOps[lane[k]][fill[lane[k]]++] = k;
    for (k = 0; k < nl; k++) {
      var ops = laneOps[k];
      var arr = Array.prototype.slice.call(ops).sort(function (a, b) { return start[a] - start[b] || a - b; });
      ops.set(arr);
      var mx = new Float64Array(ops.length), m = -Infinity;
      for (var j = 0; j < ops.length; j++) { m = Math.max(m, effEnd[ops[j]]); mx[j] = m; }
      laneMax.push(mx);
    }
  })();
  function firstReaching(l, t) {
    var mx = laneMax[l], lo = 0, hi = mx.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (mx[mid] < t) lo = mid + 1; else hi = mid; }
    return lo;
  }

  // Ops of the counterexample, by history index, outlined in the timeline.
  var cxIdx = {};
  var byIndex = null;
  function opByIndex(ix) {
    if (!byIndex) { byIndex = {}; for (var k = 0; k < n; k++) byIndex[D.index[k]] = k; }
    return byIndex[ix];
  }
  if (D.cx && D.cx.window) D.cx.window.forEach(function (o) { if (o.index != null) cxIdx[o.index] = true; });

  var canvas = document.getElementById("timeline");
  var tip = document.getElementById("tooltip");
  var info = document.getElementById("view-info");
  var ctx = canvas.getContext("2d");
  var GUTTER = 46, TOP = 20, AXIS = 22;
  var laneH = Math.max(1, Math.min(16, Math.floor(600 / Math.max(nl, 1))));
  var view = { t0: 0, t1: T };
  var W = 800, H = 100, dpr = window.devicePixelRatio || 1;

  function resize() {
    W = Math.max(300, canvas.parentNode.clientWidth || 900);
    H = TOP + Math.max(nl, 1) * laneH + AXIS;
    canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
    canvas.style.height = H + "px";
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  }
  function xOf(t) { return GUTTER + (t - view.t0) / (view.t1 - view.t0) * (W - GUTTER - 8); }
  function tOf(x) { return view.t0 + (x - GUTTER) / (W - GUTTER - 8) * (view.t1 - view.t0); }
  function fmtS(ns) { return (ns / 1e9).toFixed(ns < 1e10 ? 3 : 1) + " s"; }
  function fmtMs(ns) { var v = ns / 1e6; return (v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(3)) + " ms"; }

  function niceStep(span, target) {
    var raw = span / target, p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  }

  function draw() {
    ctx.clearRect(0, 0, W, H);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
    var y0 = TOP, y1 = TOP + nl * laneH;
    ctx.save();
    ctx.beginPath(); ctx.rect(GUTTER, 0, W - GUTTER, H); ctx.clip();
    // Faults: shaded bands over all lanes with their description in the top strip.
    ctx.font = "11px sans-serif"; ctx.textBaseline = "middle";
    var labelEnd = -Infinity;
    D.faults.forEach(function (f) {
      if (f.end < view.t0 || f.start > view.t1) return;
      var a = xOf(f.start), b = Math.max(xOf(f.end), a + 2);
      ctx.fillStyle = "rgba(255,140,0,0.16)"; ctx.fillRect(a, y0, b - a, y1 - y0);
      ctx.fillStyle = "rgba(255,140,0,0.55)"; ctx.fillRect(a, 2, b - a, TOP - 4);
      if (a > labelEnd) {
        ctx.fillStyle = "#5a3300";
        var text = f.description.length > 60 ? f.description.slice(0, 57) + "…" : f.description;
        var left = Math.max(a + 2, GUTTER + 2);
        ctx.fillText(text, left, TOP / 2);
        labelEnd = left + ctx.measureText(text).width + 6;
      }
    });
    // Ops. Bars narrower than a pixel are painted at least one pixel wide; consecutive ones in
    // the same pixel column and colour share one rectangle. Every op in view is counted.
    var drawn = 0, gap = laneH >= 4 ? 1 : 0;
    for (var l = 0; l < nl; l++) {
      var ops = laneOps[l], y = y0 + l * laneH;
      var lastX = -1e9, lastC = -1;
      for (var j = firstReaching(l, view.t0); j < ops.length; j++) {
        var k = ops[j];
        if (start[k] > view.t1) break;
        if (effEnd[k] < view.t0) continue;
        drawn++;
        var a = xOf(start[k]), b = xOf(effEnd[k]);
        var c = outc[k] + (end[k] < 0 ? 3 : 0);
        if (b - a < 1) { b = a + 1; if (Math.floor(a) === lastX && c === lastC) continue; }
        lastX = Math.floor(a); lastC = c;
        ctx.fillStyle = OUT_COLOR[outc[k]];
        ctx.globalAlpha = end[k] < 0 ? 0.45 : 1;
        ctx.fillRect(a, y + gap, Math.max(b - a - (b - a > 3 ? 1 : 0), 1), laneH - 2 * gap);
        if (cxIdx[D.index[k]]) {
          ctx.globalAlpha = 1; ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
          ctx.strokeRect(a, y + gap, Math.max(b - a, 2), laneH - 2 * gap);
        }
      }
    }
    ctx.globalAlpha = 1;
    ctx.restore();
    // Lane labels and axis.
    ctx.fillStyle = "#444"; ctx.font = "10px sans-serif"; ctx.textBaseline = "middle";
    if (laneH >= 9) for (var m = 0; m < nl; m++) ctx.fillText("p" + D.lanes[m].replace(/ \(.*/, "") + (D.lanes[m].indexOf("(") > 0 ? "…" : ""), 4, y0 + m * laneH + laneH / 2);
    else ctx.fillText(nl + " lanes", 2, y0 + 8);
    ctx.strokeStyle = "#999"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(GUTTER, y1 + 0.5); ctx.lineTo(W, y1 + 0.5); ctx.stroke();
    var step = niceStep(view.t1 - view.t0, 10);
    ctx.textBaseline = "top"; ctx.fillStyle = "#333";
    for (var t = Math.ceil(view.t0 / step) * step; t <= view.t1; t += step) {
      var x = xOf(t);
      ctx.beginPath(); ctx.moveTo(x + 0.5, y1); ctx.lineTo(x + 0.5, y1 + 4); ctx.stroke();
      ctx.fillText((t / 1e9).toPrecision(6).replace(/\.?0+$/, "") + "s", x - 10, y1 + 6);
    }
    canvas.setAttribute("data-drawn-ops", String(drawn));
    info.textContent = fmtS(view.t0) + " – " + fmtS(view.t1) + " · " + drawn + " of " + n + " ops in view";
  }
  var pending = false;
  function schedule() { if (!pending) { pending = true; requestAnimationFrame(function () { pending = false; draw(); }); } }

  function clampView() {
    var span = Math.max(view.t1 - view.t0, 1000);
    span = Math.min(span, T * 1.02);
    var c = (view.t0 + view.t1) / 2;
    view.t0 = c - span / 2; view.t1 = c + span / 2;
    if (view.t0 < -T * 0.01) { view.t1 -= view.t0 + T * 0.01; view.t0 = -T * 0.01; }
    if (view.t1 > T * 1.01) { view.t0 -= view.t1 - T * 1.01; view.t1 = T * 1.01; }
  }
  function zoomAt(x, factor) {
    var t = tOf(x);
    view.t0 = t - (t - view.t0) * factor; view.t1 = t + (view.t1 - t) * factor;
    clampView(); schedule();
  }
  canvas.addEventListener("wheel", function (e) {
    e.preventDefault();
    zoomAt(e.offsetX, e.deltaY < 0 ? 1 / 1.25 : 1.25);
  }, { passive: false });
  var drag = null;
  canvas.addEventListener("mousedown", function (e) { drag = { x: e.clientX, t0: view.t0, t1: view.t1 }; canvas.style.cursor = "grabbing"; });
  window.addEventListener("mouseup", function () { drag = null; canvas.style.cursor = "grab"; });
  window.addEventListener("mousemove", function (e) {
    if (!drag) return;
    var dt = (e.clientX - drag.x) / (W - GUTTER - 8) * (drag.t1 - drag.t0);
    view.t0 = drag.t0 - dt; view.t1 = drag.t1 - dt; clampView(); schedule();
  });
  document.getElementById("zoom-in").onclick = function () { zoomAt((W + GUTTER) / 2, 0.5); };
  document.getElementById("zoom-out").onclick = function () { zoomAt((W + GUTTER) / 2, 2); };
  document.getElementById("reset").onclick = function () { view.t0 = 0; view.t1 = T; schedule(); };

  function hit(x, y) {
    if (y < TOP) {
      var t = tOf(x), tol = 3 * (view.t1 - view.t0) / W;
      for (var q = 0; q < D.faults.length; q++) {
        var f = D.faults[q];
        if (t >= f.start - tol && t <= f.end + tol) return { fault: f };
      }
      return null;
    }
    var l = Math.floor((y - TOP) / laneH);
    if (l < 0 || l >= nl) return null;
    var t2 = tOf(x), tol2 = 2 * (view.t1 - view.t0) / W, ops = laneOps[l], best = -1, near = 0;
    for (var j = firstReaching(l, t2 - tol2); j < ops.length; j++) {
      var k = ops[j];
      if (start[k] > t2 + tol2) break;
      if (effEnd[k] >= t2 - tol2) {
        near++;
        if (best < 0 || (start[k] <= t2 && effEnd[k] >= t2)) best = k;
      }
    }
    return best < 0 ? null : { op: best, near: near };
  }
  canvas.addEventListener("mousemove", function (e) {
    if (drag) { tip.hidden = true; return; }
    var h = hit(e.offsetX, e.offsetY);
    if (!h) { tip.hidden = true; return; }
    var text;
    if (h.fault) {
      text = "fault: " + h.fault.description + "\n" + fmtS(h.fault.start) + " – " + fmtS(h.fault.end) +
        (h.fault.detail ? "\n" + h.fault.detail.slice(0, 400) : "");
    } else {
      var k = h.op;
      text = "process " + D.procs[pid[k]] + " · op #" + D.index[k] + "\n" + D.fs[fidx[k]] +
        (D.key[k] != null ? " key " + D.key[k] : "") + " " + D.inv[k] + "\n" + OUT_NAME[outc[k]] +
        (D.res[k] != null ? " → " + D.res[k] : "") + "\ninvoked " + fmtS(start[k]) +
        (end[k] < 0 ? ", never completed" : ", latency " + fmtMs(end[k] - start[k])) +
        (h.near > 1 ? "\n(" + h.near + " ops of this lane under the cursor: zoom in to tell them apart)" : "");
    }
    tip.textContent = text; tip.hidden = false;
    tip.style.left = Math.min(e.offsetX + 14, W - 260) + "px"; tip.style.top = (e.offsetY + 14) + "px";
  });
  canvas.addEventListener("mouseleave", function () { tip.hidden = true; });
  window.addEventListener("resize", function () { resize(); schedule(); });

  // Counterexample: the window of concurrent ops as bars, numbered in linearization order
  // (the prefix), the op that cannot be placed in red.
  function drawCx() {
    var host = document.getElementById("cx-window");
    if (!host || !D.cx) return 0;
    var cx = D.cx, win = cx.window.slice();
    if (!win.length) { host.textContent = "(the checker gave no window of concurrent ops)"; return 0; }
    // Context: the last steps of the prefix before the window, so the picture shows how the
    // model got to the state the red op contradicts.
    var seen = {};
    win.forEach(function (o) { if (o.index != null) seen[o.index] = true; });
    var ctxOps = cx.prefix.slice(-8).filter(function (s) { return s.index != null && !seen[s.index]; })
      .map(function (s) { return { label: s.op, process: s.process, index: s.index }; });
    win = ctxOps.concat(win);
    win.forEach(function (o) {
      // Times from the history (the page's time axis), where the op is found there.
      var k = o.index != null ? opByIndex(o.index) : undefined;
      if (k !== undefined) {
        o.start = start[k];
        o.end = end[k] < 0 ? null : end[k];
        if (o.process == null) o.process = D.procs[pid[k]];
      }
    });
    // Number each window op by its place in the prefix: by history index, else by label.
    var order = {};
    cx.prefix.forEach(function (s) {
      for (var w = 0; w < win.length; w++) {
        if (order[w] != null) continue;
        var same = s.index != null && win[w].index != null ? s.index === win[w].index
          : win[w].label === s.op && (s.process == null || win[w].process === s.process);
        if (same) { order[w] = s.number; return; }
      }
    });
    var procs = [];
    win.forEach(function (o) { var p = o.process == null ? "?" : o.process; if (procs.indexOf(p) < 0) procs.push(p); });
    var timed = win.every(function (o) { return o.start != null; });
    var lo = Infinity, hi = -Infinity;
    win.forEach(function (o) { if (timed) { lo = Math.min(lo, o.start); hi = Math.max(hi, o.end != null ? o.end : o.start); } });
    if (!(hi > lo)) { hi = lo + 1; }
    var openEnd = hi + (hi - lo) * 0.1;
    var Wc = 960, rowH = 30, left = 60, Hc = procs.length * rowH + 30;
    var minW = 4;
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + Wc + " " + Hc); svg.setAttribute("width", Wc); svg.setAttribute("height", Hc);
    function el(name, attrs, text) {
      var e = document.createElementNS(ns, name);
      for (var a in attrs) e.setAttribute(a, attrs[a]);
      if (text != null) e.textContent = text;
      svg.appendChild(e); return e;
    }
    procs.forEach(function (p, i) { el("text", { x: 4, y: i * rowH + 20, "font-size": 12, fill: "#444" }, "p" + p); });
    var placed = 0;
    win.forEach(function (o, w) {
      var row = procs.indexOf(o.process == null ? "?" : o.process);
      var x0, x1;
      if (timed) {
        x0 = left + (o.start - lo) / (openEnd - lo) * (Wc - left - 10);
        x1 = left + ((o.end != null ? o.end : openEnd) - lo) / (openEnd - lo) * (Wc - left - 10);
      } else { x0 = left + w * (Wc - left) / win.length; x1 = x0 + (Wc - left) / win.length - 6; }
      var failing = (cx.failing_index != null && o.index === cx.failing_index) || (cx.failing_index == null && o.label === cx.failing);
      var color = failing ? "#d32f2f" : order[w] ? "#43a047" : "#9e9e9e";
      var r = el("rect", { x: x0, y: row * rowH + 6, width: Math.max(x1 - x0, minW), height: rowH - 10, rx: 3, fill: color, "fill-opacity": 0.85, class: failing ? "cx-failing" : "cx-op" });
      r.appendChild(document.createElementNS(ns, "title")).textContent = o.label;
      var label = (order[w] ? order[w] + ". " : failing ? "✗ " : "") + o.label;
      var fits = label.length * 7 + 8 <= x1 - x0;
      el("text", { x: fits ? x0 + 4 : Math.max(x1, x0 + minW) + 4, y: row * rowH + 21, "font-size": 12,
        fill: fits ? "#fff" : failing ? "#b71c1c" : "#1b5e20", "font-weight": "600" }, label);
      placed++;
    });
    el("text", { x: left, y: Hc - 6, "font-size": 11, fill: "#666" },
      timed ? "time →  (green: linearizable prefix, numbered in linearization order; red: cannot be placed; grey: in the window, not placed)" : "ops of the window (times unknown)");
    host.appendChild(svg);
    return placed - ctxOps.length;
  }

  // `#view=FROM,TO` (seconds) opens the timeline zoomed to that window.
  var hv = /^#view=([0-9.]+),([0-9.]+)$/.exec(location.hash);
  if (hv && +hv[2] > +hv[1]) { view.t0 = hv[1] * 1e9; view.t1 = hv[2] * 1e9; clampView(); }
  resize();
  draw();
  var cxDrawn = drawCx();
  document.body.setAttribute("data-cx-drawn", String(cxDrawn));
  // `#bench`: time 40 zoom/pan redraws of the timeline (each draws every op in view) and
  // record the median in ms, for the browser test to report.
  if (location.hash === "#bench") {
    var times = [], now = function () { return performance.now(); };
    for (var b = 0; b < 40; b++) {
      if (b % 2) zoomAt(GUTTER + (W - GUTTER) * ((b * 37) % 100) / 100, b < 20 ? 0.8 : 1.25);
      else { var span = view.t1 - view.t0; view.t0 += span * 0.05; view.t1 += span * 0.05; clampView(); }
      var t0 = now(); draw(); times.push(now() - t0);
    }
    view.t0 = 0; view.t1 = T; draw();
    // Hover check: a synthetic mouse move over the middle of a bar must show that op.
    if (n > 0) {
      var ops0 = laneOps[lane[0]], k0 = ops0[ops0.length >> 1];
      var rect = canvas.getBoundingClientRect();
      var pad = Math.max(effEnd[k0] - start[k0], 1000);
      view.t0 = start[k0] - pad; view.t1 = effEnd[k0] + pad; draw();
      var hx = xOf((start[k0] + effEnd[k0]) / 2), hy = TOP + lane[k0] * laneH + laneH / 2;
      canvas.dispatchEvent(new MouseEvent("mousemove", { clientX: rect.left + hx, clientY: rect.top + hy, bubbles: true }));
      document.body.setAttribute("data-hover-expected", "op #" + D.index[k0]);
      document.body.setAttribute("data-hover-text", tip.hidden ? "" : tip.textContent.split("\n")[0]);
      tip.hidden = true; view.t0 = 0; view.t1 = T; draw();
    }
    times.sort(function (a, c) { return a - c; });
    document.body.setAttribute("data-bench-draw-ms", times[times.length >> 1].toFixed(2));
    document.body.setAttribute("data-bench-draw-max-ms", times[times.length - 1].toFixed(2));
  }
  document.body.setAttribute("data-ready", "1");
})();
