//! Shared by the load benchmarks (`serve`, `router`): latency figures of a
//! run and a process's peak memory.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// Requests per second and latency percentiles of one load run.
pub struct Figures {
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// Waits for the client tasks, each returning the latencies it saw, and
/// sums them up over the time since `started`.
pub async fn figures(tasks: Vec<JoinHandle<Vec<Duration>>>, started: Instant) -> Figures {
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pick = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Figures {
        rps: all.len() as f64 / elapsed,
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

/// Peak resident memory (VmHWM) of process `pid`, in MiB; NaN if unknown.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
