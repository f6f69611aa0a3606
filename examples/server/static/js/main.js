// The page: submission, failure switch, live counters, lists and aggregates.
// Everything shown from the server goes through dom.js as text.
import { apiKey, get, onUnauthorized, post, setApiKey, withQuery } from "./api.js";
import { chartData, chartMessage, drawChart, TIME_BUCKETS } from "./chart.js";
import { $, fmtNumber, fmtTime, h, replace, toJson } from "./dom.js";

const PAGE_SIZE = 10;
const POLL_MS = 2500;

const state = {
  processed: { offset: 0, filters: {} },
  rejected: { offset: 0 },
  stats: null,
  lastBody: null,
  lastAgg: null,
  freshId: null,
};

/* ---------- live counters and the failure switch ---------- */

const COUNTERS = ["stored_events", "accepted", "duplicate", "conflict", "rejected", "failed", "stored_rejected", "evicted_rejected"];

function showStats(stats) {
  for (const key of COUNTERS) {
    const el = $(`#stat-${key}`);
    const text = fmtNumber(stats[key]);
    if (el.textContent !== text) {
      el.textContent = text;
      if (state.stats) {
        el.classList.remove("bump");
        void el.offsetWidth; // restart the animation
        el.classList.add("bump");
      }
    }
  }
  showFailure(stats.failure);
}

function showFailure(failure) {
  const on = Boolean(failure && failure.enabled);
  const toggle = $("#failure-toggle");
  toggle.setAttribute("aria-checked", String(on));
  $("#failure-label").textContent = on
    ? `Armed: ${failure.point} × ${failure.remaining}`
    : "Off";
  $("#failure-desc").textContent = on
    ? `Next: ${failure.description}.`
    : "Writes succeed normally.";
  // Under `make serve` each worker process has its own switch: say whose
  // this is, as the answer that showed it came from one of them.
  $("#failure-worker").textContent = failure && failure.workers > 1
    ? `Worker ${failure.worker} of ${failure.workers} answered; each worker has its own switch.`
    : "";
}

async function pollStats() {
  const res = await get("/api/stats");
  const conn = $("#conn");
  if (!res.ok) {
    conn.dataset.state = "down";
    conn.textContent = res.status === 401 ? "key needed"
      : res.status ? `server error ${res.status}` : "disconnected";
    return;
  }
  conn.dataset.state = "ok";
  conn.textContent = "live";
  showWho(res.body);
  const prev = state.stats;
  showStats(res.body);
  state.stats = res.body;
  // Another client (curl, a script) changed the data: show it.
  if (prev && (prev.stored_events !== res.body.stored_events || prev.stored_rejected !== res.body.stored_rejected)) {
    refreshData();
  }
}

async function toggleFailure(body) {
  const res = await post("/api/simulate-failure", body);
  if (res.ok) {
    showFailure(res.body);
  } else {
    showError(res);
  }
  pollStats();
}

/* ---------- the API key ---------- */

// Who the page is: a client key's answers carry its client and only its
// counts; an admin key's, and the demo's without a key, everything.
function showWho(stats) {
  const client = "client_id" in stats && !("accepted" in stats) ? stats.client_id : null;
  document.body.dataset.scope = client !== null ? "client" : apiKey() ? "admin" : "local";
  $("#who").hidden = !apiKey();
  $("#who-name").textContent = client !== null ? `client ${client}` : "admin key";
}

function askForKey(message) {
  const dialog = $("#key-dialog");
  $("#key-error").textContent = message || "";
  if (!dialog.open) dialog.showModal();
  dialog.querySelector("input").focus();
}

onUnauthorized((body) => {
  // A key this tab held was revoked, or never was one: it is dropped.
  const had = apiKey();
  setApiKey(null);
  askForKey(had ? body.message : "");
});

async function useKey(token) {
  setApiKey(token);
  const res = await get("/api/stats");
  if (res.status === 401) {
    askForKey(res.body.message);
    return;
  }
  $("#key-dialog").close();
  $("#key-form").reset();
  pollStats();
  refreshData();
}

/* ---------- submission ---------- */

function numberOrText(s) {
  return /^\s*-?\d+(\.\d+)?\s*$/.test(s) ? Number(s) : s;
}

