//! Contender (e), from Python: runs `benches/python_compare.py` on the same
//! events and reads the JSON it prints.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::gen::{Events, Spec};
use crate::measure::{fail, Res};

/// Rates measured in Python, all with durability `normal`.
#[derive(Debug, Clone)]
pub struct PyRates {
    /// `Ingestor.submit_batch` of dicts, batches of `batch`.
    pub batch_events: u64,
    pub batch_per_sec: f64,
    /// The pure-Python `sqlite3` implementation, same batches.
    pub pure_per_sec: f64,
    /// `Ingestor.submit(dict)` one by one.
    pub submit_events: u64,
    pub submit_per_sec: f64,
    pub submit_median_us: f64,
    pub submit_p99_us: f64,
    pub batch: u64,
    pub python: String,
}

/// The interpreter to use, if it can import `ingest`.
pub fn usable(python: &Path) -> Result<(), String> {
    if !python.exists() {
        return Err(format!(
            "{} does not exist (run `make venv python-install`)",
            python.display()
        ));
    }
    let out = Command::new(python)
        .args(["-c", "import ingest"])
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} cannot import ingest: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The JSON a contender's script printed, or what went wrong, in its
/// words (stderr when it failed).
pub fn answer(script: &Path, output: &Output) -> Res<Value> {
    let name = script.file_name().unwrap_or(script.as_os_str()).to_string_lossy();
    if !output.status.success() {
        return fail(format!(
            "{name} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "{name} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?)
}

pub struct PyJob<'a> {
    pub python: &'a Path,
    pub script: &'a Path,
    pub dir: &'a Path,
    pub spec: Spec,
    pub batch_events: u64,
    pub submit_events: u64,
    pub batch: u64,
}

/// Write the events as JSON lines, run the script, and read its answer.
/// The script itself checks both implementations against the number of
/// distinct events, and against each other's aggregates.
pub fn run(job: &PyJob<'_>) -> Res<PyRates> {
    let events_file: PathBuf = job.dir.join("python-events.jsonl");
    let mut out = BufWriter::new(std::fs::File::create(&events_file)?);
    let mut gen = Events::new(job.spec);
    let most = job.batch_events.max(job.submit_events);
    let (mut unique_batch, mut unique_submit) = (0, 0);
    for i in 1..=most {
        let Some(g) = gen.next() else { break };
        serde_json::to_writer(&mut out, &g.raw)?;
        out.write_all(b"\n")?;
        if i == job.batch_events {
            unique_batch = gen.unique();
        }
        if i == job.submit_events {
            unique_submit = gen.unique();
        }
    }
    out.flush()?;
    drop(out);
    let output = Command::new(job.python)
        .arg(job.script)
        .arg("--events-file")
        .arg(&events_file)
        .arg("--dir")
        .arg(job.dir)
        .args(["--batch-events", &job.batch_events.to_string()])
        .args(["--batch-unique", &unique_batch.to_string()])
        .args(["--submit-events", &job.submit_events.to_string()])
        .args(["--submit-unique", &unique_submit.to_string()])
        .args(["--batch", &job.batch.to_string()])
        .output()?;
    let _ = std::fs::remove_file(&events_file);
    let v = answer(job.script, &output)?;
    let num = |path: &[&str]| -> Res<f64> {
        let mut at = &v;
        for p in path {
            at = &at[*p];
        }
        at.as_f64()
            .ok_or_else(|| format!("python_compare.py: no number at {}", path.join(".")).into())
    };
    let rate = |what: &str| -> Res<f64> { Ok(num(&[what, "events"])? / num(&[what, "seconds"])?.max(1e-9)) };
    Ok(PyRates {
        batch_events: num(&["ingest_batch", "events"])? as u64,
        batch_per_sec: rate("ingest_batch")?,
        pure_per_sec: rate("pure_python")?,
        submit_events: num(&["ingest_submit", "events"])? as u64,
        submit_per_sec: rate("ingest_submit")?,
        submit_median_us: num(&["ingest_submit", "median_us"])?,
        submit_p99_us: num(&["ingest_submit", "p99_us"])?,
        batch: job.batch,
        python: v["python"].as_str().unwrap_or("?").to_string(),
    })
}
