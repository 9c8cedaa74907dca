// memprof's page: polls the JSON routes every 5 s and draws the history as
// SVG. Written by hand: no dependencies, works offline.
"use strict";

var REFRESH_MS = 5000;
var SVGNS = "http://www.w3.org/2000/svg";
var points = [];
var capacity = 720;

var MEMORY = [
  { name: "rss", label: "process RSS", color: "#d62728", get: function (p) { return p.process && p.process.rss_bytes; } },
  { name: "resident", label: "jemalloc resident", color: "#ff7f0e", get: function (p) { return p.allocator && p.allocator.resident_bytes; } },
  { name: "active", label: "jemalloc active", color: "#2ca02c", get: function (p) { return p.allocator && p.allocator.active_bytes; } },
  { name: "allocated", label: "jemalloc allocated", color: "#1f77b4", get: function (p) { return p.allocator && p.allocator.allocated_bytes; } },
  { name: "heap", label: "profiled heap (estimate)", color: "#9467bd", get: function (p) { return p.heap && p.heap.inuse_bytes; } }
];
var RETAINED = [
  { name: "retained", label: "jemalloc retained", color: "#8c564b", get: function (p) { return p.allocator && p.allocator.retained_bytes; } }
];

function $(id) { return document.getElementById(id); }

function el(tag, attrs, text) {
  var e = document.createElement(tag);
  for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, attrs) {
  var e = document.createElementNS(SVGNS, tag);
  for (var k in attrs) e.setAttribute(k, attrs[k]);
  return e;
}

function fmtBytes(n) {
  if (n === null || n === undefined || !isFinite(n)) return "-";
  var units = ["B", "KiB", "MiB", "GiB", "TiB"];
  var i = 0;
  var v = Math.abs(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  var s = (v >= 100 || i === 0) ? v.toFixed(0) : v.toFixed(1);
  return (n < 0 ? "-" : "") + s + " " + units[i];
}

function fmtTime(ms) {
  var d = new Date(ms);
  var pad = function (x) { return (x < 10 ? "0" : "") + x; };
  return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}

// The endpoint's token, when it has one. It lives in this tab's
// sessionStorage (this origin only, gone with the tab) and travels only in
// the Authorization header of this page's own requests: never in a URL, a
// cookie or a link, so no other site or log sees it. An address ending in
// "#token=..." hands it over (the fragment never reaches a server) and is
// rewritten without it at once.
var TOKEN_KEY = "memprof-token";

function storedToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
}

function keepToken(token) {
  try { sessionStorage.setItem(TOKEN_KEY, token); } catch (e) { /* storage off: this load only */ }
  pageToken = token;
}

var pageToken = storedToken();
(function tokenFromFragment() {
  var m = /^#token=(.+)$/.exec(location.hash);
  if (!m) return;
  keepToken(decodeURIComponent(m[1]));
  history.replaceState(null, "", location.pathname + location.search);
})();

function authorized(options) {
  options = options || {};
  options.cache = "no-store";
  if (pageToken) options.headers = { Authorization: "Bearer " + pageToken };
  return options;
}

function askForToken(refused) {
  var form = $("token-form");
  if (!form.hidden) return;
  form.hidden = false;
  $("token-refused").hidden = !refused;
  $("token-input").focus();
}

function tokenEntered(ev) {
  ev.preventDefault();
  var token = $("token-input").value.trim();
  if (!token) return;
  keepToken(token);
  $("token-input").value = "";
  $("token-form").hidden = true;
  refresh();
}

function getJSON(path) {
  return fetch(path, authorized()).then(function (r) {
    if (r.status === 401) {
      askForToken(!!pageToken);
      throw new Error(path + ": HTTP 401, the endpoint needs its token");
    }
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    return r.json();
  }).then(function (body) {
    // Without MemProf as the global allocator every view is empty: say so
    // above everything else.
    if (body && body.warning) {
      $("warning").textContent = body.warning;
      $("warning").hidden = false;
    }
    return body;
  });
}