function eventFromFields(form) {
  const data = new FormData(form);
  const event = {};
  for (const name of ["client_id", "metric", "amount", "timestamp"]) {
    const v = String(data.get(name) ?? "").trim();
    if (v !== "") event[name] = name === "amount" ? numberOrText(v) : v;
  }
  return event;
}

async function submit(bodyText) {
  state.lastBody = bodyText;
  const buttons = document.querySelectorAll("#submit button[type=submit]");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const res = await post("/api/events", bodyText);
    showResult(res);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
  pollStats();
  refreshData();
}

function reasonsList(reasons) {
  return h("ul", { class: "reasons", "data-testid": "reasons" },
    reasons.map((r) => h("li", {},
      h("span", { class: "code" }, r.code),
      r.field ? h("span", { class: "field-name" }, r.field) : null,
      h("span", {}, r.message))));
}

function outcomeView(body) {
  const parts = [];
  if (body.status === "rejected" || body.status === "conflict") parts.push(reasonsList(body.reasons || []));
  if (body.event) parts.push(h("pre", { "data-testid": "result-event" }, toJson(body.event)));
  return parts;
}

function resultMessage(body) {
  if (body.status === "conflict") {
    // The differing fields are listed below; the event shown is the stored one.
    return `Conflicts with event #${body.id}, stored with other values; nothing changed. The stored event:`;
  }
  if (body.status !== "rejected") return body.message || "";
  const n = (body.reasons || []).length;
  // The reasons are listed below; the server's one-line message repeats them.
  return `Rejected for ${n} reason${n === 1 ? "" : "s"}; kept with the rejected events, not stored.`;
}

function retryButton() {
  const b = h("button", { type: "button", class: "btn primary small", "data-testid": "retry" }, "Retry the same request");
  b.addEventListener("click", () => submit(state.lastBody));
  return b;
}

function showResult(res) {
  const box = $("#result");
  box.hidden = false;
  const body = res.body || {};
  if (Array.isArray(body.results)) {
    box.dataset.kind = "batch";
    const c = body.counts || {};
    replace(box,
      h("div", { class: "result-head" },
        h("span", { class: "badge" }, `batch of ${body.results.length}`),
        h("span", { "data-testid": "result-message" }, `${c.accepted ?? 0} accepted · ${c.duplicate ?? 0} duplicate · ${c.conflict ?? 0} conflict · ${c.rejected ?? 0} rejected`)),
      h("ol", { class: "reasons" }, body.results.map((r, i) => h("li", {},
        h("span", { class: `badge ${r.status}` }, r.status),
        h("span", {}, `#${i + 1}: ${r.message}`)))));
    return;
  }
  if (["accepted", "duplicate", "conflict", "rejected"].includes(body.status)) {
    box.dataset.kind = body.status;
    replace(box,
      h("div", { class: "result-head" },
        h("span", { class: `badge ${body.status}`, "data-testid": "result-status" }, body.status),
        h("span", { class: "muted small" }, `HTTP ${res.status}`),
        body.id != null ? h("span", { class: "muted small" }, `event #${body.id}`) : null),
      h("p", { class: "result-msg", "data-testid": "result-message" }, resultMessage(body)),
      outcomeView(body));
    if (body.status === "accepted") state.freshId = body.id;
    return;
  }
  showError(res);
}

function showError(res) {
  const box = $("#result");
  box.hidden = false;
  box.dataset.kind = "error";
  const body = res.body || {};
  const retryable = (res.status >= 500 || res.status === 0) && state.lastBody !== null;
  replace(box,
    h("div", { class: "result-head" },
      h("span", { class: "badge error", "data-testid": "result-status" }, "error"),
      h("span", { class: "muted small" }, res.status ? `HTTP ${res.status}` : "no answer"),
      body.error ? h("span", { class: "code" }, body.error) : null),
    h("p", { class: "result-msg", "data-testid": "result-message" }, body.message || "unknown error"),
    retryable ? h("div", { class: "actions" }, retryButton()) : null);
}

const PRESETS = {
  envelope: { source: "clientA", payload: { metric: "sales", value: 1200, timestamp: "2024-01-01" } },
  messy: { clientID: "  mobile-7 ", name: "Checkout", amt: " 19.90 ", ts: 1704103200, app_version: "3.2.1" },
  missing: { source: "clientC", payload: { metric: "views" } },
  batch: [
    { source: "clientA", payload: { metric: "sales", value: 300, timestamp: "2024-01-02T09:30:00+01:00" } },
    { client: "clientB", type: "sales", amount: "75.5", date: "2024-01-03" },
    { client: "clientB", type: "sales", amount: 75.5, date: "2024-01-03T00:00:00Z" },
    { client: "clientB", value: true, date: "someday" },
  ],
};

