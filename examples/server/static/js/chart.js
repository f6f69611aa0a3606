// An SVG bar chart of grouped aggregates over time, drawn by hand: the page
// has no build step and no network beyond its own server.
import { fmtNumber, svg } from "./dom.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
// Filling empty buckets beyond this many would draw hairline bars.
const MAX_BARS = 400;

function next(ms, bucket) {
  if (bucket === "hour") return ms + HOUR;
  if (bucket === "day") return ms + DAY;
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/** The groups with an explicit zero for every empty bucket between them. */
export function series(groups, bucket, measure) {
  const points = groups
    .filter((g) => typeof g.bucket === "string")
    .map((g) => ({ t: Date.parse(g.bucket), value: g[measure] ?? 0, group: g }))
    .filter((p) => Number.isFinite(p.t))
    .sort((a, b) => a.t - b.t);
  if (points.length < 2) return points;
  const filled = [];
  let i = 0;
  for (let t = points[0].t; t <= points[points.length - 1].t; t = next(t, bucket)) {
    if (filled.length > MAX_BARS) return points;
    if (i < points.length && points[i].t === t) filled.push(points[i++]);
    else filled.push({ t, value: 0, group: null });
  }
  return filled;
}

function niceStep(max, ticks) {
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10;
  return step * mag;
}

export function label(t, bucket) {
  const iso = new Date(t).toISOString();
  if (bucket === "month") return iso.slice(0, 7);
  if (bucket === "day") return iso.slice(0, 10);
  return `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
}

/**
 * Draw `points` (from `series`) into `figure`, sized to its width. Returns
 * the number of bars drawn.
 */
export function drawBars(figure, points, { bucket, measure, caption }) {
  for (const old of figure.querySelectorAll("svg, .chart-empty")) old.remove();
  if (points.length === 0) {
    const p = document.createElement("p");
    p.className = "chart-empty";
    p.dataset.testid = "chart-empty";
    p.textContent = "No events match these filters.";
    figure.append(p);
    return 0;
  }
  const width = Math.max(280, Math.floor(figure.clientWidth || 600));
  const height = 240;
  const pad = { top: 12, right: 8, bottom: 28, left: 52 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;

  const values = points.map((p) => p.value);
  const hi = Math.max(0, ...values);
  const lo = Math.min(0, ...values);
  const step = niceStep(Math.max(hi - lo, 1e-9), 4);
  const top = Math.ceil(hi / step) * step || step;
  const bottom = Math.floor(lo / step) * step;
  const y = (v) => pad.top + plotH - ((v - bottom) / (top - bottom)) * plotH;

  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": caption,
    "data-testid": "chart-svg",
  });
  for (let v = bottom; v <= top + step / 2; v += step) {
    root.append(
      svg("line", { class: "grid", x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }),
      svg("text", { class: "tick", x: pad.left - 6, y: y(v) + 4, "text-anchor": "end" }, fmtNumber(v)),
    );
  }
  const slot = plotW / points.length;
  const barW = Math.max(1, Math.min(48, slot * 0.72));
  points.forEach((p, i) => {
    const x = pad.left + i * slot + (slot - barW) / 2;
    const y0 = y(Math.max(0, p.value));
    const h = Math.abs(y(p.value) - y(0));
    const g = p.group;
    const tip = g
      ? `${label(p.t, bucket)}: ${measure} ${fmtNumber(p.value)} (count ${g.count}, sum ${fmtNumber(g.sum)})`
      : `${label(p.t, bucket)}: no events`;
    root.append(
      svg("rect", { class: "bar", x, y: y0, width: barW, height: Math.max(h, g ? 1 : 0), rx: Math.min(3, barW / 3), "data-testid": "chart-bar" },
        svg("title", {}, tip)),
    );
  });
  // As many labels as fit, evenly spaced, always the first and the last.
  const fit = Math.max(1, Math.floor(plotW / (bucket === "hour" ? 96 : 84)));
  const every = Math.ceil(points.length / fit);
  points.forEach((p, i) => {
    if (i % every !== 0 && i !== points.length - 1) return;
    if (i === points.length - 1 && i % every !== 0 && points.length - 1 - (i - (i % every)) < every / 2) return;
    const x = pad.left + i * slot + slot / 2;
    const anchor = points.length === 1 ? "middle" : i === 0 ? "start" : i === points.length - 1 ? "end" : "middle";
    const lx = anchor === "start" ? Math.max(x - barW / 2, pad.left) : anchor === "end" ? Math.min(x + barW / 2, width - pad.right) : x;
    root.append(svg("text", { class: "tick", x: lx, y: height - 8, "text-anchor": anchor }, label(p.t, bucket)));
  });
  root.append(svg("line", { class: "axis", x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0) }));
  figure.append(root);
  return points.length;
}