// A link cannot carry a header: with a token, what a link points at is
// fetched with it and opened (or saved) from memory instead.
function openWithToken(ev) {
  var a = ev.target.closest("a");
  if (!a || !pageToken || ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
  ev.preventDefault();
  var download = a.getAttribute("data-download");
  var win = download ? null : window.open("", "_blank");
  // An SVG link's href is no string: resolve the attribute against the base.
  fetch(new URL(a.getAttribute("href"), document.baseURI).href, authorized()).then(function (r) {
    if (!r.ok) throw new Error(a.getAttribute("href") + ": HTTP " + r.status);
    return r.blob();
  }).then(function (blob) {
    var url = URL.createObjectURL(blob);
    if (download) {
      var save = el("a", { href: url, download: download });
      document.body.appendChild(save);
      save.click();
      save.remove();
    } else if (win) {
      win.location.href = url;
    } else {
      location.href = url;
    }
  }).catch(function (e) {
    if (win) win.close();
    var status = $("status");
    status.className = "error";
    status.textContent = e.message;
  });
}

// A nice step for about 4 grid lines up to max: 1, 2 or 5 times a power of 1024 or 10.
function niceStep(max) {
  var raw = max / 4;
  var base = Math.pow(2, Math.floor(Math.log2(raw || 1) / 10) * 10);
  var x = raw / base;
  var mult = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].find(function (m) { return m >= x; }) || 1000;
  return mult * base;
}

// Draws `series` over `data` as an SVG in `container`. `mark` (optional:
// { name, unix_ms, bytes, label, href }) is a point drawn as a linked
// marker when it falls inside the data's time span (or just after it).
function plot(container, legend, series, data, mark) {
  var W = 900, H = 260, L = 70, R = 12, T = 10, B = 24;
  var root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "data-points": String(data.length) });
  var t0 = data.length ? data[0].unix_ms : 0;
  var t1 = data.length ? data[data.length - 1].unix_ms : 1;
  if (!data.length || !mark || mark.unix_ms < t0) mark = null;
  if (mark && mark.unix_ms > t1) t1 = mark.unix_ms;
  if (t1 <= t0) t1 = t0 + 1;
  var max = mark ? mark.bytes : 0;
  series.forEach(function (s) {
    data.forEach(function (p) { var v = s.get(p); if (v > max) max = v; });
  });
  if (max <= 0) max = 1;
  var step = niceStep(max);
  var top = Math.ceil(max / step) * step;
  var x = function (t) { return L + (W - L - R) * (t - t0) / (t1 - t0); };
  var y = function (v) { return T + (H - T - B) * (1 - v / top); };
  for (var v = 0; v <= top + step / 2; v += step) {
    root.appendChild(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e4e4e4" }));
    var label = svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" });
    label.textContent = fmtBytes(v);
    root.appendChild(label);
  }
  var ticks = Math.min(6, Math.max(1, data.length - 1));
  for (var i = 0; i <= ticks; i++) {
    var t = t0 + (t1 - t0) * i / ticks;
    var tl = svg("text", { x: x(t), y: H - 6, "text-anchor": i === 0 ? "start" : (i === ticks ? "end" : "middle") });
    tl.textContent = data.length ? fmtTime(t) : "";
    root.appendChild(tl);
  }
  legend.textContent = "";
  series.forEach(function (s) {
    var d = "";
    var last = null;
    data.forEach(function (p) {
      var v = s.get(p);
      if (v === null || v === undefined) return;
      d += (d ? " L" : "M") + x(p.unix_ms).toFixed(1) + " " + y(v).toFixed(1);
      last = v;
    });
    if (d && data.length === 1) d += " L" + (W - R) + " " + y(last).toFixed(1);
    var path = svg("path", { d: d, fill: "none", stroke: s.color, "stroke-width": "2", "data-series": s.name });
    var title = svg("title", {});
    title.textContent = s.label;
    path.appendChild(title);
    root.appendChild(path);
    var item = el("span", { "data-series": s.name }, s.label + ": " + (last === null ? "n/a" : fmtBytes(last)));
    // Through the CSSOM: the page's policy refuses style attributes.
    item.style.setProperty("--c", s.color);
    legend.appendChild(item);
  });
  if (mark) root.appendChild(marker(mark, x(mark.unix_ms), y(mark.bytes), T, H - B, W));
  container.textContent = "";
  container.appendChild(root);
}

