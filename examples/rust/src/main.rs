//! Submit the events of a messy client, show how each is answered, and print
//! aggregates. Usage: `cargo run -p ingest-example [DB_PATH]` (default: an
//! in-memory store).

use std::process::ExitCode;

use ingest_core::{Ingestor, Outcome, Query};

const EVENTS: &[&str] = &[
    r#"{"source": "clientA", "payload": {"metric": "sales", "value": 1200, "timestamp": "2024-01-01"}}"#,
    // A retry, spelled differently: the same event.
    r#"{"client_id": "clientA", "metric": "SALES", "amount": "1200", "ts": "2024-01-01T00:00:00Z"}"#,
    r#"{"source": "clientB", "payload": {"amt": "1200", "ts": "2024-01-02"}}"#,
    // Missing amount and timestamp: rejected with both reasons, never guessed.
    r#"{"source": "clientC", "payload": {"metric": "views"}}"#,
    r#"{"source": "clientD", "payload": {"metric": "sales", "value": 50, "timestamp": "2024-01-03T10:00:00Z"}}"#,
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), ingest_core::Error> {
    let path = std::env::args().nth(1).unwrap_or_else(|| ":memory:".into());
    let ing = Ingestor::open(&path)?;
    for text in EVENTS {
        match ing.submit_json(text)? {
            Outcome::Accepted { id, event } => {
                println!(
                    "accepted  #{}  {} {} {} at {}",
                    id.unwrap_or_default(),
                    event.client_id,
                    event.metric,
                    event.amount,
                    event.timestamp
                )
            }
            Outcome::Duplicate { id, .. } => println!("duplicate of #{id}"),
            Outcome::Conflict { id, reasons, .. } => {
                let why: Vec<&str> = reasons.iter().map(|r| r.field.as_str()).collect();
                println!("conflict with #{id} ({})", why.join(", "))
            }
            Outcome::Rejected { reasons } => {
                let why: Vec<String> = reasons.iter().map(|r| format!("{} {}", r.code, r.field)).collect();
                println!("rejected  ({})", why.join(", "));
            }
        }
    }
    for q in [
        r#"{"metric": "sales"}"#,
        r#"{"start": "2024-01-01", "end": "2024-02-01", "group_by": "day"}"#,
    ] {
        let result = ing.aggregate(&Query::from_json(q)?)?;
        println!(
            "aggregate {q}:\n{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        );
    }
    let stats = ing.stats()?;
    println!(
        "stored events: {}, stored rejections: {}",
        stats.stored_events, stats.stored_rejected
    );
    Ok(())
}
