//! A `/v1/decide` body trickled slower than `--body-read-timeout` allows.
//! Observed: `408 {"error":"request body not received in time"}` with
//! `connection: close`, within the timeout; the server is fine afterwards.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::probe::*;
use crate::support::*;

const BODY_TIMEOUT_SECS: u64 = 1;

async fn trickle(addr: std::net::SocketAddr, head: &str, piece: &[u8]) -> (Vec<u8>, Duration) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let bound = Duration::from_secs(10 * BODY_TIMEOUT_SECS);
    loop {
        assert!(
            started.elapsed() < bound,
            "slow body still pending after {bound:?}"
        );
        let _ = s.write_all(piece).await;
        let (got, closed) = read_until_close(&mut s, Duration::from_millis(200)).await;
        if closed || !got.is_empty() {
            return (got, started.elapsed());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_bodies_get_408_and_close() {
    let fx = Fixture::new();
    let p = limited_server(&fx, &["--body-read-timeout", "1s"]);
    let shapes = [
        (
            "content-length",
            "POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 4000\r\n\r\n",
            &b" "[..],
        ),
        (
            "chunked",
            "POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
            &b"1\r\n \r\n"[..],
        ),
    ];
    for (what, head, piece) in shapes {
        let (got, _) = trickle(p.addr, head, piece).await;
        let text = String::from_utf8_lossy(&got);
        assert_eq!(status_of(&got), Some(408), "{what}: {text}");
        assert!(
            text.contains("request body not received in time"),
            "{what}: {text}"
        );
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "{what}: {text}"
        );
    }
    assert_healthy(p.addr).await;
}
