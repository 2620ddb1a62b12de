//! Health and memory probes.

use std::net::SocketAddr;

use crate::support::*;

/// The server answers `/healthz` on a fresh connection.
pub async fn assert_healthy(addr: SocketAddr) {
    let r = send(addr, "GET", "/healthz", &[], "").await;
    assert_eq!(r.status, 200, "/healthz: {}", r.text());
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`: now, `VmHWM`: peak).
pub fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

pub fn rss_kib(p: &Portcullis) -> u64 {
    proc_kib(p.pid(), "VmRSS")
}

pub fn peak_kib(p: &Portcullis) -> u64 {
    proc_kib(p.pid(), "VmHWM")
}
