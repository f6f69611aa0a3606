// The original design's server, rebuilt as it describes itself for the HTTP
// benchmark (benches/http/bench.py): Node.js, Express, SQLite through
// better-sqlite3 on SQLite's defaults (rollback journal DELETE, synchronous
// FULL), and per event a SELECT for the same content, then an INSERT when
// there is none, each statement in autocommit.
//
// Like contender (b) of `make bench` (benches/src/original.rs), it gets an
// index on the looked-up columns, which the original had no reason to lack:
// that makes it faster, so ratios against it err in its favour.
//
//   PORT=8100 DB=original.db node server.js
"use strict";

const express = require("express");
const Database = require("better-sqlite3");

const port = Number(process.env.PORT || 8100);
const db = new Database(process.env.DB || "original.db");

const mode = db.pragma("journal_mode", { simple: true });
const sync = db.pragma("synchronous", { simple: true });
if (String(mode).toLowerCase() !== "delete" || sync !== 2) {
  // The comparison is with SQLite's defaults: anything else is not the original.
  console.error(`expected journal DELETE and synchronous FULL, got ${mode} and ${sync}`);
  process.exit(2);
}

db.exec(`
  CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY,
    client_id   TEXT NOT NULL,
    metric      TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    amount      REAL NOT NULL,
    event_id    TEXT,
    attributes  TEXT NOT NULL,
    received_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS events_lookup ON events (client_id, metric, ts, amount);
`);
const find = db.prepare(
  "SELECT id FROM events WHERE client_id = ? AND metric = ? AND ts = ? AND amount = ?",
);
const insert = db.prepare(
  `INSERT INTO events (client_id, metric, ts, amount, event_id, attributes, received_at)
   VALUES (?, ?, ?, ?, ?, ?, ?)`,
);

const ALIASES = {
  client_id: ["source", "client", "clientId", "client_id", "clientID"],
  metric: ["metric", "name", "event", "type"],
  amount: ["value", "amount", "amt", "val", "count", "qty"],
  timestamp: ["timestamp", "ts", "time", "date", "datetime", "occurred_at"],
  event_id: ["event_id", "eventId", "id", "idempotency_key"],
};
const KNOWN = new Set(Object.values(ALIASES).flat());

function first(obj, names) {
  for (const n of names) {
    if (obj[n] !== undefined && obj[n] !== null) return obj[n];
  }
  return undefined;
}

function toAmount(v) {
  if (typeof v === "number") return Number.isFinite(v) ? v : null;
  if (typeof v === "string" && v.trim() !== "") {
    const n = Number(v.trim());
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

// Epoch numbers above 1e11 are milliseconds (1e11 s is the year 5138).
function toMillis(v) {
  if (typeof v === "number" || (typeof v === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(v))) {
    const n = Number(v);
    if (!Number.isFinite(n)) return null;
    return Math.round(Math.abs(n) >= 1e11 ? n : n * 1000);
  }
  if (typeof v !== "string") return null;
  let s = v.trim();
  if (/^\d{4}-\d{2}-\d{2}$/.test(s)) s += "T00:00:00Z";
  else if (/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(s)) s = s.replace(" ", "T") + "Z";
  const t = Date.parse(s);
  return Number.isNaN(t) ? null : t;
}

function normalize(raw) {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    return { reasons: [{ code: "bad_type", field: null, message: "an event is a JSON object" }] };
  }
  const payload = raw.payload && typeof raw.payload === "object" ? raw.payload : {};
  const obj = { ...raw, ...payload };
  delete obj.payload;
  const reasons = [];
  const client = first(obj, ALIASES.client_id);
  if (typeof client !== "string" || client.trim() === "") {
    reasons.push({ code: "missing_field", field: "client_id", message: "client_id is missing" });
  }
  const metricRaw = first(obj, ALIASES.metric);
  const metric = typeof metricRaw === "string" && metricRaw.trim() !== "" ? metricRaw.trim().toLowerCase() : "unknown";
  const amountRaw = first(obj, ALIASES.amount);
  const amount = amountRaw === undefined ? null : toAmount(amountRaw);
  if (amount === null) {
    reasons.push({ code: amountRaw === undefined ? "missing_field" : "bad_type", field: "amount", message: "amount is missing or not a number" });
  }
  const tsRaw = first(obj, ALIASES.timestamp);
  const ts = tsRaw === undefined ? null : toMillis(tsRaw);
  if (ts === null) {
    reasons.push({ code: tsRaw === undefined ? "missing_field" : "bad_timestamp", field: "timestamp", message: "timestamp is missing or not a time" });
  }
  if (reasons.length > 0) return { reasons };
  const attributes = {};
  for (const [k, v] of Object.entries(obj)) {
    if (!KNOWN.has(k)) attributes[k] = v;
  }
  const eventId = first(obj, ALIASES.event_id);
  return {
    event: {
      client_id: client.trim(),
      metric,
      ts,
      amount: amount === 0 ? 0 : amount,
      event_id: eventId === undefined ? null : String(eventId),
      attributes: JSON.stringify(attributes),
    },
  };
}

// The check, then the insert: two statements, each its own transaction.
function submit(raw) {
  const { event: e, reasons } = normalize(raw);
  if (!e) return { status: "rejected", http: 422, reasons };
  const found = find.get(e.client_id, e.metric, e.ts, e.amount);
  if (found) return { status: "duplicate", http: 200, id: found.id };
  const r = insert.run(e.client_id, e.metric, e.ts, e.amount, e.event_id, e.attributes, Date.now());
  return { status: "accepted", http: 201, id: Number(r.lastInsertRowid) };
}

const app = express();
// The original design's limit on one request body.
app.use(express.json({ limit: "1mb" }));

app.post("/api/events", (req, res) => {
  if (Array.isArray(req.body)) {
    const results = req.body.map(submit);
    const counts = { accepted: 0, duplicate: 0, rejected: 0 };
    for (const r of results) counts[r.status] += 1;
    res.status(200).json({ results, counts });
    return;
  }
  const r = submit(req.body);
  res.status(r.http).json(r);
});

app.get("/api/health", (_req, res) => {
  res.json({ status: "ok" });
});

const server = app.listen(port, "127.0.0.1", () => {
  console.log(`original design on http://127.0.0.1:${port}/ (database: ${db.name})`);
});

process.on("SIGTERM", () => {
  server.close(() => {
    db.close();
    process.exit(0);
  });
});