// A point of interest on a plot: a dashed line down the time axis, a dot at
// the value and a label, all one link; its time and bytes in data
// attributes.
function marker(mark, mx, my, top, bottom, width) {
  var a = svg("a", { href: mark.href, class: "mark", "data-mark": mark.name, "data-unix-ms": String(mark.unix_ms), "data-bytes": String(mark.bytes) });
  var color = "#5b3d87";
  a.appendChild(svg("line", { x1: mx, x2: mx, y1: top, y2: bottom, stroke: color, "stroke-dasharray": "4 3" }));
  a.appendChild(svg("circle", { cx: mx, cy: my, r: 5, fill: color }));
  var right = mx > width / 2;
  var label = svg("text", { x: mx + (right ? -9 : 9), y: Math.max(top + 12, my - 8), "text-anchor": right ? "end" : "start" });
  label.textContent = mark.label;
  a.appendChild(label);
  var title = svg("title", {});
  title.textContent = mark.label + ": open its flamegraph";
  a.appendChild(title);
  return a;
}

function refreshHistory() {
  var since = points.length ? "&since=" + points[points.length - 1].unix_ms : "";
  return getJSON("history?format=json" + since).then(function (h) {
    capacity = h.capacity || capacity;
    points = points.concat(h.points);
    if (points.length > capacity) points = points.slice(points.length - capacity);
    drawMemory();
    plot($("plot-retained"), $("legend-retained"), RETAINED, points);
    var c = h.sampler_cost_us || {};
    $("sampler").textContent = points.length + " points, one every " + (h.interval_ms / 1000) + " s, window " +
      Math.round(h.window_ms / 60000) + " min; sampler cost per point: " + (c.last_us || 0) + " µs (mean " +
      Math.round(c.mean_us || 0) + " µs)" + (h.allocator_unavailable ? "; allocator: " + h.allocator_unavailable : "");
  });
}

// The heap at its peak: the profile the history sampler keeps at the
// highest heap estimate, which GET snapshots lists with id "peak" (its time
// and in-use bytes). The memory plot marks it; the line beside the plot
// links its flamegraph, and says so when the peak is older than the plot.
var peak = null;
var PEAK_FLAMEGRAPH = "flamegraph?at=peak";

// A time as the plot's axis shows it, with the date when not today.
function fmtWhen(ms) {
  var d = new Date(ms);
  if (d.toDateString() === new Date().toDateString()) return fmtTime(ms);
  var pad = function (x) { return (x < 10 ? "0" : "") + x; };
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + fmtTime(ms);
}

function refreshPeak() {
  return getJSON("snapshots").then(function (list) {
    var kept = list.filter(function (s) { return s.id === "peak"; })[0];
    peak = kept ? { unix_ms: kept.taken_at_unix_ms, bytes: kept.totals.inuse_bytes } : null;
    drawMemory();
  });
}

function drawMemory() {
  var mark = peak && {
    name: "peak",
    unix_ms: peak.unix_ms,
    bytes: peak.bytes,
    label: "peak " + fmtBytes(peak.bytes) + " at " + fmtWhen(peak.unix_ms),
    href: PEAK_FLAMEGRAPH
  };
  plot($("plot-memory"), $("legend-memory"), MEMORY, points, mark);
  var note = $("peak-note");
  note.textContent = "";
  if (!mark) {
    note.removeAttribute("data-unix-ms");
    note.removeAttribute("data-bytes");
    note.setAttribute("data-state", "none");
    note.textContent = "No peak kept yet: the history sampler keeps the heap's peak from its first reading.";
    return;
  }
  var state = !points.length ? "no-history" : (mark.unix_ms < points[0].unix_ms ? "before-window" : "drawn");
  var text = {
    "no-history": mark.label + " (no history points to draw it on).",
    "before-window": mark.label + ": before this plot's window (from " + (points.length && fmtWhen(points[0].unix_ms)) + "), so not drawn.",
    "drawn": mark.label + ", marked on the plot."
  }[state];
  note.setAttribute("data-state", state);
  note.setAttribute("data-unix-ms", String(mark.unix_ms));
  note.setAttribute("data-bytes", String(mark.bytes));
  note.appendChild(document.createTextNode(text));
  note.appendChild(el("a", { href: PEAK_FLAMEGRAPH, id: "peak-flamegraph" }, "flamegraph at the peak"));
}

