//! Envoy cannot be installed on this machine, so this module plays Envoy's
//! HTTP `ext_authz` client as its documentation describes it (configuration
//! in docs/gateways/envoy.md):
//!
//! - the check request has the original method, `path_prefix` + the original
//!   path and query, `Content-Length: 0` and no body, and of the client's
//!   headers only `Host`, `Authorization` and those matched by
//!   `allowed_headers` (here `x-api-key`, `x-forwarded-for`);
//! - exactly 200 allows: answer headers matched by `allowed_upstream_headers`
//!   are set on the upstream request (replacing the client's), and the
//!   headers named in `x-envoy-auth-headers-to-remove` are removed;
//! - any other status below 500 is a denial, sent to the client with the
//!   answer's headers; 5xx (and resets) are errors (`status_on_error`).

use crate::support::*;

pub(crate) const PREFIX: &str = "/v1/ext-authz";
pub(crate) const ALLOWED_HEADERS: [&str; 3] = ["authorization", "x-api-key", "x-forwarded-for"];
pub(crate) const UPSTREAM_HEADERS: [&str; 4] = [
    "x-auth-principal",
    "x-auth-consumer",
    "x-auth-scopes",
    "x-auth-credential",
];

#[derive(Debug)]
enum Outcome {
    /// The request as the upstream would receive it.
    Allowed(Vec<(String, String)>),
    Denied(Resp),
    Error(u16),
}

async fn envoy(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    client: &[(&str, &str)],
) -> Outcome {
    let mut check: Vec<(&str, &[u8])> =
        vec![("host", b"api.example.com"), ("content-length", b"0")];
    for (k, v) in client {
        if ALLOWED_HEADERS.contains(k) {
            check.push((k, v.as_bytes()));
        }
    }
    let r = Client::connect(addr)
        .await
        .send(req(method, &format!("{PREFIX}{path}"), &check, ""))
        .await;
    match r.status {
        200 => {
            let mut upstream: Vec<(String, String)> = client
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            for name in UPSTREAM_HEADERS {
                if let Some(v) = r.header(name) {
                    upstream.retain(|(k, _)| k != name);
                    upstream.push((name.to_string(), v.to_string()));
                }
            }
            if let Some(remove) = r.header("x-envoy-auth-headers-to-remove") {
                for name in remove.split(',').map(str::trim) {
                    upstream.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
                }
            }
            Outcome::Allowed(upstream)
        }
        s if s >= 500 => Outcome::Error(s),
        _ => Outcome::Denied(r),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_authz_as_envoy_calls_it() {
    let fx = Fixture::new();
    let p = Portcullis::start(&fx);
    let key = fx.keys.read.as_str();

    // Allowed: identity set, the client's forged copy replaced, the key removed.
    let Outcome::Allowed(up) = envoy(
        p.addr,
        "GET",
        "/v1/charges/ch_1?expand=customer",
        &[
            ("x-api-key", key),
            ("x-auth-consumer", "evil"),
            ("x-forwarded-for", "198.51.100.1"),
        ],
    )
    .await
    else {
        panic!("not allowed")
    };
    assert_eq!(header_values(&up, "x-auth-consumer"), vec!["acme"]);
    assert_eq!(header_values(&up, "x-auth-principal"), vec!["key_read"]);
    assert!(
        header_values(&up, "x-api-key").is_empty(),
        "the key reached the upstream"
    );

    // A public route: no identity, and forged identity headers are removed.
    let Outcome::Allowed(up) = envoy(
        p.addr,
        "GET",
        "/public/x",
        &[("x-auth-principal", "admin"), ("x-auth-scopes", "all")],
    )
    .await
    else {
        panic!("not allowed")
    };
    for h in UPSTREAM_HEADERS {
        assert!(
            header_values(&up, h).is_empty(),
            "{h} reached the upstream: {up:?}"
        );
    }

    // The original method is the check request's own.
    let write = fx.keys.write.as_str();
    assert!(matches!(
        envoy(p.addr, "POST", "/v1/refunds", &[("x-api-key", write)]).await,
        Outcome::Allowed(_)
    ));
    let Outcome::Denied(r) = envoy(p.addr, "POST", "/v1/refunds", &[("x-api-key", key)]).await
    else {
        panic!("allowed without the scope")
    };
    assert_eq!(r.status, 403);
    assert!(matches!(
        envoy(p.addr, "HEAD", "/v1/charges/ch_1", &[("x-api-key", key)]).await,
        Outcome::Allowed(_)
    ));

    // Denials are < 500, with the headers the client needs.
    let Outcome::Denied(r) = envoy(p.addr, "GET", "/v1/charges/ch_1", &[]).await else {
        panic!("allowed without a key")
    };
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    let limited = fx.keys.limited.as_str();
    assert!(matches!(
        envoy(p.addr, "GET", "/v1/limited/a", &[("x-api-key", limited)]).await,
        Outcome::Allowed(_)
    ));
    let Outcome::Denied(r) = envoy(p.addr, "GET", "/v1/limited/a", &[("x-api-key", limited)]).await
    else {
        panic!("rate limit not applied")
    };
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    let Outcome::Denied(r) = envoy(
        p.addr,
        "GET",
        "/public/%2e%2e/v1/charges/ch_1",
        &[("x-api-key", key)],
    )
    .await
    else {
        panic!("bypass shape allowed")
    };
    assert_eq!(
        (r.status, r.header("x-auth-reason")),
        (400, Some("bad_path"))
    );

    // Only exactly 200 allows: Portcullis never answers another 2xx.
    for (m, path) in [
        ("GET", "/v1/charges/ch_1"),
        ("GET", "/public/x"),
        ("DELETE", "/nothing"),
    ] {
        match envoy(p.addr, m, path, &[("x-api-key", key)]).await {
            Outcome::Allowed(_) => {}
            Outcome::Denied(r) => assert!(!(200..300).contains(&r.status)),
            Outcome::Error(s) => panic!("unexpected error status {s}"),
        }
    }

    // The prefix alone names no request.
    let r = send(p.addr, "GET", PREFIX, &[], "").await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_authz_over_http2() {
    // Envoy clusters often speak HTTP/2 to the authorization service.
    let fx = Fixture::new();
    let p = Portcullis::start(&fx);
    let mut h2 = H2Client::connect(p.addr).await;
    let r = h2
        .send(req(
            "GET",
            &format!("http://api.example.com{PREFIX}/v1/charges/ch_1"),
            &[("x-api-key", fx.keys.read.as_bytes())],
            "",
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-auth-consumer"), Some("acme"));
    let remove = r.header("x-envoy-auth-headers-to-remove").unwrap();
    assert!(remove.split(", ").any(|h| h == "x-api-key"), "{remove}");
}