function setTab(which) {
  const raw = which === "raw";
  $("#tab-fields").setAttribute("aria-selected", String(!raw));
  $("#tab-raw").setAttribute("aria-selected", String(raw));
  $("#fields-form").hidden = raw;
  $("#raw-form").hidden = !raw;
}

/* ---------- processed and rejected lists ---------- */

function cell(value, cls) {
  return h("td", { class: cls }, value);
}

async function loadProcessed() {
  const p = state.processed;
  const res = await get(withQuery("/api/events", { status: "processed", limit: PAGE_SIZE, offset: p.offset, ...p.filters }));
  const body = $("#processed-body");
  if (!res.ok) {
    replace(body, h("tr", {}, h("td", { colspan: 6, class: "form-error" }, res.body.message || `HTTP ${res.status}`)));
    return;
  }
  const items = res.body.items;
  replace(body, items.map((e) => {
    const attrs = e.attributes && Object.keys(e.attributes).length ? JSON.stringify(e.attributes) : "";
    return h("tr", { class: e.id === state.freshId ? "fresh" : null, "data-testid": "event-row", "data-id": e.id },
      cell(e.id, "c-id mono"),
      cell(e.client_id, "c-client"),
      cell(e.metric, "c-metric"),
      cell(fmtNumber(e.amount), "c-amount num"),
      cell(fmtTime(e.timestamp), "c-time mono"),
      cell(attrs, "c-attrs attrs"));
  }));
  const empty = $("#processed-empty");
  empty.hidden = items.length > 0 || p.offset > 0;
  empty.textContent = Object.values(p.filters).some((v) => String(v ?? "").trim())
    ? "No events match these filters."
    : "No events yet. Submit one above.";
  $("#processed-page").textContent = `Page ${Math.floor(p.offset / PAGE_SIZE) + 1}`;
  $("#processed-prev").disabled = p.offset === 0;
  $("#processed-next").disabled = !res.body.has_more;
}

async function loadRejected() {
  const r = state.rejected;
  const res = await get(withQuery("/api/rejected", { limit: PAGE_SIZE, offset: r.offset }));
  const list = $("#rejected-list");
  if (!res.ok) {
    replace(list, h("li", { class: "form-error" }, res.body.message || `HTTP ${res.status}`));
    return;
  }
  const items = res.body.items;
  replace(list, items.map((x) => h("li", { class: "rejection", "data-testid": "rejected-item" },
    h("div", { class: "rejection-meta" },
      h("span", { class: "badge rejected" }, "rejected"),
      h("span", {}, `#${x.id}`),
      h("span", {}, fmtTime(x.received_at)),
      h("span", {}, `rules v${x.rules_version}`),
      x.attempts > 1 ? h("span", {}, `${x.attempts} attempts`) : null),
    reasonsList(x.reasons || []),
    h("pre", { "data-testid": "rejected-raw" }, toJson(x.raw)))));
  $("#rejected-empty").hidden = items.length > 0 || r.offset > 0;
  $("#rejected-page").textContent = `Page ${Math.floor(r.offset / PAGE_SIZE) + 1}`;
  $("#rejected-prev").disabled = r.offset === 0;
  $("#rejected-next").disabled = !res.body.has_more;
}

/* ---------- aggregates ---------- */

function nextDay(date) {
  const t = Date.parse(`${date}T00:00:00Z`);
  return Number.isFinite(t) ? new Date(t + 86_400_000).toISOString().slice(0, 10) : date;
}

function aggParams() {
  const data = new FormData($("#agg-form"));
  const end = String(data.get("endDate") || "");
  const tz = String(data.get("tz") || "UTC");
  return {
    clientId: data.get("clientId"),
    metric: data.get("metric"),
    startDate: data.get("startDate"),
    // The form's end date is inclusive; the API's range is half-open.
    endDate: end ? nextDay(end) : "",
    groupBy: [data.get("groupBy"), ...String(data.get("split") || "").split(",")].filter(Boolean).join(","),
    // UTC is the API's own default: only another zone is sent.
    tz: tz === "UTC" ? "" : tz,
  };
}

