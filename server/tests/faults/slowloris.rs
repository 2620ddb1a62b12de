//! A head sent a few bytes at a time never completes in time: the
//! `--header-read-timeout` clock starts at the first byte and trickling
//! does not reset it. Observed: the connection is closed (no status; the
//! head never arrived, so there is nothing to answer) within the timeout
//! plus one sweep. Meanwhile other clients are served.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::probe::*;
use crate::support::*;

const HEAD_TIMEOUT_SECS: u64 = 1;

/// Trickles a head one byte every 100 ms until the server closes; the bytes
/// the server sent before closing, or a panic after 10× the timeout.
async fn trickle_until_closed(addr: std::net::SocketAddr) -> Vec<u8> {
    let head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut s = TcpStream::connect(addr).await.unwrap();
    let bound = Duration::from_secs(10 * HEAD_TIMEOUT_SECS);
    let started = Instant::now();
    for b in head.iter().cycle() {
        assert!(
            started.elapsed() < bound,
            "slowloris connection still open after {bound:?}"
        );
        if s.write_all(&[*b]).await.is_err() {
            return Vec::new();
        }
        let (got, closed) = read_until_close(&mut s, Duration::from_millis(100)).await;
        if closed {
            return got;
        }
        assert!(got.is_empty(), "answered a head that never ended");
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_heads_are_closed_and_others_still_served() {
    let fx = Fixture::new();
    let p = limited_server(&fx, &["--header-read-timeout", "1s"]);
    let before = rss_kib(&p);
    // 200 slowloris connections at once, and one honest client throughout.
    let mut lorises = tokio::task::JoinSet::new();
    for _ in 0..200 {
        lorises.spawn(trickle_until_closed(p.addr));
    }
    let mut served = 0;
    while !lorises.is_empty() {
        tokio::select! {
            done = lorises.join_next() => {
                let got = done.unwrap().unwrap();
                // Closed without an answer, or with a 408: both end the connection.
                assert!(
                    got.is_empty() || status_of(&got) == Some(408),
                    "{}",
                    String::from_utf8_lossy(&got)
                );
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                assert_healthy(p.addr).await;
                served += 1;
            }
        }
    }
    assert!(served > 0);
    assert_healthy(p.addr).await;
    let after = rss_kib(&p);
    assert!(
        after < before + 64 * 1024,
        "rss grew from {before} KiB to {after} KiB"
    );
}
