// The chart component shared by the live dashboard and the HTML reports: candles with our fills
// as buy/sell markers, and line/area curves (equity, drawdown), drawn with the vendored
// TradingView lightweight-charts standalone build (window.LightweightCharts).
"use strict";

const TraderCharts = (() => {
  const COLORS = {
    bg: "#0f141c", text: "#aab4c3", grid: "#1c2430", up: "#22c55e", down: "#ef4444",
    buy: "#38bdf8", sell: "#f59e0b", equity: "#60a5fa", drawdown: "#f87171",
  };
  // Points kept per series; older ones are trimmed (the dashboard reloads the full, server-side
  // bounded history every few minutes, so a page open for days stays small).
  const MAX_BARS = 1200, MAX_LINE = 5000;

  function baseOptions(el) {
    return {
      autoSize: true,
      layout: { background: { type: "solid", color: COLORS.bg }, textColor: COLORS.text,
                fontFamily: "Inter, system-ui, sans-serif", fontSize: 11 },
      grid: { vertLines: { color: COLORS.grid }, horzLines: { color: COLORS.grid } },
      rightPriceScale: { borderColor: COLORS.grid },
      timeScale: { borderColor: COLORS.grid, timeVisible: true, secondsVisible: true },
      crosshair: { mode: 0 },
      handleScroll: true, handleScale: true,
    };
  }

  // Index of the last bar starting at or before t (bars sorted by time), -1 when none.
  function barAt(times, t) {
    let lo = 0, hi = times.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (times[mid] <= t) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found;
  }

  // A candlestick chart with fill markers. update(candles, fills, replace) takes
  // [[t, o, h, l, c], ...] and fills {id, t, side, price, amount}.
  function candles(el) {
    const chart = LightweightCharts.createChart(el, baseOptions(el));
    const series = chart.addCandlestickSeries({
      upColor: COLORS.up, downColor: COLORS.down, wickUpColor: COLORS.up,
      wickDownColor: COLORS.down, borderVisible: false,
    });
    let bars = [];
    const fills = new Map();
    function setMarkers() {
      const times = bars.map(b => b.time);
      const markers = [];
      for (const f of fills.values()) {
        const i = barAt(times, f.t);
        if (i < 0) { fills.delete(f.id); continue; }  // older than the chart: forget it
        const buy = f.side === "buy";
        markers.push({
          time: times[i], position: buy ? "belowBar" : "aboveBar",
          color: buy ? COLORS.buy : COLORS.sell, shape: buy ? "arrowUp" : "arrowDown",
          id: f.id,
        });
      }
      markers.sort((a, b) => a.time - b.time);
      series.setMarkers(markers);
    }
    function update(rows, newFills, replace) {
      const incoming = rows.map(r => ({ time: r[0], open: r[1], high: r[2], low: r[3], close: r[4] }));
      if (replace) {
        bars = incoming;
        fills.clear();
        series.setData(bars);
      } else {
        for (const bar of incoming) {
          const last = bars.length ? bars[bars.length - 1].time : -Infinity;
          if (bar.time < last) continue;
          if (bar.time === last) bars[bars.length - 1] = bar; else bars.push(bar);
          series.update(bar);
        }
        if (bars.length > MAX_BARS * 1.5) {
          bars = bars.slice(-MAX_BARS);
          series.setData(bars);
        }
      }
      for (const f of newFills) fills.set(f.id, f);
      setMarkers();
      if (replace) chart.timeScale().fitContent();
    }
    return { chart, series, update };
  }

  // A line (or area) chart of [[t, value], ...].
  function line(el, opts) {
    opts = opts || {};
    const chart = LightweightCharts.createChart(el, baseOptions(el));
    const color = opts.color || COLORS.equity;
    const series = chart.addAreaSeries({
      lineColor: color, topColor: color + "55", bottomColor: color + "05", lineWidth: 2,
      priceFormat: { type: "price", precision: opts.precision ?? 2, minMove: opts.minMove ?? 0.01 },
    });
    let points = [];
    function update(rows, replace) {
      const incoming = rows.map(r => ({ time: r[0], value: r[1] }));
      if (replace) {
        points = incoming;
        series.setData(points);
        chart.timeScale().fitContent();
        return;
      }
      for (const p of incoming) {
        const last = points.length ? points[points.length - 1].time : -Infinity;
        if (p.time < last) continue;
        if (p.time === last) points[points.length - 1] = p; else points.push(p);
        series.update(p);
      }
      if (points.length > MAX_LINE * 1.5) {
        points = points.slice(-MAX_LINE);
        series.setData(points);
      }
    }
    return { chart, series, update };
  }

  return { candles, line, COLORS };
})();
