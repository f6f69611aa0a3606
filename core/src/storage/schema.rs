//! The SQLite schema: what a new file is created with, and the numbered
//! migrations that bring a file of an earlier version to it. `PRAGMA
//! user_version` holds how many have been applied; opening a file applies
//! the rest in one transaction (migrate.rs). Never edit a migration that
//! has shipped: append a new one, and change [`CURRENT`] to match.

use super::migrate::{Migration, Schema};

pub(crate) const SCHEMA: Schema = Schema {
    current: CURRENT,
    migrations: MIGRATIONS,
};

/// The schema after every migration below, for a new file.
const CURRENT: &str = r#"
    CREATE TABLE events (
        id            INTEGER PRIMARY KEY,
        -- See dedup.rs: tag, then the key fields with the timestamp first.
        dedup_key     BLOB NOT NULL UNIQUE,
        client_id     TEXT NOT NULL,
        metric        TEXT NOT NULL,
        ts            INTEGER NOT NULL,  -- ms since the epoch, UTC
        amount        REAL NOT NULL,
        event_id      TEXT,
        attributes    TEXT NOT NULL,     -- JSON object
        received_at   INTEGER NOT NULL,
        rules_version INTEGER NOT NULL,
        -- The start of the UTC hour holding ts (floor division, also before 1970).
        ts_hour       INTEGER GENERATED ALWAYS AS (ts - ((ts % 3600000) + 3600000) % 3600000) VIRTUAL
    ) STRICT;
    -- Led by time, so that a commit of events that arrive roughly in time
    -- order rewrites a few neighbouring pages. It serves the edge scans of a
    -- query across clients (one hour, seeking the metric) and a client's cut
    -- days (one seek per hour that has events), from the index alone.
    CREATE INDEX events_by_hour ON events (ts_hour, metric, client_id, ts, amount);

    CREATE TABLE rejected (
        id            INTEGER PRIMARY KEY,
        digest        BLOB NOT NULL UNIQUE,  -- SHA-256 of raw
        raw           TEXT NOT NULL,         -- the input as JSON
        reasons       TEXT NOT NULL,         -- JSON list of reasons
        rules_version INTEGER NOT NULL,
        received_at   INTEGER NOT NULL,
        attempts      INTEGER NOT NULL,
        -- The whole input's size; raw is it exactly (1), or a copy cut to
        -- the cap or standing in for what JSON cannot hold (0).
        raw_bytes     INTEGER NOT NULL DEFAULT 0,
        raw_exact     INTEGER NOT NULL DEFAULT 1,
        -- The client it belongs to; NULL: none known (see migration 13).
        client_id     TEXT
    ) STRICT;

    -- One client's dead letters, newest first (see migration 13).
    CREATE INDEX rejected_by_client ON rejected (client_id, id);

    -- Dead letters removed to keep the store within its bound (one row).
    CREATE TABLE dead_letter_stats (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        evicted INTEGER NOT NULL
    ) STRICT;
    INSERT INTO dead_letter_stats (id, evicted) VALUES (1, 0);

    -- What pruning removed (one row): the horizon below which nothing is
    -- accepted again, the counts, and the archive its chunks went to with
    -- the length that archive had when the last chunk committed (an
    -- interrupted prune cuts the file back to it before going on).
    CREATE TABLE lifecycle (
        id              INTEGER PRIMARY KEY CHECK (id = 1),
        pruned_before   INTEGER,
        pruned_events   INTEGER NOT NULL,
        pruned_rejected INTEGER NOT NULL,
        archive_path    TEXT,
        archive_bytes   INTEGER
    ) STRICT;
    INSERT INTO lifecycle (id, pruned_events, pruned_rejected) VALUES (1, 0, 0);

    -- count, sum, min and max of the amounts per (level, bucket, metric)
    -- across every client, kept in the same transaction as the events they
    -- summarise; keyed by time, so that a commit's rows of one level lie
    -- together.
    CREATE TABLE rollups (
        level  INTEGER NOT NULL,  -- 1 hour, 2 day, 3 month (UTC)
        bucket INTEGER NOT NULL,  -- start of the bucket, ms
        metric TEXT NOT NULL,
        n      INTEGER NOT NULL,
        total  BLOB NOT NULL,     -- the exact sum (exact.rs), added by ingest_exact_add
        lo     REAL NOT NULL,
        hi     REAL NOT NULL,
        -- How many amounts equal lo and hi (0: not known; see migration 12).
        n_lo   INTEGER NOT NULL DEFAULT 0,
        n_hi   INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (level, bucket, metric)
    ) STRICT, WITHOUT ROWID;
    -- The hours of one metric together (see migration 10).
    CREATE INDEX rollup_hours_by_metric ON rollups (metric, bucket, n, total, lo, hi, n_lo, n_hi) WHERE level = 1;

    -- The same per (UTC day, client, metric), keyed by the day first.
    CREATE TABLE client_days (
        bucket    INTEGER NOT NULL,
        client_id TEXT NOT NULL,
        metric    TEXT NOT NULL,
        n         INTEGER NOT NULL,
        total     BLOB NOT NULL,
        lo        REAL NOT NULL,
        hi        REAL NOT NULL,
        n_lo      INTEGER NOT NULL DEFAULT 0,
        n_hi      INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (bucket, client_id, metric)
    ) STRICT, WITHOUT ROWID;
    -- One client's days (see migration 13).
    CREATE INDEX client_days_by_client ON client_days (client_id, bucket);

    CREATE TABLE rules (
        version    INTEGER PRIMARY KEY,
        document   TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    ) STRICT;

    -- API keys (see migration 11).
    CREATE TABLE api_keys (
        id            TEXT PRIMARY KEY,  -- the public part of its tokens (keys.rs)
        client_id     TEXT,              -- what a client key writes and reads as; NULL: an admin key
        name          TEXT NOT NULL,     -- the client, or the admin key's holder
        secret_sha256 BLOB NOT NULL,     -- the secret itself is never stored
        created_at    INTEGER NOT NULL,
        revoked_at    INTEGER
    ) STRICT;

    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;

    -- Failure injection writes here: the CHECK always fails, so the
    -- transaction is aborted by a real failing statement.
    CREATE TABLE fault_probe (
        point TEXT CHECK (point IS NULL)
    ) STRICT;
    "#;

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        sql: MIGRATION_1,
        rebuild_rollups: false,
    },
    Migration {
        sql: MIGRATION_2,
        rebuild_rollups: true,
    },
    Migration {
        sql: MIGRATION_3,
        rebuild_rollups: false,
    },
    Migration {
        sql: MIGRATION_4,
        rebuild_rollups: false,
    },
    Migration {
        sql: MIGRATION_5,
        rebuild_rollups: false,
    },
    Migration {
        sql: MIGRATION_6,
        rebuild_rollups: true,
    },
    Migration {
        sql: MIGRATION_7,
        rebuild_rollups: true,
    },
    Migration {
        sql: MIGRATION_8,
        rebuild_rollups: false,
    },
    Migration {
        sql: MIGRATION_9,
        rebuild_rollups: false,
    },
    Migration {
        sql: MIGRATION_10,
        rebuild_rollups: false,
    },
    Migration {
        sql: MIGRATION_11,
        rebuild_rollups: false,
    },
    Migration {
        sql: MIGRATION_12,
        rebuild_rollups: false,
    },
    Migration {
        sql: MIGRATION_13,
        rebuild_rollups: false,
    },
];