// The previous run: GET dumps lists the dump directory; when it holds a dump
// of another process (`previous_run`), the panel shows that run's last dump
// (its trigger, time, heap, RSS, cgroup usage against the limit), whether
// the kernel OOM-killed it, and links to its flamegraph and to a
// differential of it against the live heap. With dumps off, one line says
// how to turn them on; an error of the directory is shown as it is.
// Listing the directory reads every dump's summary and the kernel log, and
// a previous run does not change: it is read every 30 s, not every 5.
var DUMPS_REFRESH_MS = 30000;
var dumpsReadAt = null;

function refreshPreviousRun() {
  if (dumpsReadAt !== null && Date.now() - dumpsReadAt < DUMPS_REFRESH_MS) return Promise.resolve();
  return getJSON("dumps").then(function (listing) {
    dumpsReadAt = Date.now();
    showPreviousRun(listing);
  });
}

function showPreviousRun(listing) {
  var box = $("previous-run");
  var run = listing.previous_run;
  box.textContent = "";
  box.className = "";
  var state = run ? "previous-run" : (!listing.enabled ? "off" : (listing.error ? "error" : "quiet"));
  box.setAttribute("data-state", state);
  box.hidden = state === "quiet";
  if (!listing.enabled) {
    box.appendChild(el("p", { class: "muted", id: "dumps-off" },
      "Dumps are off: set MEMPROF_DUMP_DIR=/path (or memprof::Config) to keep heap profiles on disk, so the run after an OOM kill shows here what the killed one held."));
  }
  if (listing.error) box.appendChild(el("p", { class: "error", id: "dumps-error" }, "Dumps: " + listing.error));
  if (!run) return;
  var d = run.last_dump;
  box.className = run.oom_killed === true ? "killed" : "";
  box.appendChild(el("h2", {}, "Previous run: pid " + run.pid + (d.comm ? " (" + d.comm + ")" : "")));
  var table = el("table", { id: "previous-run-dump", "data-id": d.id });
  var row = function (field, name, value) {
    var tr = el("tr", { "data-field": field });
    tr.appendChild(el("th", {}, name));
    tr.appendChild(el("td", {}, value));
    table.appendChild(tr);
  };
  var killed = { "true": "yes", "false": "no" }[String(run.oom_killed)] || "unknown";
  var kill = run.oom_kill;
  row("oom_killed", "OOM-killed", killed + (kill
    ? ": " + kill.name + " (pid " + kill.pid + ")" + (kill.time_unix ? " at " + fmtWhen(kill.time_unix * 1000) : "") +
      ", RSS " + fmtBytes(kill.rss_bytes) + (kill.memcg ? ", cgroup " + kill.memcg : "") + (kill.constraint ? ", " + kill.constraint : "")
    : (run.oom_killed === null ? " (the kernel log cannot be read here)" : "")));
  row("trigger", "last dump", d.trigger + (d.detail ? ": " + d.detail : ""));
  row("time", "written at", fmtWhen(d.time_unix * 1000));
  row("heap", "heap (estimate)", fmtBytes(d.heap_bytes));
  row("rss", "process RSS", fmtBytes(d.rss_bytes));
  var usage = fmtBytes(d.cgroup_usage_bytes);
  if (d.cgroup_limit_bytes) {
    usage += " of " + fmtBytes(d.cgroup_limit_bytes) + " limit";
    if (d.cgroup_usage_bytes !== null && d.cgroup_usage_bytes !== undefined) {
      usage += " (" + (100 * d.cgroup_usage_bytes / d.cgroup_limit_bytes).toFixed(0) + "%)";
    }
  } else if (d.cgroup_usage_bytes !== null && d.cgroup_usage_bytes !== undefined) {
    usage += ", no limit";
  }
  row("cgroup", "cgroup usage", usage);
  box.appendChild(table);
  var base = "dumps/" + encodeURIComponent(d.id) + "/";
  var links = el("p", { id: "previous-run-links" });
  links.appendChild(el("a", { href: base + "flamegraph", "data-link": "flamegraph" }, "its flamegraph"));
  links.appendChild(el("a", { href: base + "flamegraph?base=current", "data-link": "differential" }, "against the current heap"));
  links.appendChild(el("a", { href: base + "heap.pb.gz", "data-link": "pprof", "data-download": d.id + ".pb.gz" }, "pprof"));
  links.appendChild(el("a", { href: base + "summary.json", "data-link": "summary" }, "summary"));
  box.appendChild(links);
}

