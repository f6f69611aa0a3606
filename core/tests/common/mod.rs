//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use ingest_core::{EventFilter, Ingestor, StoredEvent, MAX_PAGE};

/// `../shared/scenarios` beside the checkout, or `$INGEST_SHARED/scenarios`.
/// Missing is a failure, never a skip: every surface must run them.
pub fn scenarios_dir() -> PathBuf {
    let shared = std::env::var_os("INGEST_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let dir = shared.join("scenarios");
    assert!(
        dir.is_dir(),
        "scenarios not found at {} (set INGEST_SHARED)",
        dir.display()
    );
    dir
}

/// Every stored event, paging through the whole store.
pub fn all_events(ing: &Ingestor) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    loop {
        let page = ing
            .events(&EventFilter {
                limit: MAX_PAGE,
                offset: out.len(),
                ..EventFilter::default()
            })
            .unwrap();
        let done = page.len() < MAX_PAGE;
        out.extend(page);
        if done {
            return out;
        }
    }
}

/// Floats equal to 1e-9 relative (sums depend on addition order).
pub fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}
