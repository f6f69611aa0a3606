// The aggregate chart on a real time axis, drawn by uPlot (vendored in
// ../vendor, see its README: still no build step). Each bucket is drawn at
// its instant, a bucket with no data is a gap (never an invented zero), the
// axis labels are uPlot's, in the chosen time zone, and a query grouped by
// client or metric as well as by time gets one series for each.
import uPlot from "../vendor/uPlot.esm.js";
import { fmtNumber } from "./dom.js";

// uPlot's time scale counts seconds.
const HOUR = 3600;
const DAY = 24 * HOUR;
const MONTH = 30 * DAY; // uPlot's own month and year, for tick steps
const YEAR = 365 * DAY;

export const TIME_BUCKETS = ["hour", "day", "month"];
// The usual length of a bucket: no tick closer than one, half of one each side.
const STEP = { hour: HOUR, day: DAY, month: MONTH };
// Consecutive buckets are at most this far apart (23 to 25 hour days across
// a DST change, 28 to 31 day months); further means one is missing.
const ADJACENT = { hour: 1.5 * HOUR, day: 1.5 * DAY, month: 45 * DAY };

// Tick steps uPlot may choose from, all a bucket or more.
const INCRS = [
  HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR, 6 * HOUR, 8 * HOUR, 12 * HOUR,
  DAY, 2 * DAY, 3 * DAY, 4 * DAY, 5 * DAY, 7 * DAY, 10 * DAY, 15 * DAY,
  MONTH, 2 * MONTH, 3 * MONTH, 4 * MONTH, 6 * MONTH,
  YEAR, 2 * YEAR, 5 * YEAR, 10 * YEAR, 25 * YEAR, 50 * YEAR, 100 * YEAR,
];
// Tick labels by step (uPlot's table: the label, then what is added when the
// year, month, day... changes since the previous tick), 24-hour clock.
const _ = null;
const TICKS = [
  [YEAR, "{YYYY}", _, _, _, _, _, _, 1],
  [MONTH, "{MMM}", "\n{YYYY}", _, _, _, _, _, 1],
  [DAY, "{MMM} {D}", "\n{YYYY}", _, _, _, _, _, 1],
  [HOUR, "{HH}:{mm}", "\n{MMM} {D} {YYYY}", _, "\n{MMM} {D}", _, _, _, 1],
];
// A bucket's own name in the legend.
const BUCKET_STAMP = { hour: "{YYYY}-{MM}-{DD} {HH}:{mm}", day: "{YYYY}-{MM}-{DD}", month: "{YYYY}-{MM}" };
// The first series takes the page's accent; these stay readable on light and dark.
const PALETTE = ["#0f8a5f", "#d97706", "#db2777", "#0891b2", "#65a30d", "#9333ea", "#dc2626", "#64748b", "#ca8a04"];

/** What a group is a point of: its client and metric, when grouped by them. */
export function seriesName(group) {
  const parts = [];
  if ("client_id" in group) parts.push(String(group.client_id));
  if ("metric" in group) parts.push(String(group.metric));
  return parts.join(" · ");
}

/**
 * The chart's data from an answer's groups: `x`, the buckets' instants in
 * seconds, and one `values` row per series over it: the measure at the
 * series' own buckets, null (a gap) between two of its buckets with an empty
 * one between them, undefined (nothing, the line goes on) elsewhere.
 */
export function chartData(groups, bucket, measure) {
  const own = new Map();
  for (const g of groups) {
    if (typeof g.bucket !== "string") continue;
    const t = Date.parse(g.bucket) / 1000;
    if (!Number.isFinite(t)) continue;
    const name = seriesName(g);
    if (!own.has(name)) own.set(name, new Map());
    const v = g[measure];
    own.get(name).set(t, typeof v === "number" ? v : null);
  }
  const names = [...own.keys()].sort();
  const xs = new Set();
  for (const name of names) {
    const times = [...own.get(name).keys()].sort((a, b) => a - b);
    times.forEach((t, i) => {
      xs.add(t);
      // A place for the gap even when no other series has a bucket there.
      if (i > 0 && t - times[i - 1] > ADJACENT[bucket]) xs.add((t + times[i - 1]) / 2);
    });
  }
  const x = [...xs].sort((a, b) => a - b);
  let points = 0;
  const series = names.map((name) => {
    const mine = own.get(name);
    const times = [...mine.keys()].sort((a, b) => a - b);
    let next = 0; // index in times of the first bucket at or after t
    const values = x.map((t) => {
      while (next < times.length && times[next] < t) next++;
      if (times[next] === t) {
        const v = mine.get(t);
        if (v !== null) points++;
        return v;
      }
      if (next === 0 || next === times.length) return undefined;
      return times[next] - times[next - 1] > ADJACENT[bucket] ? null : undefined;
    });
    return { name, values };
  });
  return { x, series, points };
}

