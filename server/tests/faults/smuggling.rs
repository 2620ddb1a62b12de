//! Request smuggling shapes: framings that a proxy in front of Portcullis
//! could read differently from us. Each is refused with 400 and the
//! connection closed, so nothing after it on the wire is read as a request;
//! the one exception is `Transfer-Encoding` with `Content-Length`.
//!
//! Verdict on `Transfer-Encoding: chunked` + `Content-Length`: treated as
//! chunked, answered, and the connection closed (RFC 9112 section 6.3,
//! which allows this or a rejection). hyper drops the `Content-Length`
//! from the parsed head before any service sees it, so a 400 would need a
//! second HTTP parser below hyper, and a second parser is itself a
//! smuggling risk (two parsers disagreeing is the attack). What matters
//! holds: the body is framed one way only and no second request is read.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::probe::*;
use crate::support::*;

const BODY: &str = r#"{"method":"GET","path":"/x"}"#;
/// A request hidden after each shape: it must never be answered.
const SMUGGLED: &str = "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";

/// Sends `bytes` and `SMUGGLED` after them; (statuses answered, closed?).
async fn answers(addr: std::net::SocketAddr, bytes: &str) -> (Vec<u16>, bool, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes.as_bytes()).await.unwrap();
    let _ = s.write_all(SMUGGLED.as_bytes()).await;
    let (got, closed) = read_until_close(&mut s, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&got).into_owned();
    let statuses = text
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect();
    (statuses, closed, text)
}

fn shapes() -> Vec<(&'static str, String)> {
    let n = BODY.len();
    vec![
        (
            "two differing content-lengths",
            format!("POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-length: {n}\r\ncontent-length: 5\r\n\r\n{BODY}"),
        ),
        (
            "content-length list with differing values",
            format!("POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-length: {n}, 5\r\n\r\n{BODY}"),
        ),
        (
            "signed content-length",
            format!("POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-length: +{n}\r\n\r\n{BODY}"),
        ),
        (
            "gzip before chunked",
            format!("POST /v1/decide HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip, chunked\r\n\r\n{n:x}\r\n{BODY}\r\n0\r\n\r\n"),
        ),
        (
            "transfer-encoding twice",
            format!("POST /v1/decide HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n{n:x}\r\n{BODY}\r\n0\r\n\r\n"),
        ),
        (
            "chunked listed twice",
            format!("POST /v1/decide HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked, chunked\r\n\r\n{n:x}\r\n{BODY}\r\n0\r\n\r\n"),
        ),
        (
            "chunked not last",
            format!("POST /v1/decide HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked, identity\r\n\r\n{n:x}\r\n{BODY}\r\n0\r\n\r\n"),
        ),
        (
            "transfer-encoding in HTTP/1.0",
            format!("POST /v1/decide HTTP/1.0\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n{n:x}\r\n{BODY}\r\n0\r\n\r\n"),
        ),
        (
            "obs-fold",
            format!("POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-length: {n}\r\nx-folded: a\r\n b\r\n\r\n{BODY}"),
        ),
        (
            "obs-fold of transfer-encoding",
            format!("POST /v1/decide HTTP/1.1\r\nhost: x\r\ntransfer-encoding:\r\n chunked\r\ncontent-length: {n}\r\n\r\n{BODY}"),
        ),
        (
            "space before the colon",
            format!("POST /v1/decide HTTP/1.1\r\nhost: x\r\ntransfer-encoding : chunked\r\ncontent-length: {n}\r\n\r\n{BODY}"),
        ),
        (
            "bad chunk size",
            "POST /v1/decide HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".to_string(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_framing_gets_400_and_close() {
    let fx = Fixture::new();
    let p = Portcullis::start(&fx);
    let mut failures = Vec::new();
    for (what, bytes) in shapes() {
        let (statuses, closed, text) = answers(p.addr, &bytes).await;
        if statuses != [400] || !closed {
            failures.push(format!(
                "{what}: statuses {statuses:?}, closed {closed}\n{text}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
    assert_healthy(p.addr).await;
}

/// Regression: hyper accepts `Transfer-Encoding: gzip, chunked` (chunked is
/// last) and hands the still-gzipped body on, and keeps the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coding_before_chunked_was_accepted() {
    let fx = Fixture::new();
    let p = Portcullis::start(&fx);
    let fwd = "GET /v1/forward-auth HTTP/1.1\r\nhost: x\r\nx-forwarded-method: GET\r\nx-forwarded-uri: /public/a\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n";
    let (statuses, closed, text) = answers(p.addr, fwd).await;
    assert_eq!(statuses, [400], "{text}");
    assert!(
        text.contains("transfer-encoding other than `chunked`"),
        "{text}"
    );
    assert!(closed);
    // A plain chunked body is still fine, and keeps the connection.
    let n = BODY.len();
    let ok = format!("POST /v1/decide HTTP/1.1\r\nhost: x\r\ntransfer-encoding: Chunked\r\n\r\n{n:x}\r\n{BODY}\r\n0\r\n\r\n");
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(ok.as_bytes()).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = read_until_close(&mut s, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    assert_healthy(p.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_encoding_with_content_length_is_chunked_and_closed() {
    let fx = Fixture::new();
    let p = Portcullis::start(&fx);
    let n = BODY.len();
    for order in [
        "transfer-encoding: chunked\r\ncontent-length: 5",
        "content-length: 5\r\ntransfer-encoding: chunked",
    ] {
        let bytes = format!(
            "POST /v1/decide HTTP/1.1\r\nhost: x\r\n{order}\r\n\r\n{n:x}\r\n{BODY}\r\n0\r\n\r\n"
        );
        let (statuses, closed, text) = answers(p.addr, &bytes).await;
        // The chunked body was the question (a decision, 200); nothing after it was read.
        assert_eq!(statuses, [200], "{text}");
        assert!(text.contains("\"allow\":false"), "{text}");
        assert!(closed, "{text}");
    }
    assert_healthy(p.addr).await;
}