function evidenceText(e) {
  var v = e.value;
  if (typeof v === "number") {
    if (e.unit === "bytes") v = fmtBytes(v);
    else if (e.unit === "ratio") v = v.toFixed(2);
    else if (e.unit === "percent") v = v.toFixed(1) + "%";
    else if (e.unit === "bytes_per_second") v = fmtBytes(v) + "/s";
    else if (e.unit === "bytes_per_minute") v = fmtBytes(v) + "/min";
    else if (e.unit === "per_second") v = v.toFixed(1) + "/s";
    else if (e.unit === "milliseconds") v = v + " ms";
    else if (e.unit === "seconds") v = v.toFixed(0) + " s";
  }
  return e.name + " = " + v;
}

function refreshDoctor() {
  return getJSON("doctor").then(function (d) {
    var list = $("findings");
    list.textContent = "";
    if (!d.findings.length) {
      list.appendChild(el("li", { class: "finding none" }, "No findings: nothing looks wrong in the readings taken."));
      return;
    }
    d.findings.forEach(function (f) {
      var li = el("li", { class: "finding " + f.severity, "data-rule": f.rule });
      var head = el("p");
      head.appendChild(el("span", { class: "sev" }, f.severity));
      head.appendChild(el("strong", {}, f.title));
      li.appendChild(head);
      if (f.evidence && f.evidence.length) li.appendChild(el("p", { class: "seen" }, f.evidence.map(evidenceText).join(", ")));
      li.appendChild(el("p", {}, f.meaning));
      li.appendChild(el("p", {}, "Try: " + f.advice));
      list.appendChild(li);
    });
  });
}

// The program's own call site first; the whole stack, leaf first, folded
// away below it (its leaf end is mostly the standard library's).
function framesCell(site, frames) {
  var td = el("td", { class: "frames" });
  td.appendChild(el("strong", {}, site));
  var details = el("details");
  details.appendChild(el("summary", { class: "muted" }, frames.length + " frames, leaf first"));
  frames.forEach(function (f, i) { if (i) details.appendChild(el("br")); details.appendChild(document.createTextNode(f)); });
  td.appendChild(details);
  return td;
}

function refreshTop() {
  return getJSON("top?n=10").then(function (t) {
    var table = $("top");
    table.textContent = "";
    var head = el("tr");
    ["#", "in use", "objects", "allocated", "allocated at"].forEach(function (h, i) { head.appendChild(el("th", { class: i && i < 4 ? "num" : "" }, h)); });
    table.appendChild(head);
    if (!t.stacks.length) {
      var row = el("tr");
      row.appendChild(el("td", { colspan: "5", class: "muted" }, "No sampled allocations in use."));
      table.appendChild(row);
    }
    t.stacks.forEach(function (s) {
      var tr = el("tr", { class: "stack" });
      tr.appendChild(el("td", {}, String(s.rank)));
      // A sampled estimate says how far off it may be (95%) and from how
      // many samples; an exact one says nothing more.
      var inuse = fmtBytes(s.inuse_bytes);
      if (s.inuse_bytes_margin_95 > 0) {
        inuse += " \u00b1 " + fmtBytes(s.inuse_bytes_margin_95);
      }
      tr.appendChild(el("td", { class: "num", title: s.inuse_samples + " live samples" }, inuse));
      tr.appendChild(el("td", { class: "num" }, Math.round(s.inuse_objects).toLocaleString()));
      tr.appendChild(el("td", { class: "num" }, fmtBytes(s.alloc_bytes)));
      tr.appendChild(framesCell(s.site, s.frames));
      table.appendChild(tr);
    });
  });
}

