//! Request heads and bodies over the limits.
//!
//! Observed: a head over `--max-header-bytes` or with more than
//! `--max-headers` fields gets 431 (HTTP/1.1); a `/v1/decide` body over
//! `--max-body-bytes`, declared or streamed (chunked), gets
//! `400 {"error":"request body exceeds N bytes"}` with `connection: close`:
//! SPEC section 3 makes "body too large" a malformed question (400), so not 413.
//! Over HTTP/2 an oversized header list is refused as hyper's h2 does it
//! (a 431 or a stream/connection reset), never served.

use http_body_util::Full;
use hyper::body::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::probe::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_431_and_bodies_400() {
    let fx = Fixture::new();
    let p = Portcullis::start(&fx);
    let before = rss_kib(&p);

    // One huge header (default limit 32 KiB), then a few hundred small ones (limit 100).
    let big = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    assert_eq!(raw_closed(p.addr, big.as_bytes()).await, (Some(431), true));
    let mut many = String::from("GET /healthz HTTP/1.1\r\nhost: x\r\n");
    for i in 0..500 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(raw_closed(p.addr, many.as_bytes()).await, (Some(431), true));

    // A declared 10 MB body: refused before a byte of it is read.
    let head = "POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-length: 10000000\r\n\r\n";
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let (got, closed) = read_until_close(&mut s, std::time::Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&got);
    assert_eq!(status_of(&got), Some(400), "{text}");
    assert!(text.contains("request body exceeds 65536 bytes"), "{text}");
    assert!(closed, "connection kept open after an oversized body");

    // A streamed (chunked) body: cut at the limit (only a little more is sent,
    // so the close does not reset the connection before the answer is read).
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"POST /v1/decide HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = format!("4000\r\n{}\r\n", "a".repeat(0x4000));
    for _ in 0..5 {
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break; // closed on us: fine, the answer is already there
        }
    }
    let (got, closed) = read_until_close(&mut s, std::time::Duration::from_secs(10)).await;
    assert_eq!(
        status_of(&got),
        Some(400),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(closed);

    // HTTP/2: a header list over the limit is never served.
    let mut h2 = H2Client::connect(p.addr).await;
    let req = hyper::Request::builder()
        .method("GET")
        .uri(format!("http://{}/healthz", p.addr))
        .header("x-big", "a".repeat(64 * 1024))
        .body(Full::new(Bytes::new()))
        .unwrap();
    match h2.try_send(req).await {
        Ok(r) => assert_eq!(r.status, 431, "{}", r.text()),
        Err(e) => eprintln!("h2 oversized header list: refused with {e}"),
    }

    assert_healthy(p.addr).await;
    let after = rss_kib(&p);
    assert!(after < before + 64 * 1024, "rss {before} -> {after} KiB");
}
