//! What Linux says about a process and the machine: CPU time (utime +
//! stime from `/proc/PID/stat`), peak RSS (`VmHWM`), machine-wide busy time
//! (`/proc/stat`), and the environment a report states.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux we know).
pub fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// User + system CPU seconds of a process (`self` or a pid), threads included.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_from_stat(&stat).map(|ticks| ticks as f64 / clock_ticks())
}

/// utime + stime (ticks) from a `/proc/PID/stat` line. The command name
/// (field 2) may hold spaces and parentheses, so fields count from the last `)`.
fn cpu_from_stat(stat: &str) -> Option<u64> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15 → indexes 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` line of `/proc/PID/status`, in bytes.
pub fn status_bytes(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field(&status, field)
}

fn status_field(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let v = l.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = v.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

/// Machine-wide CPU time: (busy, total) seconds summed over all cores.
pub fn machine_cpu() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    machine_from_stat(&stat).map(|(b, t)| (b as f64 / clock_ticks(), t as f64 / clock_ticks()))
}

fn machine_from_stat(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Nanoseconds on CPU per live thread (`/proc/PID/task/TID/schedstat`,
/// first field): far finer than the 10 ms ticks of `stat`, but a thread
/// that exits takes its time with it.
pub fn thread_cpu_ns(pid: &str) -> HashMap<u32, u64> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else {
            continue;
        };
        let ns = std::fs::read_to_string(e.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
        if let Some(ns) = ns {
            out.insert(tid, ns);
        }
    }
    out
}

/// A process's CPU and the machine's, read together at the edges of a phase.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    /// Server utime + stime (seconds, tick resolution, exited threads included).
    pub server: f64,
    /// Server per-thread CPU (ns, fine resolution, live threads only).
    pub server_threads: HashMap<u32, u64>,
    pub client: f64,
    pub machine_busy: f64,
    pub machine_total: f64,
}

impl CpuSample {
    pub fn take(server_pid: u32) -> Self {
        let (machine_busy, machine_total) = machine_cpu().unwrap_or((0.0, 0.0));
        let pid = server_pid.to_string();
        CpuSample {
            server: cpu_seconds(&pid).unwrap_or(0.0),
            server_threads: thread_cpu_ns(&pid),
            client: cpu_seconds("self").unwrap_or(0.0),
            machine_busy,
            machine_total,
        }
    }

    /// Server CPU seconds from `before` to `self`: the per-thread sum (fine),
    /// unless the tick count grew by clearly more (threads that exited in
    /// between took their time with them), then the ticks.
    pub fn server_since(&self, before: &CpuSample) -> f64 {
        let fine: u64 = self
            .server_threads
            .iter()
            .map(|(tid, ns)| {
                ns.saturating_sub(before.server_threads.get(tid).copied().unwrap_or(0))
            })
            .sum();
        let fine = fine as f64 / 1e9;
        let coarse = (self.server - before.server).max(0.0);
        let tick = 1.0 / clock_ticks();
        if self.server_threads.is_empty() || coarse > fine + 2.0 * tick {
            coarse
        } else {
            fine
        }
    }
}

/// The machine a report was measured on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_bytes: u64,
    pub kernel: String,
    /// RFC 3339, UTC.
    pub date: String,
    /// 1-minute load average when the run started.
    pub load_average: f64,
    pub portcullis: String,
    pub portcullis_version: String,
    pub git_commit: Option<String>,
    pub client_threads: usize,
}

impl Environment {
    pub fn detect(portcullis: &std::path::Path, client_threads: usize) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = status_field(&meminfo, "MemTotal").unwrap_or(0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let load_average = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        let portcullis_version = std::process::Command::new(portcullis)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let git_commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        Environment {
            cpu_model,
            cores,
            memory_bytes,
            kernel,
            date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            load_average,
            portcullis: portcullis.display().to_string(),
            portcullis_version,
            git_commit,
            client_threads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_names() {
        let line =
            "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 25 0 0 20 0 9 0 100 0 0";
        assert_eq!(cpu_from_stat(line), Some(175));
        assert_eq!(cpu_from_stat("garbage"), None);
    }

    #[test]
    fn status_and_machine_lines() {
        let status = "Name:\tportcullis\nVmHWM:\t   20480 kB\nVmRSS:\t 10240 kB\n";
        assert_eq!(status_field(status, "VmHWM"), Some(20480 * 1024));
        assert_eq!(status_field(status, "VmSwap"), None);
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n";
        assert_eq!(machine_from_stat(stat), Some((150, 1000)));
    }

    #[test]
    fn this_process_has_cpu_and_memory() {
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_seconds("self").is_some());
        let me = std::process::id().to_string();
        let threads = thread_cpu_ns(&me);
        assert!(!threads.is_empty());
        let a = CpuSample::take(std::process::id());
        let mut y = 0u64;
        for i in 0..5_000_000u64 {
            y = y.wrapping_mul(31).wrapping_add(i);
        }
        assert!(y != 1);
        let b = CpuSample::take(std::process::id());
        assert!(b.server_since(&a) > 0.0);
        assert!(status_bytes("self", "VmHWM").unwrap() > 0);
        let (busy, total) = machine_cpu().unwrap();
        assert!(total >= busy && total > 0.0);
    }
}