function themeColor(el, name, fallback) {
  return getComputedStyle(el).getPropertyValue(name).trim() || fallback;
}

/** Remove what an earlier draw put into `figure`. */
export function clearChart(figure) {
  for (const old of figure.querySelectorAll(".chart-plot, .chart-empty")) {
    old.uplot?.destroy();
    old.remove();
  }
}

/** Say in `figure`, instead of a chart, why there is none. */
export function chartMessage(figure, text) {
  clearChart(figure);
  const p = document.createElement("p");
  p.className = "chart-empty";
  p.dataset.testid = "chart-empty";
  p.textContent = text;
  figure.append(p);
}

/**
 * Draw `data` (from `chartData`) into `figure`, as wide as it is, with time
 * labels in the IANA zone `tz`. Returns the number of points drawn. The plot
 * element (data-testid chart-plot) carries data-series, data-points,
 * data-bucket, data-tz and data-ticks (the x labels, JSON), and its uPlot
 * instance as `.uplot` (valToPos for tests).
 */
export function drawChart(figure, data, { bucket, measure, caption, tz = "UTC" }) {
  clearChart(figure);
  if (data.points === 0) {
    chartMessage(figure, "No events match these filters.");
    return 0;
  }
  const width = Math.max(280, Math.floor(figure.clientWidth || 600));
  const muted = themeColor(figure, "--muted", "#626779");
  const border = themeColor(figure, "--border", "#e1e3ec");
  const accent = themeColor(figure, "--accent", "#4f46e5");
  const colors = [accent, ...PALETTE];
  const tzDate = (ts) => uPlot.tzDate(new Date(ts * 1000), tz);
  const stamp = uPlot.fmtDate(BUCKET_STAMP[bucket]);
  // Small points when they crowd, so a lone bucket between gaps still shows.
  const pointSize = data.x.length > width / 8 ? 3 : 6;
  const pad = STEP[bucket] / 2;
  const axis = { stroke: muted, grid: { stroke: border, width: 1 }, ticks: { stroke: border, width: 1 } };

  const plot = document.createElement("div");
  plot.className = "chart-plot";
  plot.dataset.testid = "chart-plot";
  plot.dataset.series = String(data.series.length);
  plot.dataset.points = String(data.points);
  plot.dataset.bucket = bucket;
  plot.dataset.tz = tz;
  plot.setAttribute("role", "img");
  plot.setAttribute("aria-label", `${caption} (${tz})`);
  figure.append(plot);

  const opts = {
    width,
    height: 240,
    tzDate,
    scales: { x: { time: true, range: (u, lo, hi) => [lo - pad, hi + pad] } },
    axes: [
      { ...axis, space: 64, incrs: INCRS.filter((i) => i >= STEP[bucket]), values: TICKS },
      { ...axis, size: 64, values: (u, splits) => splits.map(fmtNumber) },
    ],
    series: [
      { label: tz, value: (u, t) => (t == null ? "–" : stamp(tzDate(t))) },
      ...data.series.map((s, i) => {
        const color = colors[i % colors.length];
        return {
          label: s.name || measure,
          stroke: color,
          width: 2,
          spanGaps: false,
          points: { show: true, size: pointSize, stroke: color, fill: color },
          value: (u, v) => fmtNumber(v),
        };
      }),
    ],
    legend: { show: true },
    // The x axis' labels as drawn, for tests (the canvas has no text to read).
    hooks: { draw: [(u) => { plot.dataset.ticks = JSON.stringify(u.axes[0]._values ?? []); }] },
  };
  plot.uplot = new uPlot(opts, [data.x, ...data.series.map((s) => s.values)], plot);
  return data.points;
}
