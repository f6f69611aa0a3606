//! The SQLite schema as numbered migrations. `PRAGMA user_version` holds how
//! many have been applied; opening a file applies the rest in one
//! transaction. Never edit a migration that has shipped: append a new one.

pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: events, dead letters, rollups, rules versions.
    r#"
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
    "#,
];