function refreshLeaks() {
  return getJSON("leaks?limit=10").then(function (r) {
    var box = $("leaks");
    box.textContent = "";
    box.className = "";
    if (!r.candidates.length) {
      box.appendChild(el("p", { class: "muted" }, "No leak candidates (" + r.history_points + " history points, " + r.live_samples + " live samples)."));
    } else {
      var table = el("table", { id: "leak-table" });
      var head = el("tr");
      ["#", "in use", "older than " + r.min_age_seconds + " s", "growth", "evidence", "allocated at"].forEach(function (h) { head.appendChild(el("th", {}, h)); });
      table.appendChild(head);
      r.candidates.forEach(function (c) {
        var tr = el("tr", { class: "leak" });
        tr.appendChild(el("td", {}, String(c.rank)));
        tr.appendChild(el("td", { class: "num" }, fmtBytes(c.inuse_bytes)));
        tr.appendChild(el("td", { class: "num" }, fmtBytes(c.old_bytes)));
        tr.appendChild(el("td", { class: "num" }, fmtBytes(c.growth_bytes_per_second * 60) + "/min"));
        tr.appendChild(el("td", {}, c.summary));
        tr.appendChild(framesCell(c.site, c.frames.map(function (f) { return f.function; })));
        table.appendChild(tr);
      });
      box.appendChild(table);
    }
    if (r.outside_heap) box.appendChild(el("p", { class: "finding warning" }, r.outside_heap.note));
  });
}

// The "by scope" table: GET scopes, largest in use first. A scope's figures
// include the scopes nested in it.
var SCOPE_ROWS = 50;

function refreshScopes() {
  return getJSON("scopes").then(function (r) {
    var table = $("scopes");
    table.textContent = "";
    var head = el("tr");
    ["scope", "in use", "objects", "allocated", "freed", "peak", "older than " + r.min_age_seconds + " s"].forEach(function (h, i) { head.appendChild(el("th", { class: i ? "num" : "" }, h)); });
    table.appendChild(head);
    if (!r.scopes.length) {
      var none = el("tr");
      none.appendChild(el("td", { colspan: "7", class: "muted" }, "No scope entered (memprof::scope, #[memprof::scope])."));
      table.appendChild(none);
    }
    r.scopes.slice(0, SCOPE_ROWS).forEach(function (s) {
      var tr = el("tr", { class: "scope" });
      tr.appendChild(el("td", {}, s.scope.path));
      var inuse = fmtBytes(s.inuse_bytes);
      if (s.inuse_bytes_margin_95 > 0) {
        inuse += " \u00b1 " + fmtBytes(s.inuse_bytes_margin_95);
      }
      tr.appendChild(el("td", { class: "num", title: s.inuse_error.samples + " live samples" }, inuse));
      tr.appendChild(el("td", { class: "num" }, Math.round(s.inuse_objects).toLocaleString()));
      tr.appendChild(el("td", { class: "num" }, fmtBytes(s.alloc_bytes)));
      tr.appendChild(el("td", { class: "num" }, fmtBytes(s.freed_bytes)));
      tr.appendChild(el("td", { class: "num" }, fmtBytes(s.peak_bytes)));
      tr.appendChild(el("td", { class: "num" }, fmtBytes(s.survivor_bytes)));
      table.appendChild(tr);
    });
    if (r.scopes.length > SCOPE_ROWS) {
      var more = el("tr");
      more.appendChild(el("td", { colspan: "7", class: "muted" }, (r.scopes.length - SCOPE_ROWS) + " more: see scopes?format=text"));
      table.appendChild(more);
    }
  });
}

function refresh() {
  var parts = [refreshHistory(), refreshPeak(), refreshPreviousRun(), refreshDoctor(), refreshTop(), refreshLeaks()];
  parts.push(refreshScopes());
  return Promise.all(parts.map(function (p) { return p.then(function () { return null; }, function (e) { return e; }); }))
    .then(function (errors) {
      var failed = errors.filter(function (e) { return e; });
      var status = $("status");
      status.className = failed.length ? "error" : "";
      status.textContent = failed.length
        ? "update failed: " + failed.map(function (e) { return e.message; }).join("; ")
        : "updated " + fmtTime(Date.now()) + ", every " + REFRESH_MS / 1000 + " s";
    });
}

$("token-form").addEventListener("submit", tokenEntered);
document.querySelector("nav").addEventListener("click", openWithToken);
$("memory").addEventListener("click", openWithToken);
$("previous-run").addEventListener("click", openWithToken);
refresh();
setInterval(refresh, REFRESH_MS);
