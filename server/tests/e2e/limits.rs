//! Limits, timeouts and malformed HTTP: every case ends in a 4xx/5xx status
//! or a closed connection, never a hang. Raw TCP so that the bytes on the
//! wire are exactly the ones under test.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_431() {
    let fx = Fixture::new();
    let p = limited_server(&fx, &["--max-header-bytes", "16384", "--max-headers", "50"]);
    let mut many = String::from("GET /healthz HTTP/1.1\r\nhost: x\r\n");
    for i in 0..80 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(raw(p.addr, many.as_bytes()).await, Some(431));
    let big = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    assert_eq!(raw(p.addr, big.as_bytes()).await, Some(431));
    // Within the limits all is well.
    assert_eq!(
        raw(
            p.addr,
            b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        .await,
        Some(200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_and_idle_connections_are_closed() {
    let fx = Fixture::new();
    let p = limited_server(
        &fx,
        &["--header-read-timeout", "1s", "--idle-timeout", "2s"],
    );

    // Slowloris: a head trickled byte by byte never completes in time.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    let mut closed = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if s.write_all(b"x-a: b\r\n").await.is_err() {
            closed = true;
            break;
        }
        let mut b = [0u8; 64];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "slowloris connection still open after {:?}",
        started.elapsed()
    );

    // A connection that sends nothing.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let (_, closed) = read_until_close(&mut s, Duration::from_secs(10)).await;
    assert!(closed);

    // An idle keep-alive connection: kept past the head timeout, closed after the idle timeout.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut b = [0u8; 1024];
    let n = s.read(&mut b).await.unwrap();
    assert_eq!(status_of(&b[..n]), Some(200));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let n = s.read(&mut b).await.unwrap();
    assert_eq!(
        status_of(&b[..n]),
        Some(200),
        "closed before the idle timeout"
    );
    let (_, closed) = read_until_close(&mut s, Duration::from_secs(10)).await;
    assert!(closed, "idle connection not closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_too_large_or_too_slow() {
    let fx = Fixture::new();
    let p = limited_server(&fx, &["--body-read-timeout", "1s"]);
    // Declared too large: refused before reading.
    let head = "POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n";
    assert_eq!(raw(p.addr, head.as_bytes()).await, Some(400));
    // Chunked and too large.
    let mut chunked =
        String::from("POST /v1/decide HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n");
    for _ in 0..20 {
        chunked.push_str(&format!("1000\r\n{}\r\n", "a".repeat(4096)));
    }
    chunked.push_str("0\r\n\r\n");
    assert_eq!(raw(p.addr, chunked.as_bytes()).await, Some(400));
    // Slow: 10 of 100 promised bytes.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"method\":")
        .await
        .unwrap();
    let (got, _) = read_until_close(&mut s, Duration::from_secs(10)).await;
    assert_eq!(
        status_of(&got),
        Some(408),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_framing_is_refused() {
    let fx = Fixture::new();
    let p = Portcullis::start(&fx);
    let body = r#"{"method":"GET","path":"/x"}"#;
    // Transfer-Encoding with Content-Length: hyper decodes the chunked body
    // and closes the connection after answering (RFC 9112 section 6.1), so
    // nothing can be smuggled behind it.
    let both = format!("POST /v1/decide HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n1c\r\n{body}\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(both.as_bytes()).await.unwrap();
    let (got, closed) = read_until_close(&mut s, Duration::from_secs(10)).await;
    assert!(
        closed,
        "connection kept open after transfer-encoding with content-length"
    );
    assert_eq!(
        String::from_utf8_lossy(&got).matches("HTTP/1.1 ").count(),
        1,
        "a second request was served"
    );
    let cases: Vec<(&str, String)> = vec![
        (
            "two different content-lengths",
            format!("POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-length: 28\r\ncontent-length: 5\r\n\r\n{body}"),
        ),
        (
            "obs-fold",
            "GET /healthz HTTP/1.1\r\nhost: x\r\nx-folded: a\r\n b\r\n\r\n".to_string(),
        ),
        (
            "bad chunk size",
            "POST /v1/decide HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".to_string(),
        ),
        ("garbage request line", "HELLO\r\n\r\n".to_string()),
    ];
    for (what, bytes) in cases {
        let status = raw(p.addr, bytes.as_bytes()).await;
        assert!(
            status.is_none() || status.is_some_and(|s| (400..500).contains(&s)),
            "{what}: {status:?}"
        );
    }
    // The server is still fine.
    assert_eq!(send(p.addr, "GET", "/healthz", &[], "").await.status, 200);
}

/// A keep-alive connection that has been served once, so it holds a slot.
async fn held_connection(addr: std::net::SocketAddr) -> Client {
    let mut c = Client::connect(addr).await;
    assert_eq!(
        c.send(req("GET", "/healthz", &[("host", b"x")], ""))
            .await
            .status,
        200
    );
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_get_503() {
    let fx = Fixture::new();
    let p = limited_server(&fx, &["--max-connections", "2"]);
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(held_connection(p.addr).await);
    }
    let status = raw(p.addr, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(status, Some(503));
    drop(held);
    // Slots come back once connections close.
    let mut ok = false;
    for _ in 0..100 {
        if raw(
            p.addr,
            b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await
            == Some(200)
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok);
    let m = send(p.addr, "GET", "/metrics", &[], "").await.text();
    assert!(m.contains(r#"portcullis_connections_total{listener="decision",result="refused"}"#));
}

/// The whole answer to `request` on a new connection, as text.
async fn raw_text(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let (got, _) = read_until_close(&mut s, Duration::from_secs(10)).await;
    String::from_utf8_lossy(&got).to_lowercase()
}

/// nginx `auth_request` turns a 503 into a 500: a forward-auth question
/// refused at the connection limit in nginx mode (the server's default or
/// `?mode=nginx`) is a 403 with the reason, like a decision's 503 would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_refusals_speak_nginx_in_nginx_mode() {
    let fx = Fixture::new();
    for (default_nginx, args) in [
        (
            true,
            &["--max-connections", "1", "--forward-auth-mode", "nginx"][..],
        ),
        (false, &["--max-connections", "1"][..]),
    ] {
        let p = limited_server(&fx, args);
        let held = held_connection(p.addr).await;
        let cases = [
            ("/v1/forward-auth", default_nginx),
            ("/v1/forward-auth?mode=nginx", true),
            ("/v1/forward-auth?mode=standard", false),
            ("/v1/forward-authx?mode=nginx", false),
            ("/healthz", false),
        ];
        for (target, nginx) in cases {
            let got = raw_text(p.addr, &format!("GET {target} HTTP/1.1\r\nhost: x\r\n\r\n")).await;
            let want = if nginx {
                "http/1.1 403 "
            } else {
                "http/1.1 503 "
            };
            assert!(got.starts_with(want), "{args:?} {target}: {got}");
            assert!(
                got.contains("\r\nx-auth-reason: overloaded\r\n"),
                "{target}: {got}"
            );
            assert!(got.contains("\r\nretry-after: 1\r\n"), "{target}: {got}");
        }
        drop(held);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_drains_in_flight_requests() {
    let fx = Fixture::new();
    let mut p = Portcullis::start(&fx);
    let body = format!(
        r#"{{"method":"GET","path":"/v1/charges/ch_1","host":"api.example.com","headers":{{"x-api-key":"{}"}}}}"#,
        fx.keys.read
    );
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let head = format!(
        "POST /v1/decide HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body.as_bytes()[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    p.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are no longer accepted.
    assert!(
        TcpStream::connect(p.addr).await.is_err(),
        "still accepting after SIGTERM"
    );
    // The request in flight completes.
    s.write_all(&body.as_bytes()[10..]).await.unwrap();
    let (got, closed) = read_until_close(&mut s, Duration::from_secs(10)).await;
    assert_eq!(
        status_of(&got),
        Some(200),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(String::from_utf8_lossy(&got).contains("\"allow\":true"));
    assert!(closed, "connection kept open after the drain");
    let status = p.wait_exit(Duration::from_secs(10)).expect("did not exit");
    assert!(status.success(), "{status:?}");
}
