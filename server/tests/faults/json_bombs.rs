//! Deeply nested and huge JSON questions to `/v1/decide`.
//!
//! Observed: nesting is cut by serde_json's recursion limit (128) with a
//! clear 400 and no stack overflow, whatever the depth (100,000 `[` or `{`
//! with the body limit raised to let them through); a question larger than
//! `--max-body-bytes` is 400 before parsing; a large but allowed question
//! (50,000 headers) gets a decision. The process survives all of it.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::probe::*;
use crate::support::*;

async fn post(addr: std::net::SocketAddr, body: &str) -> (Option<u16>, String) {
    post_declared(addr, body.len(), body).await
}

/// Declares `len` bytes and sends `body` (which may be shorter: the rest
/// is never needed when the answer is a refusal, and sending it into a
/// closed connection would reset it before the answer is read).
async fn post_declared(
    addr: std::net::SocketAddr,
    len: usize,
    body: &str,
) -> (Option<u16>, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(body.as_bytes()).await;
    let (got, _) = read_until_close(&mut s, Duration::from_secs(30)).await;
    (status_of(&got), String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_and_huge_json_get_clear_400s() {
    let fx = Fixture::new();
    let p = limited_server(&fx, &["--max-body-bytes", "4194304"]);
    let before = rss_kib(&p);
    let deep = 100_000;
    let cases = [
        ("100k [", "[".repeat(deep)),
        (
            "100k [ closed",
            format!("{}{}", "[".repeat(deep), "]".repeat(deep)),
        ),
        ("100k {\"a\":", "{\"a\":".repeat(deep)),
        (
            "nested in headers",
            format!(
                r#"{{"method":"GET","path":"/x","headers":{{"a":{}}}}}"#,
                "[".repeat(deep)
            ),
        ),
    ];
    for (what, body) in cases {
        let (status, text) = post(p.addr, &body).await;
        assert_eq!(status, Some(400), "{what}: {text}");
        assert!(text.contains("\"error\""), "{what}: {text}");
        assert_healthy(p.addr).await;
    }
    // Large but within the limit: a defined answer (a decision), not a crash.
    let headers: Vec<String> = (0..50_000).map(|i| format!(r#""x-h{i}":"v""#)).collect();
    let big = format!(
        r#"{{"method":"GET","path":"/public/a","headers":{{{}}}}}"#,
        headers.join(",")
    );
    let (status, text) = post(p.addr, &big).await;
    assert!(
        status == Some(200) || status == Some(400),
        "{}",
        text.get(..500).unwrap_or(&text)
    );
    assert_healthy(p.addr).await;
    let after = rss_kib(&p);
    assert!(after < before + 256 * 1024, "rss {before} -> {after} KiB");

    // Default limits: a 5 MB question is refused before parsing.
    let q = limited_server(&fx, &[]);
    let huge = format!(
        r#"{{"method":"GET","path":"/x","pad":"{}"}}"#,
        "a".repeat(5_000_000)
    );
    let (status, text) = post_declared(q.addr, huge.len(), &huge[..1000]).await;
    assert_eq!(status, Some(400), "{}", text.get(..300).unwrap_or(&text));
    assert!(text.contains("request body exceeds 65536 bytes"), "{text}");
    assert_healthy(q.addr).await;
}
