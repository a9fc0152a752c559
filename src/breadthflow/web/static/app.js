/* BreadthFlow dashboard: login token, API calls, live updates (SSE) and charts (uPlot).
 *
 * Pages are rendered on the server; this file adds what needs a browser: writes go to the
 * JSON API with the bearer token kept in sessionStorage, live regions refresh themselves
 * (htmx) when an event arrives on /api/v1/events, and charts are drawn from the column
 * arrays of /ui/data/... endpoints. No framework, no build step.
 */
(() => {
  "use strict";
  const KEY = "breadthflow.token";
  const SCOPE_KEY = "breadthflow.scope";
  const BF = (window.BF = {});
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const FINISHED = ["succeeded", "partial", "failed", "cancelled"];

  // --- token ------------------------------------------------------------------------------

  BF.token = () => sessionStorage.getItem(KEY) || "";

  BF.setToken = (token, scope) => {
    sessionStorage.setItem(KEY, token);
    if (scope) sessionStorage.setItem(SCOPE_KEY, scope);
    // Sent only to /ui pages (never to the API, which reads the Authorization header), so
    // a server that requires a token for reads can render pages for this tab.
    document.cookie = `bf_token=${encodeURIComponent(token)}; path=/ui; SameSite=Strict`;
    renderAuth();
  };

  BF.clearToken = () => {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(SCOPE_KEY);
    document.cookie = "bf_token=; path=/ui; SameSite=Strict; max-age=0";
    renderAuth();
  };

  BF.checkToken = async (token) => {
    const res = await fetch("/ui/auth/check", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ token }),
    });
    const data = await res.json().catch(() => ({}));
    if (res.ok && data.ok) sessionStorage.setItem(SCOPE_KEY, data.scope);
    return { ok: res.ok && data.ok, message: data.message || `HTTP ${res.status}`, scope: data.scope };
  };

  function takeUrlToken() {
    // `?token=` logs in (as a notebook server does) and is removed from the address bar.
    const url = new URL(location.href);
    const token = url.searchParams.get("token");
    if (!token) return;
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
    BF.setToken(token);
    BF.checkToken(token).then((r) => {
      if (!r.ok) BF.toast(`token not accepted: ${r.message}`, true);
      renderAuth();
    });
  }

  function renderAuth() {
    const status = $("#auth-status");
    if (!status) return;
    const token = BF.token();
    const scope = sessionStorage.getItem(SCOPE_KEY);
    status.textContent = token ? `token …${token.slice(-4)}${scope ? ` (${scope})` : ""}` : "read-only";
    status.dataset.state = token ? "logged-in" : "anonymous";
    $("#login-link").hidden = !!token;
    $("#logout").hidden = !token;
  }

  // --- API calls and messages -------------------------------------------------------------

  function errorLine(status, data) {
    if (status === 401) return "401 — log in with an API token first (Log in, top right)";
    if (status === 403) return "403 — this token may only read; use a write or admin token";
    let detail = data && typeof data === "object" ? data.detail : data;
    if (Array.isArray(detail)) {
      detail = detail.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ");
    }
    return `${status} — ${typeof detail === "string" ? detail : JSON.stringify(data)}`;
  }

  BF.api = async (method, path, body) => {
    const headers = { Accept: "application/json" };
    const token = BF.token();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      return { ok: false, status: 0, data: null, message: `cannot reach the server: ${err.message}` };
    }
    const text = await res.text();
    let data = text;
    try { data = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
    return { ok: res.ok, status: res.status, data, message: res.ok ? "" : errorLine(res.status, data) };
  };

  BF.getJSON = async (path) => {
    const res = await BF.api("GET", path);
    if (!res.ok) throw new Error(res.message);
    return res.data;
  };

  let toastTimer = null;
  BF.toast = (message, isError) => {
    const el = $("#toast");
    if (!el) return;
    el.textContent = message;
    el.className = isError ? "error" : "";
    el.dataset.state = isError ? "error" : "ok";
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, isError ? 9000 : 4000);
  };

  // Buttons with data-api="METHOD /api/v1/…" call the API and refresh the live regions.
  document.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-api]");
    if (!button) return;
    const [method, path] = button.dataset.api.split(" ");
    if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
    button.disabled = true;
    const res = await BF.api(method, path);
    button.disabled = false;
    BF.toast(res.ok ? `${button.textContent.trim()}: done` : res.message, !res.ok);
    if (res.ok) BF.refreshLive(null);
  });

  // --- live updates -----------------------------------------------------------------------

  const pending = new Map();
  BF.refreshLive = (eventType) => {
    // Elements with an id and data-live="run signal …" are re-fetched (htmx, this page's
    // URL, the same element selected) when an event whose type mentions one of the words
    // arrives, at most once per 700 ms each.
    for (const el of $$("[data-live][id]")) {
      const words = el.dataset.live.split(/\s+/);
      if (eventType && !words.some((w) => eventType.includes(w))) continue;
      if (pending.has(el.id) || !window.htmx) continue;
      pending.set(el.id, setTimeout(() => {
        pending.delete(el.id);
        htmx.ajax("GET", location.pathname + location.search, {
          target: `#${el.id}`, select: `#${el.id}`, swap: "outerHTML",
        });
      }, 700));
    }
  };

  function setLive(state) {
    const dot = $("#live-status");
    if (dot) { dot.dataset.state = state; dot.title = `live updates: ${state}`; }
    BF.liveState = state;
  }

  BF.connectEvents = (params) => {
    if (!window.EventSource) { setLive("off"); return; }
    const query = new URLSearchParams(params || {});
    const url = `/api/v1/events${query.toString() ? `?${query}` : ""}`;
    if (BF.events) BF.events.close();
    const source = new EventSource(url);
    BF.events = source;
    setLive("connecting");
    source.onopen = () => setLive("on");
    source.onerror = () => setLive(source.readyState === EventSource.CLOSED ? "error" : "connecting");
    // The stream sends `event: run|signals|alert|log` with the JSON data of that event
    // (an {id, type, time, source, data} envelope is unwrapped too).
    const handle = (name) => (msg) => {
      let data;
      try { data = JSON.parse(msg.data); } catch (_) { data = { message: msg.data }; }
      let type = name;
      if (data && data.type && data.data && typeof data.data === "object") {
        type = `${data.type} ${name}`;
        data = data.data;
      }
      document.dispatchEvent(new CustomEvent("bf:event", { detail: { name, type, data } }));
      if (!type.includes("log")) BF.refreshLive(type);
    };
    source.onmessage = handle("message");
    for (const name of ["run", "signals", "alert", "log"]) source.addEventListener(name, handle(name));
  };

  // --- charts (uPlot) ---------------------------------------------------------------------

  const COLORS = ["#2458d6", "#d35400", "#1c8a4a", "#8e44ad", "#c0392b", "#16a085"];
  const dpr = () => window.devicePixelRatio || 1;
  const toTime = (iso) => Date.parse(iso.length === 10 ? `${iso}T00:00:00Z` : iso) / 1000;
  const widthOf = (el) => Math.max(320, (el.parentElement || el).clientWidth - 24);

  function markersPlugin(markers) {
    // ▲ BUY below the plot's floor, ▼ SELL under its top, ◆ thrust in the middle band.
    return {
      hooks: {
        draw: [(u) => {
          const ctx = u.ctx;
          const s = 5 * dpr();
          ctx.save();
          for (const m of markers) {
            const x = u.valToPos(m.t, "x", true);
            if (!(x >= u.bbox.left && x <= u.bbox.left + u.bbox.width)) continue;
            let y;
            if (m.y != null) y = u.valToPos(m.y, "y", true) + (m.kind === "BUY" ? 2 * s : -2 * s);
            else if (m.kind === "BUY") y = u.bbox.top + u.bbox.height - s;
            else if (m.kind === "SELL") y = u.bbox.top + s;
            else y = u.bbox.top + u.bbox.height / 2;
            ctx.fillStyle = m.kind === "BUY" ? "#1c8a4a" : m.kind === "SELL" ? "#c0392b" : "#8e44ad";
            ctx.beginPath();
            if (m.kind === "BUY") { ctx.moveTo(x, y - s); ctx.lineTo(x - s, y + s); ctx.lineTo(x + s, y + s); }
            else if (m.kind === "SELL") { ctx.moveTo(x, y + s); ctx.lineTo(x - s, y - s); ctx.lineTo(x + s, y - s); }
            else { ctx.moveTo(x, y - s); ctx.lineTo(x + s, y); ctx.lineTo(x, y + s); ctx.lineTo(x - s, y); }
            ctx.closePath();
            ctx.fill();
          }
          ctx.restore();
        }],
      },
    };
  }

  function levelsPlugin(levels, scale) {
    return {
      hooks: {
        draw: [(u) => {
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = "#9aa3b5";
          ctx.setLineDash([4 * dpr(), 4 * dpr()]);
          ctx.lineWidth = dpr();
          for (const v of levels) {
            const y = u.valToPos(v, scale || "y", true);
            ctx.beginPath(); ctx.moveTo(u.bbox.left, y); ctx.lineTo(u.bbox.left + u.bbox.width, y); ctx.stroke();
          }
          ctx.restore();
        }],
      },
    };
  }

  function candlesPlugin() {
    // Series 1-4 are open, high, low, close (drawn as nothing; they set the y range and
    // the legend); this draws a wick and a body per bar.
    return {
      hooks: {
        draw: [(u) => {
          const [xs, o, h, l, c] = u.data;
          const ctx = u.ctx;
          const body = Math.max(dpr(), Math.min(12 * dpr(), (u.bbox.width / Math.max(1, xs.length)) * 0.7));
          ctx.save();
          for (let i = 0; i < xs.length; i++) {
            if (o[i] == null || c[i] == null) continue;
            const x = u.valToPos(xs[i], "x", true);
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
            const [yo, yh, yl, yc] = [o[i], h[i], l[i], c[i]].map((v) => u.valToPos(v, "y", true));
            ctx.fillStyle = c[i] >= o[i] ? "#1c8a4a" : "#c0392b";
            ctx.fillRect(Math.round(x - dpr() / 2), yh, dpr(), yl - yh);
            ctx.fillRect(Math.round(x - body / 2), Math.min(yo, yc), body, Math.max(dpr(), Math.abs(yc - yo)));
          }
          ctx.restore();
        }],
      },
    };
  }

  function compact(v) {
    // Axis ticks that fit: 125k, 1.2M; small values as they are.
    if (v == null) return "";
    const a = Math.abs(v);
    if (a >= 1e6) return `${(v / 1e6).toFixed(a >= 1e7 ? 0 : 1)}M`;
    if (a >= 1e4) return `${(v / 1e3).toFixed(0)}k`;
    return String(Number(v.toPrecision(6)));
  }

  BF.chart = (el, x, series, opts = {}) => {
    // series: [{label, values, color?, scale?, points?, width?, hidden?}]
    el.innerHTML = "";
    const scales = { x: { time: opts.time !== false } };
    const axes = [{}];
    const used = [];
    for (const s of series) {
      const scale = s.scale || "y";
      if (!used.includes(scale)) {
        used.push(scale);
        scales[scale] = opts.ranges && opts.ranges[scale] ? { range: opts.ranges[scale] } : {};
        axes.push({ scale, side: used.length === 1 ? 3 : 1, grid: { show: used.length === 1 }, size: 60,
          values: (u, ticks) => ticks.map(compact) });
      }
    }
    const plot = new uPlot({
      width: widthOf(el),
      height: opts.height || 220,
      cursor: opts.sync ? { sync: { key: opts.sync } } : {},
      scales,
      axes,
      bands: opts.bands || [],
      plugins: opts.plugins || [],
      series: [{ label: opts.xLabel || "date" }].concat(series.map((s, i) => ({
        label: s.label,
        scale: s.scale || "y",
        stroke: s.color || COLORS[i % COLORS.length],
        width: s.width || 1.5,
        fill: s.fill,
        show: !s.hidden,
        paths: s.noPath ? () => null : undefined,
        points: s.points ? { show: true, size: 5, fill: s.color } : { show: false },
        value: s.format,
      }))),
    }, [x].concat(series.map((s) => s.values)), el);
    el.dataset.points = String(x.length);
    BF.charts = (BF.charts || []).filter((c) => c.root.isConnected);
    BF.charts.push(plot);
    return plot;
  };

  window.addEventListener("resize", () => {
    for (const plot of BF.charts || []) {
      if (plot.root.isConnected) plot.setSize({ width: widthOf(plot.root.parentElement), height: plot.height });
    }
  });

  const markersOf = (list) => list.map((m) => ({ t: toTime(m.date), kind: m.signal_type }));

  // --- pages --------------------------------------------------------------------------------

  BF.breadthPage = () => {
    const form = $("#breadth-form");
    const status = $("#breadth-status");
    const load = async () => {
      const params = new URLSearchParams(new FormData(form));
      history.replaceState(null, "", `?${params}`);
      status.textContent = "loading…";
      status.dataset.state = "loading";
      let data;
      try {
        data = await BF.getJSON(`/ui/data/breadth?${params}`);
      } catch (err) {
        status.textContent = err.message;
        status.dataset.state = "error";
        status.className = "error";
        return;
      }
      status.className = "muted";
      const c = data.columns;
      const x = c.date.map(toTime);
      const signals = markersOf(data.markers);
      const thrusts = data.thrusts.map((d) => ({ t: toTime(d), kind: "THRUST" }));
      const sync = "breadth";
      BF.chart($("#c-ad"), x, [{ label: "A/D line", values: c.ad_line }],
        { sync, plugins: [markersPlugin(signals.concat(thrusts))] });
      BF.chart($("#c-mcc"), x, [
        { label: "McClellan osc", values: c.mcclellan_osc },
        { label: "ratio-adjusted", values: c.mcclellan_osc_ratio, hidden: true },
        { label: "summation", values: c.mcclellan_sum, scale: "sum", color: "#8e44ad" },
      ], { sync, plugins: [levelsPlugin([0])] });
      BF.chart($("#c-pct"), x, [
        { label: "% > SMA20", values: c.pct_above_sma20 },
        { label: "% > SMA50", values: c.pct_above_sma50 },
        { label: "% > SMA200", values: c.pct_above_sma200 },
      ], { sync });
      BF.chart($("#c-hl"), x, [
        { label: "new highs", values: c.new_highs, color: "#1c8a4a" },
        { label: "new lows", values: c.new_lows, color: "#c0392b" },
        { label: "high-low index", values: c.hl_index, scale: "hli", color: "#6b7385", hidden: true },
      ], { sync });
      BF.chart($("#c-trin"), x, [{ label: "TRIN", values: c.trin }], { sync, plugins: [levelsPlugin([1])] });
      BF.chart($("#c-zbt"), x, [{ label: "ZBT", values: c.zbt }],
        { sync, plugins: [levelsPlugin([0.4, 0.615]), markersPlugin(thrusts)] });
      status.textContent = `${x.length} dates · ${data.universe} · ${data.start} → ${data.end} · ` +
        `high/low window ${data.hl_window} · ${data.markers.length} BUY/SELL signals · ${data.thrusts.length} thrust days`;
      status.dataset.state = "ready";
    };
    form.addEventListener("submit", (e) => { e.preventDefault(); load(); });
    for (const b of $$("[data-range]", form)) {
      b.addEventListener("click", () => {
        const end = form.end.value ? new Date(`${form.end.value}T00:00:00Z`) : new Date();
        if (b.dataset.range === "all") { form.start.value = ""; form.end.value = ""; }
        else {
          const start = new Date(end.getTime() - Math.ceil(Number(b.dataset.range) * 7 / 5) * 86400e3);
          form.start.value = start.toISOString().slice(0, 10);
        }
        load();
      });
    }
    load();
    BF.connectEvents();
  };

  BF.signalsPage = () => {
    const el = $("#c-candles");
    const status = $("#candle-status");
    const load = async (symbol) => {
      if (!symbol) { status.textContent = "no symbol to chart"; return; }
      $("#candle-symbol").textContent = symbol;
      const params = new URLSearchParams({ symbol });
      for (const [k, name] of [["strategy", "strategy"], ["since", "start"], ["until", "end"]]) {
        if (el.dataset[k]) params.set(name, el.dataset[k]);
      }
      status.textContent = "loading…";
      status.dataset.state = "loading";
      let data;
      try { data = await BF.getJSON(`/ui/data/candles?${params}`); } catch (err) {
        el.innerHTML = "";
        status.textContent = err.message;
        status.dataset.state = "error";
        return;
      }
      const c = data.columns;
      const x = c.date.map(toTime);
      const byDate = new Map(c.date.map((d, i) => [d, i]));
      const marks = data.markers.filter((m) => byDate.has(m.date)).map((m) => {
        const i = byDate.get(m.date);
        return { t: x[i], kind: m.signal_type, y: m.signal_type === "BUY" ? c.low[i] : c.high[i] };
      });
      BF.chart(el, x, [
        { label: "open", values: c.open, noPath: true },
        { label: "high", values: c.high, noPath: true },
        { label: "low", values: c.low, noPath: true },
        { label: "close", values: c.close, noPath: true },
      ], { height: 320, plugins: [candlesPlugin(), markersPlugin(marks)] });
      status.textContent = `${x.length} bars · ${marks.length} BUY/SELL signals`;
      status.dataset.state = "ready";
    };
    document.addEventListener("click", (e) => {
      const link = e.target.closest(".chart-link");
      if (!link) return;
      e.preventDefault();
      load(link.dataset.symbol);
      el.scrollIntoView({ behavior: "smooth", block: "center" });
    });
    load(el.dataset.symbol);
    BF.connectEvents();
  };

  BF.runsPage = async () => {
    BF.connectEvents();
    const el = $("#c-runs");
    const params = new URLSearchParams();
    if (el.dataset.pipeline) params.set("pipeline", el.dataset.pipeline);
    try {
      const data = await BF.getJSON(`/ui/data/runs?${params}`);
      const c = data.columns;
      if (!c.time.length) { el.textContent = "no finished runs yet"; return; }
      BF.chart(el, c.time, [
        { label: "duration (s)", values: c.duration, points: true, noPath: true, color: "#2458d6" },
        { label: `success rate (last ${data.window})`, values: c.success_rate, scale: "rate", color: "#1c8a4a",
          format: (u, v) => (v == null ? "—" : `${(v * 100).toFixed(0)}%`) },
      ], { ranges: { rate: [0, 1] } });
    } catch (err) { el.textContent = err.message; }
  };

  BF.runPage = () => {
    const log = $("#run-log");
    const runId = log.dataset.runId;
    let lastId = Number(log.dataset.lastId || 0);
    const state = $("#log-state");
    const append = (line) => {
      if (line.id && line.id <= lastId) return;
      if (line.id) lastId = line.id;
      const span = document.createElement("span");
      span.className = `lv-${line.level || "INFO"}`;
      const time = (line.time || "").slice(11, 19);
      span.textContent = `${time} ${(line.level || "INFO").padEnd(7)} ${line.step ? `[${line.step}] ` : ""}${line.message}`;
      span.dataset.logId = String(line.id || "");
      const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
      log.appendChild(span);
      if (atBottom) log.scrollTop = log.scrollHeight;
    };
    document.addEventListener("bf:event", (e) => {
      const data = e.detail.data || {};
      if (e.detail.type.includes("log") && data.run_id === runId) append(data);
    });
    BF.connectEvents({ run_id: runId });
    // Catch up by polling while the run is not finished: every 2 s without the event
    // stream, every 10 s with it (the stream may have started after some lines).
    let status = log.dataset.status;
    const poll = async () => {
      try {
        const data = await BF.getJSON(`/ui/data/runs/${encodeURIComponent(runId)}/logs?after_id=${lastId}`);
        data.lines.forEach(append);
        if (data.status !== status) { status = data.status; BF.refreshLive("run"); }
      } catch (_) { /* next round */ }
      if (FINISHED.includes(status)) { state.textContent = `run ${status}`; state.dataset.state = "done"; return; }
      state.textContent = BF.liveState === "on" ? "live" : "following (polling)";
      state.dataset.state = "following";
      setTimeout(poll, BF.liveState === "on" ? 10000 : 2000);
    };
    log.scrollTop = log.scrollHeight;
    if (FINISHED.includes(status)) { state.textContent = `run ${status}`; state.dataset.state = "done"; }
    else poll();
  };

  BF.backtestPage = async () => {
    const box = $("#bt-charts");
    if (box.dataset.equity !== "true" && box.dataset.fan !== "true") return;
    let data;
    try { data = await BF.getJSON(`/ui/data/backtests/${box.dataset.id}`); } catch (err) {
      box.textContent = err.message; return;
    }
    if (data.equity) {
      const x = data.equity.date.map(toTime);
      BF.chart($("#c-equity"), x, [{ label: "equity", values: data.equity.equity }], { sync: "bt" });
      BF.chart($("#c-drawdown"), x, [{ label: "drawdown %", values: data.equity.drawdown_pct, color: "#c0392b",
        fill: "rgba(192,57,43,.15)" }], { sync: "bt", height: 160 });
    }
    if (data.fan) {
      const f = data.fan;
      BF.chart($("#c-fan"), f.step, [
        { label: "p5", values: f.p5, color: "#9aa3b5", width: 1 },
        { label: "p25", values: f.p25, color: "#5b86e5", width: 1 },
        { label: "median", values: f.p50, color: "#2458d6", width: 2 },
        { label: "p75", values: f.p75, color: "#5b86e5", width: 1 },
        { label: "p95", values: f.p95, color: "#9aa3b5", width: 1 },
      ], {
        time: false, xLabel: "step",
        bands: [{ series: [5, 1], fill: "rgba(36,88,214,.08)" }, { series: [4, 2], fill: "rgba(36,88,214,.16)" }],
      });
    }
  };

  BF.scannerPage = () => {
    const form = $("#scan-form");
    const check = $("#scan-check");
    const result = $("#scan-result");
    let timer = null;
    let seq = 0;
    const runCheck = async () => {
      const mine = ++seq;
      const data = await BF.getJSON(`/ui/data/scan/check?formula=${encodeURIComponent(form.formula.value)}`)
        .catch((err) => ({ ok: false, error: err.message }));
      if (mine !== seq) return;
      check.dataset.state = data.ok ? "ok" : "error";
      check.className = data.ok ? "ok" : "error";
      if (data.ok) {
        check.textContent = `✓ valid${data.values.length ? ` — values: ${data.values.join(", ")}` : ""}` +
          `${data.needs_breadth ? " — uses market breadth" : ""}`;
      } else {
        check.textContent = data.error;
        if (data.line && data.column) {
          const line = form.formula.value.split("\n")[data.line - 1] || "";
          check.textContent += `\n${line}\n${" ".repeat(Math.max(0, data.column - 1))}^`;
          check.style.whiteSpace = "pre";
          check.style.fontFamily = "ui-monospace, monospace";
        }
      }
    };
    form.formula.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(runCheck, 250); });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = {
        formula: form.formula.value,
        universe: form.universe.value.trim() || undefined,
        start: form.start.value || undefined,
        end: form.end.value || undefined,
        latest: form.latest.checked,
      };
      result.textContent = "scanning…";
      result.className = "muted";
      result.dataset.state = "running";
      const res = await BF.api("POST", "/api/v1/scans", body);
      if (!res.ok) { result.textContent = res.message; result.className = "error"; result.dataset.state = "error"; return; }
      const id = res.data && (res.data.id || (res.data.scan && res.data.scan.id));
      result.textContent = `scan #${id}: ${res.data.matches ? res.data.matches.length : "?"} matches`;
      result.className = "ok";
      result.dataset.state = "done";
      if (id) location.href = `/ui/scanner?scan=${id}`;
    });
    runCheck();
  };

  BF.commandsPage = () => {
    const output = $("#command-output");
    const entry = (title, res) => {
      const div = document.createElement("div");
      div.className = `entry${res && !res.ok ? " error" : ""}`;
      div.dataset.testid = "command-entry";
      div.dataset.state = res ? (res.ok ? "ok" : "error") : "running";
      const when = new Date().toISOString().slice(11, 19);
      let body = "";
      if (res) body = res.ok ? JSON.stringify(res.data, null, 2) : res.message;
      if (body.length > 6000) body = `${body.slice(0, 6000)}\n… (${body.length} characters)`;
      div.textContent = `${when} ${title}${res ? ` → ${res.ok ? "ok" : "failed"}` : " …"}\n${body}`;
      output.prepend(div);
      return div;
    };
    const execute = async (command, parameters) => {
      const running = entry(`${command} ${JSON.stringify(parameters)}`);
      const res = await BF.api("POST", "/api/v1/commands/execute", { command, parameters });
      running.remove();
      entry(`${command} ${JSON.stringify(parameters)}`, res);
      return res;
    };
    for (const form of $$("form[data-command]")) {
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const parameters = {};
        for (const [k, v] of new FormData(form)) if (String(v).trim()) parameters[k] = String(v).trim();
        const button = $("button", form);
        button.disabled = true;
        await execute(form.dataset.command, parameters);
        button.disabled = false;
      });
    }
    for (const button of $$("button[data-flow]")) {
      button.addEventListener("click", async () => {
        const universe = button.dataset.universe;
        const period = { start: "2009-08-21", end: "2010-08-20" };
        const steps = [
          ["data_fetch", { provider: "sample", universe, ...period }],
          // The sample is one year long: a 50-day high/low window fills, 252 would not.
          ["signal_generate", { strategy: "breadth_composite", universe, hl_window: 50, ...period }],
          ["backtest_run", { strategy: "breadth_composite", universe, hl_window: 50, ...period }],
        ];
        $$("button[data-flow]").forEach((b) => { b.disabled = true; });
        for (const [command, parameters] of steps) {
          const res = await execute(command, parameters);
          if (!res.ok) break;
        }
        $$("button[data-flow]").forEach((b) => { b.disabled = false; });
      });
    }
    $("#output-clear").addEventListener("click", () => { output.innerHTML = ""; });
  };

  // /health is read the same way by the Infrastructure and Triggers pages: components may
  // be a mapping or a list, and each says ok through `status` or `ok`.
  function components(health) {
    const found = {};
    const source = health && (health.components || health.checks || health.backends || health);
    if (Array.isArray(source)) {
      for (const c of source) if (c && c.name) found[c.name] = c;
    } else if (source && typeof source === "object") {
      for (const [k, v] of Object.entries(source)) if (v && typeof v === "object") found[k] = v;
    }
    return found;
  }
  const ALIASES = {
    database: ["database", "db", "metadata_db"], lake: ["lake", "storage"], bus: ["bus", "event_bus", "events"],
    executor: ["executor", "queue"], engine: ["engine", "compute"], dispatcher: ["dispatcher", "triggers"],
    workers: ["workers", "worker"],
  };
  function component(health, key) {
    const all = components(health);
    for (const name of ALIASES[key] || [key]) if (all[name]) return all[name];
    return null;
  }
  function stateOf(c) {
    if (!c) return "unknown";
    if (typeof c.ok === "boolean") return c.ok ? "ok" : "down";
    const s = String(c.status || c.state || "").toLowerCase();
    if (["ok", "up", "healthy", "running", "alive"].includes(s)) return "ok";
    if (s === "degraded") return "degraded";
    if (["disabled", "off", "not running", "stopped"].includes(s)) return "off";
    return s ? "down" : "unknown";
  }
  function describe(c) {
    // A check of /health: {name, status, detail, latency_ms, info}.
    const parts = [stateOf(c)];
    if (c.detail) parts.push(c.detail);
    if (c.latency_ms != null) parts.push(`${c.latency_ms} ms`);
    return parts.join(" — ");
  }
  async function fetchHealth() {
    const res = await BF.api("GET", "/health");
    // A 503 still carries the per-component report.
    if (res.data && typeof res.data === "object") return res.data;
    throw new Error(res.message || "no /health");
  }

  BF.infraPage = () => {
    const overall = $("#health-state");
    const refresh = async () => {
      let health;
      try { health = await fetchHealth(); } catch (err) {
        overall.textContent = `health unavailable: ${err.message}`;
        overall.dataset.state = "error";
        return;
      }
      $("#health-raw").textContent = JSON.stringify(health, null, 2);
      overall.textContent = `overall: ${health.status || "?"} (checked ${new Date().toLocaleTimeString()})`;
      overall.dataset.state = String(health.status || "unknown");
      for (const node of $$(".node[data-component]")) {
        const c = component(health, node.dataset.component);
        const state = stateOf(c);
        node.dataset.state = state;
        $(".dot", node).dataset.state = state;
        $(".health-detail", node).textContent = c ? describe(c) : "configured (no health check of its own)";
      }
      const lines = ["runner", "workers"].map((k) => [k, component(health, k)]).filter(([, c]) => c)
        .map(([k, c]) => `${k}: ${describe(c)}`);
      $("#health-workers").textContent = lines.join("\n");
      $("#health-workers").dataset.state = stateOf(component(health, "runner"));
    };
    refresh();
    setInterval(refresh, 10000);
  };

  BF.triggersPage = () => {
    const badge = $("#dispatcher-state");
    const note = $("#dispatcher-note");
    const metrics = $("#dispatcher-metrics");
    const refresh = async () => {
      let health = null;
      try { health = await fetchHealth(); } catch (_) { /* shown below */ }
      const d = health ? component(health, "dispatcher") : null;
      const state = stateOf(d);
      if (!d || state !== "ok" || !(d.info && d.info.running)) {
        badge.textContent = "not running";
        badge.dataset.state = "not-running";
        badge.className = "badge s-disabled";
        note.textContent = health
          ? "The trigger dispatcher is not running in this deployment, so there are no live counters. " +
            "Start it with `breadthflow serve` (or its own process); the tables below come from stored runs."
          : "Health endpoint unavailable — cannot tell whether the dispatcher runs.";
        metrics.hidden = true;
        return;
      }
      badge.textContent = "running";
      badge.dataset.state = "running";
      badge.className = "badge s-ok";
      note.textContent = `Live counters from the dispatcher since it started${d.detail ? ` — ${d.detail}` : ""}:`;
      metrics.innerHTML = "";
      const counters = d.info || d.metrics || d;
      const add = (label, value, key) => {
        const dt = document.createElement("dt"); dt.textContent = label;
        const dd = document.createElement("dd"); dd.textContent = value; dd.dataset.metric = key;
        metrics.append(dt, dd);
      };
      for (const [k, v] of Object.entries(counters)) {
        if (["status", "ok", "name", "detail", "latency_ms"].includes(k) || (v && typeof v === "object")) continue;
        const shown = v == null ? "—" : (k.includes("latency") ? `${(v * 1000).toFixed(1)} ms` : String(v));
        add(k.replace(/_/g, " "), shown, k);
      }
      // Success rate by signal type: enqueued / received per signal word.
      for (const [word, c] of Object.entries(counters.by_signal || {})) {
        const rate = c.received ? `${((c.enqueued / c.received) * 100).toFixed(1)}%` : "—";
        add(`${word}: enqueued / received`, `${c.enqueued} / ${c.received} (${rate})`, `by_signal_${word}`);
      }
      metrics.hidden = false;
    };
    refresh();
    setInterval(refresh, 5000);
    BF.connectEvents();
  };

  BF.pipelineForm = () => {
    const form = $("#pipeline-form");
    const errorLine = $("#pf-error-line");
    const editing = form.dataset.edit;
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      errorLine.textContent = "";
      const list = (v) => v.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
      let parameters;
      try { parameters = JSON.parse(form.parameters.value || "{}"); } catch (err) {
        errorLine.textContent = `parameters: not valid JSON — ${err.message}`; return;
      }
      const retry = JSON.parse(form.dataset.retry || "{}");
      const body = {
        name: form.name.value.trim(),
        kind: form.kind.value,
        mode: form.mode.value,
        universe: form.universe.value.trim() || null,
        symbols: list(form.symbols.value),
        provider: form.provider.value.trim() || "sample",
        trigger_mode: form.trigger_mode.value,
        schedule: form.schedule.value.trim() || null,
        timezone: form.timezone.value.trim() || "UTC",
        scanner_tickers: list(form.scanner_tickers.value),
        error_policy: form.error_policy.value,
        retry_policy: { ...retry, max_attempts: Number(form.max_attempts.value || 3) },
        parameters,
        is_active: form.is_active.checked,
      };
      const submit = $("button[type=submit]", form);
      submit.disabled = true;
      let res;
      if (editing) {
        delete body.name;
        res = await BF.api("PATCH", `/api/v1/pipelines/${encodeURIComponent(editing)}`, body);
      } else {
        res = await BF.api("POST", "/api/v1/pipelines", body);
      }
      submit.disabled = false;
      if (!res.ok) { errorLine.textContent = res.message; return; }
      location.href = "/ui/pipelines";
    });
  };

  // A deferred script runs once the document is parsed, before the pages' own
  // DOMContentLoaded handlers: take a `?token=` first so they already see it.
  takeUrlToken();
  renderAuth();
  const logout = $("#logout");
  if (logout) logout.addEventListener("click", () => { BF.clearToken(); BF.toast("logged out"); });
  if (["overview", "pipelines", "backtests", "scanner"].includes(document.body.dataset.page)) {
    BF.connectEvents();
  }
})();
