// report.html: draws the inlined REPORT data with the dashboard's chart component.
"use strict";

(() => {
  const fmt = (v, d) => Number(v).toLocaleString("en-US",
    { minimumFractionDigits: d, maximumFractionDigits: d });
  const time = s => esc(String(s).replace("T", " ").replace(/\.000Z$|Z$/, " UTC"));
  const esc = s => String(s ?? "").replace(/[&<>"']/g,
    c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const charts = document.getElementById("charts");
  for (const [symbol, candles] of Object.entries(REPORT.candles)) {
    const fills = REPORT.fills.filter(f => f.symbol === symbol);
    const panel = document.createElement("div");
    panel.className = "panel";
    panel.innerHTML = `<h2><span>${esc(symbol)}</span><span class="dim">${candles.length} bars, ` +
      `${fills.length} fills</span></h2><div class="chart" data-symbol="${esc(symbol)}"></div>`;
    charts.appendChild(panel);
    TraderCharts.candles(panel.querySelector(".chart")).update(candles, fills, true);
  }
  TraderCharts.line(document.getElementById("equity-chart")).update(REPORT.equity, true);
  TraderCharts.line(document.getElementById("drawdown-chart"),
    { color: TraderCharts.COLORS.drawdown, precision: 2 }).update(REPORT.drawdown, true);
  const rows = REPORT.fills.slice(0, REPORT.fill_rows);
  document.getElementById("fills-note").textContent = REPORT.fills.length > rows.length
    ? `(first ${rows.length} of ${REPORT.fills.length}; all are on the charts)` : `(${rows.length})`;
  const cols = ["time", "symbol", "side", "amount", "price", "fee"];
  document.getElementById("fills").innerHTML =
    "<tr>" + cols.map(c => `<th class="${c === "time" || c === "symbol" || c === "side" ? "" : "num"}">${c}</th>`).join("") + "</tr>" +
    (rows.length ? rows.map(f => `<tr><td>${time(f.time)}</td><td>${esc(f.symbol)}</td>` +
      `<td class="${esc(f.side)}">${esc(f.side.toUpperCase())}</td><td class="num">${esc(f.amount)}</td>` +
      `<td class="num">${fmt(f.price, 2)}</td><td class="num">${fmt(f.fee, 4)} ${esc(f.fee_asset)}</td></tr>`).join("")
      : `<tr><td class="empty" colspan="6">no fills</td></tr>`);
})();
