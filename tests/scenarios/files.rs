//! Which scenario files the Rust test suites run (the core's and the C
//! ABI's include this file), by the rule of `README.md` beside it.

use std::path::{Path, PathBuf};

/// A scenario file to run, and the name it goes by in messages.
pub struct Scenario {
    /// `tests/scenarios/seed.json`, or `shared/extra.json` for a file of the
    /// shared folder (marked when it differs from the repository's copy).
    pub label: String,
    pub path: PathBuf,
}

/// The scenarios every surface runs: each `tests/scenarios/*.json` of the
/// repository (missing or empty is a failure), then each file of
/// `$INGEST_SHARED/scenarios` (default `../shared` beside the checkout) when
/// that folder exists. A shared file with a repository file's name and the
/// same JSON runs once (as the repository's); with other JSON it runs too,
/// so that a changed shared case fails here rather than hides behind the
/// older copy. See `tests/scenarios/README.md`.
pub fn scenario_files() -> Vec<Scenario> {
    // The core crate has them as its own tests/scenarios (a link to this
    // folder, so that its package holds them); the C ABI's crate reads them
    // here.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let repo = [manifest.join("tests/scenarios"), manifest.join("../tests/scenarios")]
        .into_iter()
        .find(|dir| dir.join("files.rs").is_file())
        .unwrap_or_else(|| manifest.join("tests/scenarios"));
    let mut out: Vec<Scenario> = json_files(&repo)
        .unwrap_or_else(|e| panic!("the repository's scenarios are missing at {}: {e}", repo.display()))
        .into_iter()
        .map(|path| Scenario {
            label: format!("tests/scenarios/{}", file_name(&path)),
            path,
        })
        .collect();
    assert!(!out.is_empty(), "no scenario files in {}", repo.display());
    let shared = std::env::var_os("INGEST_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
        .join("scenarios");
    let Ok(extra) = json_files(&shared) else {
        eprintln!(
            "NOTE: no shared scenarios at {}; running the repository's only",
            shared.display()
        );
        return out;
    };
    for path in extra {
        let name = file_name(&path);
        let label = match out.iter().find(|s| file_name(&s.path) == name) {
            None => format!("shared/{name}"),
            Some(own) if same_json(&own.path, &path) => continue,
            Some(_) => format!("shared/{name} (differs from tests/scenarios/{name})"),
        };
        out.push(Scenario { label, path });
    }
    out
}

/// The `*.json` files of `dir`, sorted; an error when `dir` cannot be read.
fn json_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "json") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

pub fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Both files hold the same JSON value (layout aside); unreadable or
/// invalid counts as different, so that the file runs and fails.
fn same_json(a: &Path, b: &Path) -> bool {
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    };
    matches!((read(a), read(b)), (Some(x), Some(y)) if x == y)
}
