//! As many idle keep-alive connections as the machine allows, up to 10,000:
//! each sends one request and then sits idle, as a gateway's pool does. The
//! file-descriptor limit of this process (inherited by the server) is
//! raised to its hard limit first, with `prlimit` (no unsafe code here).
//!
//! Observed: all of them held with `--max-connections` set to that number,
//! the next connection answered `503 {"error":"too many open connections"}`
//! and closed, the held ones still served, and slots back once they close.
//! The figures (connections reached, RSS before and after, peak RSS) are
//! printed; run with `--nocapture` to see them.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::probe::*;
use crate::support::*;

const WANTED: u64 = 10_000;
/// Descriptors kept back for everything else in both processes.
const SPARE: u64 = 256;

/// (soft, hard) `Max open files` of a process.
fn nofile(pid: &str) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

/// Raises our soft limit to the hard one (when `prlimit` is there); the
/// server started afterwards inherits it.
fn raise_nofile() -> u64 {
    let (soft, hard) = nofile("self");
    if soft < hard {
        let me = std::process::id().to_string();
        let _ = std::process::Command::new("prlimit")
            .args(["--pid", &me, &format!("--nofile={hard}:{hard}")])
            .status();
    }
    nofile("self").0
}

async fn get_healthz(s: &mut TcpStream) -> Option<u16> {
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .ok()?;
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    status_of(&buf[..n])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_and_the_limit() {
    let soft = raise_nofile();
    let target = WANTED.min(soft.saturating_sub(SPARE));
    assert!(target >= 500, "only {soft} file descriptors allowed");
    let fx = Fixture::new();
    let limit = target.to_string();
    let p = limited_server(
        &fx,
        &[
            "--max-connections",
            &limit,
            "--header-read-timeout",
            "60s",
            "--idle-timeout",
            "120s",
        ],
    );
    assert_healthy(p.addr).await;
    let before = rss_kib(&p);
    let started = Instant::now();

    let mut held = Vec::with_capacity(target as usize);
    let mut tasks = tokio::task::JoinSet::new();
    let mut opened = 0u64;
    while opened < target || !tasks.is_empty() {
        while opened < target && tasks.len() < 256 {
            let addr = p.addr;
            tasks.spawn(async move {
                let mut s = TcpStream::connect(addr).await.ok()?;
                (get_healthz(&mut s).await == Some(200)).then_some(s)
            });
            opened += 1;
        }
        if let Some(done) = tasks.join_next().await {
            if let Some(s) = done.unwrap() {
                held.push(s);
            }
        }
    }
    let reached = held.len() as u64;
    let opened_in = started.elapsed();
    let after = rss_kib(&p);
    let peak = peak_kib(&p);
    eprintln!(
        "idle connections: {reached} of {target} (nofile {soft}) in {opened_in:?}; \
         server rss {before} KiB before, {after} KiB after, peak {peak} KiB; \
         {:.1} KiB per connection",
        (after.saturating_sub(before)) as f64 / reached.max(1) as f64
    );
    assert_eq!(reached, target, "not every connection was served");
    assert!(
        after.saturating_sub(before) < reached * 64,
        "more than 64 KiB per idle connection: {before} -> {after} KiB"
    );

    // Full: the next connection is refused with a 503 and closed.
    let (status, closed) = raw_closed(p.addr, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(status, Some(503));
    assert!(closed);
    // The held connections are still served.
    for s in held.iter_mut().step_by(1000) {
        assert_eq!(get_healthz(s).await, Some(200));
    }
    drop(held);
    // Slots come back once the connections close.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = raw_closed(
            p.addr,
            b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        if status == Some(200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slots never came back: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_healthy(p.addr).await;
}
