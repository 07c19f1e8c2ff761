// The live dashboard: polls /api/dashboard every second (the full chart history on the first
// answer, after a reconnect, when the session changes and every few minutes; the tail
// otherwise) and renders it. Read-only.
"use strict";

(() => {
  const POLL_MS = 1000;
  const FULL_EVERY_MS = 5 * 60 * 1000;
  const $ = id => document.getElementById(id);
  const esc = s => String(s ?? "").replace(/[&<>"']/g,
    c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  function num(v, digits) {
    if (v === null || v === undefined || v === "") return "–";
    const x = Number(v);
    if (!isFinite(x)) return esc(v);
    if (digits === undefined) {
      const a = Math.abs(x);
      digits = a >= 1000 ? 2 : a >= 1 ? 4 : a === 0 ? 2 : 6;
    }
    return x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }
  const signed = (v, d) => {
    if (v === null || v === undefined) return "–";
    const x = Number(v);
    return `<span class="${x > 0 ? "pos" : x < 0 ? "neg" : ""}">${x > 0 ? "+" : ""}${num(v, d)}</span>`;
  };
  const time = t => new Date(t * 1000).toISOString().slice(11, 19);
  const age = s => s === null || s === undefined ? "–" : s < 60 ? `${num(s, 1)} s`
    : s < 3600 ? `${Math.floor(s / 60)} m ${Math.round(s % 60)} s` : `${num(s / 3600, 1)} h`;
  function duration(s) {
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
    const m = Math.floor(s % 3600 / 60), sec = Math.floor(s % 60);
    return d ? `${d}d ${h}h ${m}m` : h ? `${h}h ${m}m` : `${m}m ${sec}s`;
  }

  // columns: [header, cell(row) -> html, "num"?]
  function table(id, columns, rows, empty) {
    const head = "<tr>" + columns.map(c => `<th class="${c[2] || ""}">${c[0]}</th>`).join("") + "</tr>";
    const body = rows.length ? rows.map(r => "<tr>" + columns.map(
      c => `<td class="${c[2] || ""}">${c[1](r)}</td>`).join("") + "</tr>").join("")
      : `<tr><td class="empty" colspan="${columns.length}">${empty}</td></tr>`;
    $(id).innerHTML = head + body;
  }
  const side = s => `<span class="${s}">${s.toUpperCase()}</span>`;

  const charts = {};
  let equityChart = null;
  let session = null, needFull = true, lastFull = 0, failures = 0;

  function marketChart(symbol) {
    if (charts[symbol]) return charts[symbol];
    const panel = document.createElement("div");
    panel.className = "panel";
    panel.innerHTML = `<h2><span>${esc(symbol)}</span><span class="px" data-px></span></h2>` +
      `<div class="chart" data-symbol="${esc(symbol)}"></div>`;
    $("charts").appendChild(panel);
    const c = TraderCharts.candles(panel.querySelector(".chart"));
    c.price = panel.querySelector("[data-px]");
    charts[symbol] = c;
    return c;
  }

  function renderHeader(h) {
    $("name").textContent = h.name || "trader";
    $("exchange").textContent = `${h.exchange} · session ${h.session}`;
    document.title = `${h.name} · ${h.mode.toUpperCase()} · ${h.trading_state}`;
    const mode = $("mode");
    mode.textContent = h.mode === "live" ? "LIVE — real orders" : `${h.mode} trading`;
    mode.className = `badge ${h.mode}`;
    document.body.classList.toggle("live", h.mode === "live");
    const st = $("state");
    st.textContent = `trading ${h.trading_state}`;
    st.className = `badge ${h.trading_state}`;
    $("uptime").textContent = duration(h.uptime_s);
    $("rate").textContent = num(h.events_per_s, 1);
    $("queue").textContent = h.queue_depth;
    const halts = $("halts");
    halts.hidden = !h.halts.length;
    halts.innerHTML = h.halts.length ? "Trading halted — " + h.halts.map(
      x => `<b>${esc(x.cause)}</b>: ${esc(x.reason)}`).join(" · ") : "";
  }

  function render(doc) {
    renderHeader(doc.header);
    $("equity").textContent = num(doc.equity_usd, 2);
    $("realized").innerHTML = signed(doc.pnl.realized_usd, 2);
    $("unrealized").innerHTML = signed(doc.pnl.unrealized_usd, 2);
    $("nopen").textContent = doc.orders.length;
    table("balances", [
      ["Asset", b => esc(b.asset)], ["Free", b => num(b.free), "num"],
      ["Used", b => num(b.used), "num"], ["Total", b => num(b.total), "num"],
      ["USD", b => num(b.usd, 2), "num"],
    ], doc.balances, "no balances yet");
    table("positions", [
      ["Market", p => esc(p.symbol)], ["Amount", p => num(p.amount), "num"],
      ["Avg price", p => num(p.avg_price, 2), "num"], ["Mark", p => num(p.mark, 2), "num"],
      ["Unrealized", p => signed(p.unrealized, 2), "num"],
      ["Realized", p => signed(p.realized, 2), "num"],
    ], doc.positions, "flat");
    table("markets", [
      ["Market", m => esc(m.symbol)], ["Price", m => num(m.price, 2), "num"],
      ["Bid", m => num(m.bid, 2), "num"], ["Ask", m => num(m.ask, 2), "num"],
      ["Data age", m => age(m.data_age_s), "num"],
    ], doc.markets, "no markets");
    table("feeds", [
      ["Feed", f => esc(f.feed)],
      ["State", f => `<span class="${f.state === "connected" ? "ok" : "bad"}">${esc(f.state)}</span>`],
      ["For", f => age(f.since_s), "num"], ["Last message", f => age(f.message_age_s), "num"],
      ["Reconnects", f => f.reconnects, "num"],
      ["Last error", f => f.last_error ? `${esc(f.last_error)} (${age(f.last_error_age_s)} ago)` : "–"],
    ], doc.feeds, "no feed events yet");
    table("orders", [
      ["Market", o => esc(o.symbol)], ["Side", o => side(o.side)], ["Type", o => esc(o.type)],
      ["Amount", o => num(o.amount), "num"], ["Price", o => num(o.price, 2), "num"],
      ["Filled", o => num(o.filled), "num"], ["Status", o => esc(o.status)],
      ["Strategy", o => esc(o.external ? "external" : o.strategy)],
    ], doc.orders, "no open orders");
    table("fills", [
      ["Time", f => time(f.t)], ["Market", f => esc(f.symbol)], ["Side", f => side(f.side)],
      ["Amount", f => num(f.amount), "num"], ["Price", f => num(f.price, 2), "num"],
      ["Fee", f => `${num(f.fee)} ${esc(f.fee_asset)}`, "num"], ["Order", f => esc(f.order)],
    ], doc.fills, "no fills yet");
    table("signals", [
      ["Time", s => time(s.t)], ["Strategy", s => esc(s.strategy)],
      ["Signal", s => esc(s.kind.toUpperCase())], ["Note", s => esc(s.note)],
    ], doc.signals, "no signals yet");
    table("denials", [
      ["Time", d => time(d.t)], ["Strategy", d => esc(d.strategy)], ["Side", d => side(d.side)],
      ["Amount", d => num(d.amount), "num"], ["Reason", d => esc(d.reason)],
    ], doc.denials, "no denials");
    for (const [symbol, data] of Object.entries(doc.charts)) {
      const c = marketChart(symbol);
      c.update(data.candles, data.markers, doc.full);
      const m = doc.markets.find(x => x.symbol === symbol);
      c.price.textContent = m && m.price ? num(m.price, 2) : "";
    }
    if (!equityChart) equityChart = TraderCharts.line($("equity-chart"));
    equityChart.update(doc.equity, doc.full);
    $("nfills").textContent = doc.fills_total;
  }

  function setConnected(ok) {
    const conn = $("conn");
    conn.className = `conn ${ok ? "ok" : "bad"}`;
    conn.textContent = ok ? "live" : "reconnecting…";
    $("reconnecting").hidden = ok;
  }

  async function poll() {
    const full = needFull || Date.now() - lastFull > FULL_EVERY_MS;
    try {
      const resp = await fetch(`/api/dashboard${full ? "?full=1" : ""}`, { cache: "no-store" });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      const doc = await resp.json();
      if (!doc.full && doc.header.session !== session) {
        needFull = true;  // the process restarted: take its whole history
      } else {
        session = doc.header.session;
        render(doc);
        if (doc.full) { needFull = false; lastFull = Date.now(); }
      }
      failures = 0;
      setConnected(true);
    } catch (err) {
      failures += 1;
      needFull = true;
      setConnected(false);
    }
    setTimeout(poll, needFull && failures === 0 ? 0 : POLL_MS);
  }
  poll();
})();
