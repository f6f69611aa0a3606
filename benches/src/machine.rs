//! What the figures were measured on: they mean little without it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: usize,
    pub model: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub rustc: String,
    pub sqlite: String,
    /// The checkout measured: commit, and whether core/ had uncommitted changes.
    pub core: String,
    /// How long memory may stay idle before the kernel's DAMON pages it out
    /// (page cache included), when such a scheme runs: a store cached from
    /// an earlier run, or read once before the queries, is then partly read
    /// from disk again.
    pub pageout_after: Option<Duration>,
}

impl Machine {
    pub fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let field = |text: &str, name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let mem_kib: f64 = field(&meminfo, "MemTotal")
            .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let rustc = Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            model: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
            memory_gib: mem_kib / (1024.0 * 1024.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            rustc,
            sqlite: rusqlite::version().to_string(),
            core: checkout(),
            pageout_after: damon_pageout(Path::new("/sys/kernel/mm/damon/admin/kdamonds")),
        }
    }
}

/// The shortest idle age after which a running DAMON scheme on physical
/// memory pages memory out, read from DAMON's sysfs tree under `root`.
fn damon_pageout(root: &Path) -> Option<Duration> {
    let read = |p: &Path| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    let number = |p: &Path| read(p)?.parse::<u64>().ok();
    let mut shortest: Option<Duration> = None;
    for kdamond in std::fs::read_dir(root).ok()?.flatten() {
        if read(&kdamond.path().join("state")).as_deref() != Some("on") {
            continue;
        }
        let Ok(contexts) = std::fs::read_dir(kdamond.path().join("contexts")) else {
            continue;
        };
        for context in contexts.flatten().map(|c| c.path()) {
            if read(&context.join("operations")).as_deref() != Some("paddr") {
                continue;
            }
            let Some(aggr_us) = number(&context.join("monitoring_attrs/intervals/aggr_us")) else {
                continue;
            };
            let Ok(schemes) = std::fs::read_dir(context.join("schemes")) else {
                continue;
            };
            for scheme in schemes.flatten().map(|s| s.path()) {
                if read(&scheme.join("action")).as_deref() != Some("pageout") {
                    continue;
                }
                let Some(age) = number(&scheme.join("access_pattern/age/min")) else {
                    continue;
                };
                let after = Duration::from_micros(age.saturating_mul(aggr_us));
                shortest = Some(shortest.map_or(after, |s| s.min(after)));
            }
        }
    }
    shortest
}

fn checkout() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        None => "unknown (not a git checkout)".into(),
        Some(head) => match git(&["status", "--porcelain", "--", "core"]) {
            Some(s) if s.is_empty() => format!("commit {head}"),
            Some(_) => format!("commit {head} with uncommitted changes in core/"),
            None => format!("commit {head}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("{text}\n")).unwrap();
    }

    #[test]
    fn a_running_pageout_scheme_on_physical_memory_is_found_with_its_age() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(damon_pageout(&root.join("absent")), None);
        write(root, "0/state", "on");
        write(root, "0/contexts/0/operations", "paddr");
        write(root, "0/contexts/0/monitoring_attrs/intervals/aggr_us", "5000000");
        write(root, "0/contexts/0/schemes/0/action", "stat");
        write(root, "0/contexts/0/schemes/0/access_pattern/age/min", "1");
        assert_eq!(damon_pageout(root), None, "a scheme that only counts");
        write(root, "0/contexts/0/schemes/1/action", "pageout");
        write(root, "0/contexts/0/schemes/1/access_pattern/age/min", "12");
        assert_eq!(damon_pageout(root), Some(Duration::from_secs(60)));
        write(root, "0/state", "off");
        assert_eq!(damon_pageout(root), None, "a stopped kdamond");
    }
}