// 1: events, dead letters, rollups, rules versions.
const MIGRATION_1: &str = r#"
    CREATE TABLE events (
        id            INTEGER PRIMARY KEY,
        -- See dedup.rs: tag, then the key fields with the timestamp first.
        dedup_key     BLOB NOT NULL UNIQUE,
        client_id     TEXT NOT NULL,
        metric        TEXT NOT NULL,
        ts            INTEGER NOT NULL,  -- ms since the epoch, UTC
        amount        REAL NOT NULL,
        event_id      TEXT,
        attributes    TEXT NOT NULL,     -- JSON object
        received_at   INTEGER NOT NULL,
        rules_version INTEGER NOT NULL
    ) STRICT;
    -- Time order, with what the edge scans of a query read (metric, client,
    -- amount), so those scans never touch the table. Events arrive roughly
    -- in time order, so inserts append to it.
    CREATE INDEX events_by_ts ON events (ts, metric, client_id, amount);
    -- A client's events in time order, with the amount so that the cut
    -- days at the edges of per-client queries are read from the index alone.
    CREATE INDEX events_by_series ON events (client_id, metric, ts, amount);

    CREATE TABLE rejected (
        id            INTEGER PRIMARY KEY,
        digest        BLOB NOT NULL UNIQUE,  -- SHA-256 of raw
        raw           TEXT NOT NULL,         -- the input as JSON
        reasons       TEXT NOT NULL,         -- JSON list of reasons
        rules_version INTEGER NOT NULL,
        received_at   INTEGER NOT NULL,
        attempts      INTEGER NOT NULL
    ) STRICT;

    -- count, sum, min and max of the amounts per (level, client, metric,
    -- bucket), kept in the same transaction as the events they summarise.
    -- level: 1 hour, 2 day, 3 month (UTC). client_id '' sums every client
    -- (a real client id is never empty), so queries across clients read
    -- one row per bucket and metric.
    CREATE TABLE rollups (
        level     INTEGER NOT NULL,
        client_id TEXT NOT NULL,
        metric    TEXT NOT NULL,
        bucket    INTEGER NOT NULL,  -- start of the bucket, ms
        n         INTEGER NOT NULL,
        total     REAL NOT NULL,
        lo        REAL NOT NULL,
        hi        REAL NOT NULL,
        PRIMARY KEY (level, client_id, metric, bucket)
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE rules (
        version    INTEGER PRIMARY KEY,
        document   TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;

    -- Failure injection writes here: the CHECK always fails, so the
    -- transaction is aborted by a real failing statement.
    CREATE TABLE fault_probe (
        point TEXT CHECK (point IS NULL)
    ) STRICT;
    "#;

// 2: every structure a batch writes is led by time, so that a commit of
// events that arrive roughly in time order rewrites a few neighbouring
// pages instead of one page per (client, metric) series in each
// client-led structure.
// - events_by_series (client_id, metric, ts, amount) and events_by_ts go;
//   events_by_hour (ts_hour, client_id, metric, ts, amount) serves both
//   the edge scans (one hour, seeking client and metric) and a client's
//   cut days (one seek per hour that has events).
// - rollups keeps the levels across clients (client_id '' only); the
//   per-client days move to client_days, keyed by the day first.
const MIGRATION_2: &str = r#"
    DROP INDEX events_by_series;
    DROP INDEX events_by_ts;
    -- The start of the UTC hour holding ts (floor division, also before 1970).
    ALTER TABLE events ADD COLUMN ts_hour INTEGER
        GENERATED ALWAYS AS (ts - ((ts % 3600000) + 3600000) % 3600000) VIRTUAL;
    CREATE INDEX events_by_hour ON events (ts_hour, client_id, metric, ts, amount);

    -- count, sum, min and max of one client's amounts of one metric in
    -- one UTC day (bucket: the day's start, ms).
    CREATE TABLE client_days (
        bucket    INTEGER NOT NULL,
        client_id TEXT NOT NULL,
        metric    TEXT NOT NULL,
        n         INTEGER NOT NULL,
        total     REAL NOT NULL,
        lo        REAL NOT NULL,
        hi        REAL NOT NULL,
        PRIMARY KEY (bucket, client_id, metric)
    ) STRICT, WITHOUT ROWID;
    "#;

// 3: events_by_hour led by (ts_hour, metric): the edge scans of a query
// across clients name a metric and now seek to it instead of reading the
// whole hour (a tenth of the pages), and a client's seeks name both (the
// metric from the across-client rollups when the query gives none).
const MIGRATION_3: &str = r#"
    DROP INDEX events_by_hour;
    CREATE INDEX events_by_hour ON events (ts_hour, metric, client_id, ts, amount);
    "#;

// 4: a client's events by time. The hours of a client's cut days came from
// one seek per hour into events_by_hour, each on a page of its own (about
// 75 pages for 30 days at 10M events a year, most of them cold); here they
// lie together, a few pages per cut day. A commit touches one tail page
// per client (a hundred), not per series.
const MIGRATION_4: &str = r#"
    CREATE INDEX events_by_client ON events (client_id, ts_hour, metric, ts, amount);
    "#;

// 5: events_by_client goes again. Its hundred client-led tail pages were
// rewritten by every commit, which made the batch path about a quarter
// slower than the rest. A client's cut days are read by one seek per hour
// into events_by_hour again (pieces.rs, `client_hours`); BENCHMARKS.md has
// what that costs the one-client query.
const MIGRATION_5: &str = r#"
    DROP INDEX events_by_client;
    "#;

// 6: rollups keyed by time, not by metric, and without the client column
// (every row has summed every client since migration 2). A commit's rows of
// one level now lie together: led by metric they sat on a page per metric,
// about twenty pages of a commit of a few events from concurrent callers
// (as much again as the events themselves), each written to the log and
// synced. A query for one metric reads the other metrics' rows of its
// buckets too: ten rows per bucket, a few hundred at most.
const MIGRATION_6: &str = r#"
    DROP TABLE rollups;
    CREATE TABLE rollups (
        level  INTEGER NOT NULL,  -- 1 hour, 2 day, 3 month (UTC)
        bucket INTEGER NOT NULL,  -- start of the bucket, ms
        metric TEXT NOT NULL,
        n      INTEGER NOT NULL,
        total  REAL NOT NULL,
        lo     REAL NOT NULL,
        hi     REAL NOT NULL,
        PRIMARY KEY (level, bucket, metric)
    ) STRICT, WITHOUT ROWID;
    "#;

// 7: exact totals. A REAL total rounded at every addition: one client's
// huge amounts could erase another's from the shared rows, the same events
// summed differently from rollups and from scans, and an infinite total
// (then NaN) failed every later write to the row. The total is now the
// exact sum's bytes (exact.rs), added by this library's ingest_exact_add;
// the rows are rebuilt exactly from the events.
const MIGRATION_7: &str = r#"
    DROP TABLE rollups;
    DROP TABLE client_days;
    CREATE TABLE rollups (
        level  INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        metric TEXT NOT NULL,
        n      INTEGER NOT NULL,
        total  BLOB NOT NULL,
        lo     REAL NOT NULL,
        hi     REAL NOT NULL,
        PRIMARY KEY (level, bucket, metric)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE client_days (
        bucket    INTEGER NOT NULL,
        client_id TEXT NOT NULL,
        metric    TEXT NOT NULL,
        n         INTEGER NOT NULL,
        total     BLOB NOT NULL,
        lo        REAL NOT NULL,
        hi        REAL NOT NULL,
        PRIMARY KEY (bucket, client_id, metric)
    ) STRICT, WITHOUT ROWID;
    "#;

const MIGRATION_8: &str = r#"
    ALTER TABLE rejected ADD COLUMN raw_bytes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rejected ADD COLUMN raw_exact INTEGER NOT NULL DEFAULT 1;
    UPDATE rejected SET raw_bytes = length(CAST(raw AS BLOB));
    CREATE TABLE dead_letter_stats (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        evicted INTEGER NOT NULL
    ) STRICT;
    INSERT INTO dead_letter_stats (id, evicted) VALUES (1, 0);
    "#;

// 9: pruning (issue 17).
const MIGRATION_9: &str = r#"
    -- What pruning removed (one row): the horizon below which nothing is
    -- accepted again, the counts, and the archive its chunks went to with
    -- the length that archive had when the last chunk committed (an
    -- interrupted prune cuts the file back to it before going on).
    CREATE TABLE lifecycle (
        id              INTEGER PRIMARY KEY CHECK (id = 1),
        pruned_before   INTEGER,
        pruned_events   INTEGER NOT NULL,
        pruned_rejected INTEGER NOT NULL,
        archive_path    TEXT,
        archive_bytes   INTEGER
    ) STRICT;
    INSERT INTO lifecycle (id, pruned_events, pruned_rejected) VALUES (1, 0, 0);
    "#;

// 10: one metric's hour rollups together, with what a query reads of them.
// Keyed by time, the hours of a range hold every metric's rows, and a query
// for one metric visited ten rows for each it used: a query grouped by day
// in a zone reads the hours its local midnights cut, and the hours of the
// days whose minimum or maximum those hours may hold (with counts, nearly
// every day), most of its time. Only hours: the index costs a commit one
// entry per metric-hour it adds to, and days and months are few rows.
const MIGRATION_10: &str = r#"
    CREATE INDEX rollup_hours_by_metric ON rollups (metric, bucket, n, total, lo, hi) WHERE level = 1;
    "#;

// 11: API keys (issue 20), in the store so that every process and host
// over one database knows the same ones.
const MIGRATION_11: &str = r#"
    CREATE TABLE api_keys (
        id            TEXT PRIMARY KEY,  -- the public part of its tokens (keys.rs)
        client_id     TEXT,              -- what a client key writes and reads as; NULL: an admin key
        name          TEXT NOT NULL,     -- the client, or the admin key's holder
        secret_sha256 BLOB NOT NULL,     -- the secret itself is never stored
        created_at    INTEGER NOT NULL,
        revoked_at    INTEGER
    ) STRICT;
    "#;

// 12: how many amounts of a rollup row equal its lo and its hi. A query
// grouped by day in a zone takes a UTC day's rollup less an hour of it;
// where that hour held the day's min or max the rest's was unknown and its
// 23 hours were read, which for counts (amounts that repeat, so ties at
// the extremes) was nearly every day. With the counts the rest's extreme
// is known unless the hour held all of them. Rows written before count 0
// (not known) until a new extreme replaces it: no rebuild, which a pruned
// store could not survive (its rollups hold events that are gone).
const MIGRATION_12: &str = r#"
    ALTER TABLE rollups ADD COLUMN n_lo INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rollups ADD COLUMN n_hi INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE client_days ADD COLUMN n_lo INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE client_days ADD COLUMN n_hi INTEGER NOT NULL DEFAULT 0;
    DROP INDEX rollup_hours_by_metric;
    CREATE INDEX rollup_hours_by_metric ON rollups (metric, bucket, n, total, lo, hi, n_lo, n_hi) WHERE level = 1;
    "#;

// 13: dead letters belong to a client (see `migrate::MIGRATION_13`, the
// same on both backends).
const MIGRATION_13: &str = super::migrate::MIGRATION_13;