/* The zones to choose from: UTC, this browser's, then every zone it knows. */
const FALLBACK_ZONES = [
  "America/Los_Angeles", "America/New_York", "America/Sao_Paulo", "Europe/London",
  "Europe/Paris", "Europe/Berlin", "Africa/Johannesburg", "Asia/Kolkata",
  "Asia/Shanghai", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland",
];

function fillZones(select) {
  const own = Intl.DateTimeFormat().resolvedOptions().timeZone;
  let all = FALLBACK_ZONES;
  try {
    all = Intl.supportedValuesOf("timeZone");
  } catch {
    // An older browser: the short list.
  }
  const seen = new Set(["UTC"]);
  const options = [h("option", { value: "UTC", selected: true }, "UTC")];
  if (own && !seen.has(own)) {
    seen.add(own);
    options.push(h("option", { value: own }, `${own} (this browser)`));
  }
  for (const zone of all) {
    if (seen.has(zone)) continue;
    seen.add(zone);
    options.push(h("option", { value: zone }, zone));
  }
  replace(select, options);
}

/** The answer's group_by as a list, and its time bucket if it has one. */
function grouping(agg) {
  const by = [].concat(agg.query.group_by ?? []);
  return { by, bucket: by.find((g) => TIME_BUCKETS.includes(g)) };
}

function drawAggregate() {
  const fig = $("#chart");
  const agg = state.lastAgg;
  if (!agg) return;
  const { bucket } = grouping(agg);
  const measure = String(new FormData($("#agg-form")).get("measure") || "sum");
  if (!bucket || !Array.isArray(agg.groups)) {
    chartMessage(fig, "Group by hour, day or month to chart over time.");
    return;
  }
  const caption = `${measure} per ${bucket}`;
  $("#chart-caption").textContent = caption;
  drawChart(fig, chartData(agg.groups, bucket, measure), { bucket, measure, caption, tz: agg.query.tz || "UTC" });
}

/* The groups as a table, built when opened: the bucket in the answer's zone
   when the answer has it (bucket_local), else in UTC. */
const MAX_GROUP_ROWS = 2000;

function showGroups(agg) {
  const box = $("#agg-groups");
  const groups = Array.isArray(agg?.groups) ? agg.groups : [];
  box.hidden = groups.length === 0;
  $("#agg-groups-count").textContent = String(groups.length);
  if (box.hidden || !box.open) {
    replace($("#agg-groups-body"));
    return;
  }
  const { by, bucket } = grouping(agg);
  const cols = [
    bucket ? { head: `Bucket (${agg.query.tz || "UTC"})`, cls: "mono", get: (g) => fmtTime(g.bucket_local ?? g.bucket) } : null,
    by.includes("client_id") ? { head: "Client", get: (g) => g.client_id } : null,
    by.includes("metric") ? { head: "Metric", get: (g) => g.metric } : null,
    ...["count", "sum", "avg", "min", "max"].map((k) => ({ head: k, cls: "num", get: (g) => fmtNumber(g[k]) })),
  ].filter(Boolean);
  const more = groups.length - MAX_GROUP_ROWS;
  replace($("#agg-groups-head"), h("tr", {}, cols.map((c) => h("th", { class: c.cls }, c.head))));
  replace($("#agg-groups-body"),
    groups.slice(0, MAX_GROUP_ROWS).map((g) =>
      h("tr", { "data-testid": "group-row" }, cols.map((c) => h("td", { class: c.cls }, c.get(g))))),
    more > 0 ? h("tr", {}, h("td", { colspan: cols.length, class: "muted" }, `and ${more} more: narrow the range`)) : null);
}

let aggRetryTimer = null;

