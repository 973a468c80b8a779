// Logdash pages: the levels chart, the live tail's pause/resume, copy buttons, alert
// banners and the live status. The server renders every piece of text; this file only
// draws charts from numbers and moves server-rendered elements around.
(function () {
  "use strict";

  const LEVELS = ["debug", "info", "warning", "error", "critical"];
  const CHART_HEIGHT = 220;
  const TAIL_MAX_ROWS = 500;
  const MAX_BANNERS = 5;
  const charts = []; // {host, plot, series}: one per chart on the page

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // Charts: stacked bars of lines per bucket by level, debug at the bottom.

  // series: {start, step, levels: {debug: [...], info: [...], ...}}, one count per bucket.
  function stackedData(series) {
    const counts = series.levels;
    const times = counts.debug.map((_, i) => series.start + i * series.step);
    let running = times.map(() => 0);
    const stacks = LEVELS.map((level) => (running = running.map((sum, i) => sum + counts[level][i])));
    // uPlot paints series in order: the tallest stack (every level) first, so each shorter
    // one paints over it and only its own level's part of the bar stays visible.
    return [times, ...stacks.reverse()];
  }

  // Times on the axis: 24-hour clock within a day and a half, dates beyond.
  const clockLabel = uPlot.fmtDate("{HH}:{mm}");
  const dayLabel = uPlot.fmtDate("{MMM} {D}");
  const legendTime = uPlot.fmtDate("{YYYY}-{MM}-{DD} {HH}:{mm} UTC");
  const utcDate = (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");

  function timeLabels(u, splits) {
    const span = u.scales.x.max - u.scales.x.min;
    const label = span <= 36 * 3600 ? clockLabel : dayLabel;
    return splits.map((ts) => label(utcDate(ts)));
  }

  function chartOptions(chart) {
    const axis = { stroke: cssVar("--muted"), grid: { stroke: cssVar("--grid"), width: 1 },
                   ticks: { stroke: cssVar("--grid"), width: 1 } };
    const bars = uPlot.paths.bars({ size: [0.85, 40], gap: 1 });
    return {
      width: chart.host.clientWidth,
      height: CHART_HEIGHT,
      tzDate: utcDate,
      cursor: { points: { show: false }, drag: { x: false, y: false } },
      scales: { y: { range: (u, min, max) => [0, Math.max(max, 1)] } },
      axes: [
        Object.assign({ values: timeLabels }, axis),
        // Counts are whole numbers: no 0.5 ticks.
        Object.assign({ size: 56, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3,
                                          1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 1e7, 1e8] }, axis),
      ],
      series: [
        { label: "UTC", value: (u, ts) => (ts == null ? "–" : legendTime(utcDate(ts))) },
        ...LEVELS.slice().reverse().map((level) => levelSeries(chart, level, bars)),
      ],
    };
  }

  function levelSeries(chart, level, bars) {
    return {
      label: level,
      fill: cssVar("--lv-" + level),
      stroke: cssVar("--lv-" + level),
      width: 0,
      paths: bars,
      points: { show: false },
      // The legend shows this level's own count, not the height of its stack.
      value: (u, v, s, i) => (i == null ? "–" : String(chart.series.levels[level][i])),
    };
  }

  function drawChart(chart) {
    if (chart.plot) chart.plot.destroy();
    chart.plot = new uPlot(chartOptions(chart), stackedData(chart.series), chart.host);
  }

  function showChartData(dataElt) {
    const host = document.getElementById(dataElt.dataset.for);
    if (!host || typeof uPlot === "undefined") return;
    const series = JSON.parse(dataElt.dataset.series);
    forgetRemovedCharts();
    let chart = charts.find((c) => c.host === host);
    if (!chart) {
      chart = { host: host, plot: null, series: series };
      charts.push(chart);
      drawChart(chart);
      return;
    }
    chart.series = series;
    chart.plot.setData(stackedData(series));
  }

  function forgetRemovedCharts() {
    for (let i = charts.length - 1; i >= 0; i--) {
      if (!charts[i].host.isConnected) {
        charts[i].plot.destroy();
        charts.splice(i, 1);
      }
    }
  }

  window.addEventListener("resize", () => {
    charts.forEach((c) => c.plot.setSize({ width: c.host.clientWidth, height: CHART_HEIGHT }));
  });
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    charts.forEach(drawChart);
  });

  // Live tail: new rows arrive hidden in #tail-incoming; show them unless paused.

  let tailPaused = false;
  // Rows let go while paused: the page keeps only the newest it would show, however long
  // the pause, and counts the rest.
  let tailLetGo = 0;

  function flushTail() {
    const incoming = document.getElementById("tail-incoming");
    const list = document.getElementById("tail-list");
    if (!incoming || !list) return;
    const pending = document.getElementById("tail-pending");
    if (tailPaused) {
      const rows = incoming.querySelectorAll(".log-row");
      for (let i = 0; i < rows.length - TAIL_MAX_ROWS; i += 1) rows[i].remove();
      tailLetGo += Math.max(rows.length - TAIL_MAX_ROWS, 0);
      const count = Math.min(rows.length, TAIL_MAX_ROWS) + tailLetGo;
      pending.textContent = count + (count === 1 ? " new line" : " new lines");
      pending.hidden = count === 0;
      return;
    }
    tailLetGo = 0;
    // Rows arrive oldest first; prepending each leaves the newest on top.
    Array.from(incoming.children).forEach((row) => list.prepend(row));
    const waiting = document.getElementById("tail-waiting");
    if (waiting && list.children.length > 1) waiting.remove();
    while (list.children.length > TAIL_MAX_ROWS) list.lastElementChild.remove();
    pending.hidden = true;
  }

  function toggleTail(button) {
    tailPaused = !tailPaused;
    button.textContent = tailPaused ? "Resume" : "Pause";
    button.setAttribute("aria-pressed", String(tailPaused));
    flushTail();
  }

  // Copy buttons and banner close buttons, wherever they are.

  function copyText(button) {
    const text = document.getElementById(button.dataset.copy).textContent;
    const done = () => { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
      return;
    }
    // Plain http on another host: select the text so Ctrl+C copies it.
    const range = document.createRange();
    range.selectNodeContents(document.getElementById(button.dataset.copy));
    window.getSelection().removeAllRanges();
    window.getSelection().addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }

  document.addEventListener("click", (event) => {
    const copy = event.target.closest("[data-copy]");
    if (copy) copyText(copy);
    const dismiss = event.target.closest("[data-dismiss]");
    if (dismiss) dismiss.closest(".banner").remove();
    const toggle = event.target.closest("#tail-toggle");
    if (toggle) toggleTail(toggle);
  });

  // Socket state and messages.

  function setLiveStatus(state, text) {
    const status = document.getElementById("live-status");
    if (!status) return;
    status.dataset.state = state;
    status.textContent = text;
  }

  document.addEventListener("htmx:wsOpen", () => setLiveStatus("live", "live"));
  // htmx reconnects after these closes only (a restart, a lost connection).
  const RECONNECTING = [1006, 1011, 1012, 1013];
  let failedReconnects = 0;
  document.addEventListener("htmx:wsOpen", () => { failedReconnects = 0; });
  document.addEventListener("htmx:wsClose", (event) => {
    const closed = event.detail.event;
    if (closed.code === 1008 && closed.reason.startsWith("signed out")) {
      // The session ended (signed out in another tab, a new password): sign in, then back.
      const back = window.location.pathname + window.location.search;
      window.location.assign(document.body.dataset.signIn + "?next=" + encodeURIComponent(back));
    } else if (RECONNECTING.includes(closed.code)) {
      setLiveStatus("connecting", "reconnecting…");
      // A socket refused at its opening closes as 1006 too: after two in a row, ask whether
      // the session ended meanwhile (the server then says where to sign in).
      failedReconnects += 1;
      if (closed.code === 1006 && failedReconnects >= 2) checkSession();
    } else {
      setLiveStatus("connecting", "disconnected: reload the page");
    }
  });

  async function checkSession() {
    try {
      const answer = await fetch(document.body.dataset.session, {
        headers: {"HX-Request": "true", "HX-Current-URL": window.location.href},
      });
      const signIn = answer.headers.get("HX-Redirect");
      if (answer.status === 401 && signIn) window.location.assign(signIn);
    } catch (unreachable) {
      // The server is away: htmx keeps trying to reconnect.
    }
  }
  document.addEventListener("htmx:wsAfterMessage", () => {
    flushTail();
    const banners = document.getElementById("alert-banners");
    // The newest banner of a service and level replaces the older ones: a resolution is
    // not shown beside the alert it ended.
    const newest = banners.firstElementChild;
    for (const older of [...banners.children].slice(1)) {
      if (newest.dataset.alert && older.dataset.alert === newest.dataset.alert) older.remove();
    }
    while (banners.children.length > MAX_BANNERS) banners.lastElementChild.remove();
  });

  // Changes made with the session cookie carry the page's CSRF token.
  document.addEventListener("htmx:configRequest", (event) => {
    const token = document.querySelector('meta[name="csrf-token"]');
    if (token) event.detail.headers["X-CSRF-Token"] = token.content;
  });

  // A refused change (signed out, expired CSRF token, already deleted) says why rather than
  // doing nothing: the server's JSON error, set as text, in the page's #request-error.
  document.addEventListener("htmx:responseError", (event) => {
    const box = document.getElementById("request-error");
    if (!box) return;
    let message = "The server refused this (" + event.detail.xhr.status + "); reload the page.";
    try {
      message = JSON.parse(event.detail.xhr.responseText).error || message;
    } catch (notJson) {
      // An HTML error page: keep the generic message.
    }
    box.textContent = message;
    box.hidden = false;
  });

  // Newly loaded content (the page, a swapped window, a frame): draw its charts. This
  // script is deferred, so it runs after htmx and before htmx loads the page.
  htmx.onLoad((root) => {
    const found = Array.from(root.querySelectorAll("[data-series]"));
    if (root.matches("[data-series]")) found.push(root);
    found.forEach(showChartData);
    focusFirstError(root);
  });

  // A form swapped back with errors: focus goes to its first field in error, where the
  // message is read out, rather than to the page's start with the button swapped away.
  function focusFirstError(root) {
    if (root === document.body) return;
    const invalid = root.matches('[aria-invalid="true"]') ? root
      : root.querySelector('[aria-invalid="true"]');
    if (invalid) invalid.focus();
  }
})();
