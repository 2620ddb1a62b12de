//! `/v1/forward-auth` called the way Traefik's ForwardAuth middleware calls
//! it (GET with X-Forwarded-Method/Uri/Host/Proto/For plus the client's
//! headers; any 2xx allows, anything else goes to the client verbatim).
//! Traefik is not installable here; its request shape is reproduced from its
//! documentation. Caddy and nginx are tested for real in their own modules.

use crate::support::*;

fn traefik<'a>(
    method: &'a str,
    uri: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        ("host", "portcullis.internal:8181"),
        ("x-forwarded-method", method),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "api.example.com"),
        ("x-forwarded-uri", uri),
        ("x-forwarded-for", "198.51.100.7"),
    ];
    h.extend_from_slice(extra);
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_as_statuses() {
    let fx = Fixture::new();
    let p = Portcullis::start(&fx);

    let r = send(
        p.addr,
        "GET",
        "/v1/forward-auth",
        &traefik(
            "GET",
            "/v1/charges/ch_1?x=1",
            &[("x-api-key", fx.keys.read.as_str())],
        ),
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-auth-consumer"), Some("acme"));
    assert_eq!(r.header("x-auth-principal"), Some("key_read"));
    assert_eq!(r.header("x-auth-scopes"), Some("charges:read"));
    assert_eq!(r.header("x-auth-credential"), Some("partner_key"));
    assert_eq!(r.header("x-auth-reason"), Some("allowed"));

    let r = send(
        p.addr,
        "GET",
        "/v1/forward-auth",
        &traefik("GET", "/v1/charges/ch_1", &[]),
        "",
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    assert_eq!(r.header("x-auth-reason"), Some("credential_missing"));
    assert!(r.header("x-auth-consumer").is_none());

    let r = send(
        p.addr,
        "GET",
        "/v1/forward-auth",
        &traefik(
            "GET",
            "/v1/charges/ch_1",
            &[("x-api-key", fx.keys.noscope.as_str())],
        ),
        "",
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["reason"], "insufficient_scope");
    assert!(
        r.header("x-auth-consumer").is_none(),
        "identity only on allow"
    );

    let r = send(
        p.addr,
        "GET",
        "/v1/forward-auth",
        &traefik(
            "POST",
            "/v1/charges/ch_1",
            &[("x-api-key", fx.keys.read.as_str())],
        ),
        "",
    )
    .await;
    assert_eq!(
        (r.status, r.header("x-auth-reason")),
        (403, Some("no_route"))
    );

    let r = send(
        p.addr,
        "GET",
        "/v1/forward-auth",
        &traefik("GET", "/public/../v1/charges/ch_1", &[]),
        "",
    )
    .await;
    assert_eq!(
        (r.status, r.header("x-auth-reason")),
        (400, Some("bad_path"))
    );

    // Rate limit: the first passes, the second is 429 with retry-after.
    let limited = traefik(
        "GET",
        "/v1/limited/a",
        &[("x-api-key", fx.keys.limited.as_str())],
    );
    assert_eq!(
        send(p.addr, "GET", "/v1/forward-auth", &limited, "")
            .await
            .status,
        200
    );
    let r = send(p.addr, "GET", "/v1/forward-auth", &limited, "").await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(r.header("x-auth-reason"), Some("rate_limited"));

    // nginx mode: the same denial as 403, reason and retry-after kept.
    let r = send(p.addr, "GET", "/v1/forward-auth?mode=nginx", &limited, "").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-auth-reason"), Some("rate_limited"));
    assert!(r.header("retry-after").is_some());
    let r = send(p.addr, "GET", "/v1/forward-auth?mode=bogus", &limited, "").await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subrequest_must_name_the_original_request() {
    let fx = Fixture::new();
    let p = Portcullis::start(&fx);
    let r = send(
        p.addr,
        "GET",
        "/v1/forward-auth",
        &[("x-forwarded-uri", "/v1/charges/ch_1")],
        "",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("Method"));
    let r = send(
        p.addr,
        "GET",
        "/v1/forward-auth",
        &[("x-original-method", "GET")],
        "",
    )
    .await;
    assert_eq!(r.status, 400);
    // A client behind Traefik adding X-Original-URI for a public path cannot
    // make the decision be about another request.
    let h = traefik(
        "GET",
        "/v1/charges/ch_1",
        &[
            ("x-original-uri", "/public/x"),
            ("x-original-method", "GET"),
        ],
    );
    let r = send(p.addr, "GET", "/v1/forward-auth", &h, "").await;
    assert_eq!(r.status, 400, "{}", r.text());
    // nginx turns a 400 into a 500: in nginx mode the refusal is a 403 that
    // says why, as decision denials are.
    let r = send(
        p.addr,
        "GET",
        "/v1/forward-auth?mode=nginx",
        &[("x-original-method", "GET")],
        "",
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.header("x-auth-reason"), Some("missing_target"));
    let r = send(p.addr, "GET", "/v1/forward-auth?mode=nginx", &h, "").await;
    assert_eq!(r.status, 403, "{}", r.text());
}

/// A server whose only trusted proxies are in 10.0.0.0/8, so this test, on
/// loopback, is an untrusted peer.
fn start_untrusting_loopback(fx: &Fixture) -> Portcullis {
    Portcullis::start_with(
        fx,
        ServeOptions {
            args: vec!["--trusted-proxies".into(), "10.0.0.0/8".into()],
            ..Default::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_address_from_trusted_proxies_only() {
    let fx = Fixture::new();
    // Loopback is trusted by default: X-Forwarded-For is believed.
    let p = Portcullis::start(&fx);
    let ok = traefik(
        "GET",
        "/v1/charges/ch_1",
        &[("x-api-key", fx.keys.cidr.as_str())],
    );
    assert_eq!(
        send(p.addr, "GET", "/v1/forward-auth", &ok, "")
            .await
            .status,
        200
    );
    let mut outside = ok.clone();
    for h in outside.iter_mut().filter(|(k, _)| *k == "x-forwarded-for") {
        // The client forged the first hop; the proxy appended the real one.
        h.1 = "198.51.100.7, 203.0.113.5";
    }
    let r = send(p.addr, "GET", "/v1/forward-auth", &outside, "").await;
    assert_eq!(
        (r.status, r.header("x-auth-reason")),
        (403, Some("ip_not_allowed"))
    );
    drop(p);

    // Loopback not trusted: forwarding headers are ignored, the peer is the client.
    let p = start_untrusting_loopback(&fx);
    let as_host = |key: &'static str| {
        let mut h = traefik("GET", "/v1/charges/ch_1", &[("x-api-key", key)]);
        for e in h.iter_mut().filter(|(k, _)| *k == "host") {
            e.1 = "api.example.com";
        }
        h
    };
    let cidr: &'static str = Box::leak(fx.keys.cidr.clone().into_boxed_str());
    let read: &'static str = Box::leak(fx.keys.read.clone().into_boxed_str());
    let r = send(p.addr, "GET", "/v1/forward-auth", &as_host(cidr), "").await;
    assert_eq!(
        (r.status, r.header("x-auth-reason")),
        (403, Some("ip_not_allowed"))
    );
    assert_eq!(
        send(p.addr, "GET", "/v1/forward-auth", &as_host(read), "")
            .await
            .status,
        200
    );
    // X-Forwarded-Host from an untrusted peer is ignored too: the Host header
    // (not api.example.com) decides, and the host-specific route does not match.
    let r = send(
        p.addr,
        "GET",
        "/v1/forward-auth",
        &traefik("GET", "/v1/charges/ch_1", &[("x-api-key", read)]),
        "",
    )
    .await;
    assert_eq!(
        (r.status, r.header("x-auth-reason")),
        (403, Some("no_route"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_utf8_credentials_are_refused() {
    let fx = Fixture::new();
    let p = Portcullis::start(&fx);
    let mut key = fx.keys.read.clone().into_bytes();
    key.push(0xff);
    let mut headers: Vec<(&str, &[u8])> = traefik("GET", "/v1/charges/ch_1", &[])
        .into_iter()
        .map(|(k, v)| (k, v.as_bytes()))
        .collect();
    headers.push(("x-api-key", &key));
    let r = Client::connect(p.addr)
        .await
        .send(req("GET", "/v1/forward-auth", &headers, ""))
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_wide_nginx_mode() {
    let fx = Fixture::new();
    let p = Portcullis::start_with(
        &fx,
        ServeOptions {
            args: vec!["--forward-auth-mode".into(), "nginx".into()],
            ..Default::default()
        },
    );
    let h = [
        ("x-original-method", "GET"),
        ("x-original-uri", "/public/../x"),
    ];
    let r = send(p.addr, "GET", "/v1/forward-auth", &h, "").await;
    assert_eq!(
        (r.status, r.header("x-auth-reason")),
        (403, Some("bad_path"))
    );
    let r = send(p.addr, "GET", "/v1/forward-auth?mode=standard", &h, "").await;
    assert_eq!(r.status, 400);
}

/// A client-certificate header says what a TLS-terminating proxy saw, so it
/// is read only from a trusted proxy (`--trusted-proxies`, loopback by
/// default): a client that reaches Portcullis directly cannot claim a
/// certificate by sending the header itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_headers_only_from_trusted_proxies() {
    let pki = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/data/pki");
    let fx = Fixture::with_policy(
        r#"
version: 1
credentials:
  edge_cert:
    type: mtls
    in: pem_header:x-ssl-client-cert
    verify_header: x-ssl-client-verify
    allow:
      subjects: ["CN=client.portcullis.test,O=Portcullis Test"]
    grants: [internal:call]
  mesh:
    type: mtls
    in: xfcc
    allow:
      spiffe_ids: ["spiffe://portcullis.test/ns/billing/*"]
routes:
  - name: internal
    match: {path: "/internal/**"}
    require: edge_cert
  - name: mesh
    match: {path: "/mesh/**"}
    require: mesh
"#,
    );
    let pem = std::fs::read_to_string(pki.join("client.pem")).unwrap();
    // nginx's `$ssl_client_escaped_cert`: the PEM, URL-escaped.
    let escaped: String = pem
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    // Envoy's default XFCC element: the proxy vouches for the certificate's
    // hash and URI SAN.
    let spiffe_pem = std::fs::read_to_string(pki.join("spiffe.pem")).unwrap();
    let der = portcullis_engine::credential::mtls::pem::certificates(&spiffe_pem)
        .unwrap()
        .remove(0);
    let hash: String = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let xfcc = format!(
        "By=spiffe://portcullis.test/ns/edge/sa/proxy;Hash={hash};URI=spiffe://portcullis.test/ns/billing/sa/api"
    );
    let xfcc = xfcc.as_str();
    let pem_question = traefik(
        "GET",
        "/internal/jobs",
        &[
            ("x-ssl-client-cert", escaped.as_str()),
            ("x-ssl-client-verify", "SUCCESS"),
        ],
    );
    let xfcc_question = traefik("GET", "/mesh/ledger", &[("x-forwarded-client-cert", xfcc)]);

    // Loopback is trusted by default: the proxy's certificate headers count.
    let p = Portcullis::start(&fx);
    let r = send(p.addr, "GET", "/v1/forward-auth", &pem_question, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-auth-credential"), Some("edge_cert"));
    let r = send(p.addr, "GET", "/v1/forward-auth", &xfcc_question, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    drop(p);

    // Loopback not trusted: the same headers from this peer are ignored,
    // so the certificate credential is missing, on both gateway endpoints.
    let p = start_untrusting_loopback(&fx);
    for (q, uri) in [
        (&pem_question, "/v1/forward-auth"),
        (&xfcc_question, "/v1/forward-auth"),
    ] {
        let r = send(p.addr, "GET", uri, q, "").await;
        assert_eq!(
            (r.status, r.header("x-auth-reason")),
            (401, Some("credential_missing")),
            "{}",
            r.text()
        );
    }
    let envoy: Vec<(&str, &str)> = vec![
        ("host", "api.example.com"),
        ("x-forwarded-client-cert", xfcc),
    ];
    let r = send(p.addr, "GET", "/v1/ext-authz/mesh/ledger", &envoy, "").await;
    assert_eq!(r.status, 401, "{}", r.text());
}