async function loadAggregate() {
  const res = await get(withQuery("/api/aggregate", aggParams()));
  const err = $("#agg-error");
  clearTimeout(aggRetryTimer);
  if (!res.ok) {
    err.hidden = false;
    const retry = Number(res.headers.get("Retry-After"));
    err.textContent = `${res.body.message || `HTTP ${res.status}`}${retry ? ` (retrying in ${retry} s)` : ""}`;
    for (const k of ["count", "sum", "avg", "min", "max"]) $(`#agg-${k}`).textContent = "–";
    state.lastAgg = null;
    $("#agg-stale").hidden = true;
    pollStats(); // the failure switch may have struck
    chartMessage($("#chart"), "No result to chart.");
    showGroups(null);
    // The server said when to ask again: do, once; a newer load cancels it.
    if (retry > 0) aggRetryTimer = setTimeout(loadAggregate, Math.min(retry, 60) * 1000);
    return;
  }
  err.hidden = true;
  const a = res.body;
  state.lastAgg = a;
  for (const k of ["count", "sum", "avg", "min", "max"]) $(`#agg-${k}`).textContent = fmtNumber(a[k]);
  const stale = $("#agg-stale");
  stale.hidden = !a.stale;
  stale.textContent = a.stale ? `stale · computed ${fmtTime(a.computed_at)}` : "stale";
  if (a.stale) pollStats();
  drawAggregate();
  showGroups(a);
}

/* ---------- wiring ---------- */

let refreshing = null;
function refreshData() {
  // Coalesce bursts (a submit and a poll at once) into one reload.
  if (refreshing) return refreshing;
  refreshing = Promise.all([loadProcessed(), loadRejected(), loadAggregate()]).finally(() => {
    refreshing = null;
  });
  return refreshing;
}

function wire() {
  $("#key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = ev.target.elements.key.value.trim();
    if (!token) {
      askForKey("Paste the key's token.");
      return;
    }
    useKey(token);
  });
  // Escape must not leave the page without a key where one is needed.
  $("#key-dialog").addEventListener("cancel", (ev) => ev.preventDefault());
  $("#key-forget").addEventListener("click", () => {
    setApiKey(null);
    location.reload();
  });
  $("#tab-fields").addEventListener("click", () => setTab("fields"));
  $("#tab-raw").addEventListener("click", () => setTab("raw"));
  $("#ts-now").addEventListener("click", () => {
    $("#fields-form").elements.timestamp.value = new Date().toISOString();
  });
  $("#fields-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    submit(JSON.stringify(eventFromFields(ev.target)));
  });
  $("#raw-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    // Sent as typed: malformed JSON is the server's to refuse, with a message.
    submit(ev.target.elements.raw.value);
  });
  for (const chip of document.querySelectorAll("[data-preset]")) {
    chip.addEventListener("click", () => {
      $("#raw-form").elements.raw.value = toJson(PRESETS[chip.dataset.preset]);
    });
  }
  $("#raw-form").elements.raw.value = toJson(PRESETS.messy);

  $("#failure-toggle").addEventListener("click", () => toggleFailure(undefined));
  $("#failure-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.target.elements;
    toggleFailure({ point: f.point.value, times: Number(f.times.value) || 1 });
  });

  $("#processed-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.target.elements;
    state.processed.filters = { clientId: f.clientId.value, metric: f.metric.value };
    state.processed.offset = 0;
    loadProcessed();
  });
  $("#processed-prev").addEventListener("click", () => {
    state.processed.offset = Math.max(0, state.processed.offset - PAGE_SIZE);
    loadProcessed();
  });
  $("#processed-next").addEventListener("click", () => {
    state.processed.offset += PAGE_SIZE;
    loadProcessed();
  });
  $("#processed-refresh").addEventListener("click", loadProcessed);
  $("#rejected-prev").addEventListener("click", () => {
    state.rejected.offset = Math.max(0, state.rejected.offset - PAGE_SIZE);
    loadRejected();
  });
  $("#rejected-next").addEventListener("click", () => {
    state.rejected.offset += PAGE_SIZE;
    loadRejected();
  });
  $("#rejected-refresh").addEventListener("click", loadRejected);

  $("#agg-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadAggregate();
  });
  fillZones($("#agg-form").elements.tz);
  for (const name of ["groupBy", "split", "tz"]) {
    $("#agg-form").elements[name].addEventListener("change", loadAggregate);
  }
  $("#agg-form").elements.measure.addEventListener("change", drawAggregate);
  $("#agg-groups").addEventListener("toggle", () => showGroups(state.lastAgg));

  // Redraw when the chart's width changes (drawing changes only its height).
  let resizeTimer = null;
  let drawnWidth = $("#chart").clientWidth;
  new ResizeObserver(() => {
    const width = $("#chart").clientWidth;
    if (width === drawnWidth) return;
    drawnWidth = width;
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(drawAggregate, 100);
  }).observe($("#chart"));
}

wire();
pollStats();
refreshData();
setInterval(pollStats, POLL_MS);
