//! Forward-auth header sets: the server's translation of a gateway
//! subrequest (`X-Original-*` / `X-Forwarded-Method`/`Uri`/`Host`/`For`,
//! `X-Real-IP`, `Host`, credential headers) into an engine request, then a
//! decision. Shared by the `forward_auth_headers` fuzz target and the server
//! test that replays its corpus (`server/tests/fuzz_forward_auth.rs`), each
//! including this file as a module.
//!
//! Input: the first byte's bit 0 says whether the peer is a trusted proxy,
//! bit 1 whether the subrequest URI is absolute (HTTP/2 `:authority`); the
//! rest is `name: value` lines. `@OPEN@` and `@NET@` stand for the two keys
//! in the store (one unrestricted, one only from 10.0.0.0/8), so the fuzzer
//! can present real keys.
//!
//! Invariants: nothing panics; the target is the one unrepeated original
//! URI (both header families agreeing when both are sent); an untrusted
//! peer's `X-Forwarded-Host`, `X-Forwarded-For` and `X-Real-IP` change
//! nothing; only the policy's credential headers reach the engine; a
//! protected route is allowed only for a key that was sent, and
//! the network-restricted key only when a trusted proxy said the client is in
//! 10.0.0.0/8.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use hyper::header::{self, HeaderMap, HeaderName};
use hyper::Uri;
use portcullis_engine::credential::apikey::{
    classify, fingerprint, KeyDigest, KeyEntry, KeyRecord, KeyShape, MemoryIndex,
};
use portcullis_engine::credential::KeyStore;
use portcullis_engine::request::HeaderValue;
use portcullis_engine::{policy, Decision, Engine, Request};
use portcullis_server::client_addr::{client_ip, decision_host, TrustedProxies};
use portcullis_server::scan::{Scan, Slot};
use portcullis_server::translate;

/// Fixed, well-formed keys (CRC32 checksums precomputed), so inputs can hold them.
pub const OPEN_KEY: &str = "pk_FuzzForwardAuthOpenKey000000003WRPlk";
pub const NET_KEY: &str = "pk_FuzzForwardAuthNetKey0000000004HQ0Hh";

const POLICY: &str = r#"
version: 1
credentials:
  key:
    type: api_key
    in: [header:x-api-key, bearer]
    prefixes: [pk_]
routes:
  - name: protected
    match: {path: "/admin/**"}
    require: key
  - name: item
    match: {methods: [GET], host: api.example, path: "/items/{id}"}
    require: key
  - name: open
    match: {path: "/public/**"}
    require: public
"#;

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        let p = policy::load_str(Path::new("forward_auth.yaml"), POLICY)
            .unwrap_or_else(|e| panic!("fixed forward-auth policy is invalid: {e}"));
        let index = MemoryIndex::new();
        for (key, id, cidrs) in [
            (OPEN_KEY, "key_open", vec![]),
            (NET_KEY, "key_net", vec!["10.0.0.0/8".parse().unwrap()]),
        ] {
            assert_eq!(classify(key, &[]), KeyShape::WellFormed, "{id}");
            let record = KeyRecord {
                id: Arc::from(id),
                consumer: Arc::from("fuzz"),
                scopes: Arc::from(Vec::<String>::new()),
                created_at: 0,
                expires_at: None,
                not_before: None,
                revoked_at: None,
                allowed_cidrs: cidrs,
                metadata: Default::default(),
                rate_limit: None,
            };
            index.insert(
                KeyDigest::of(key),
                KeyEntry {
                    record: Arc::new(record),
                    fingerprint: fingerprint(key).into(),
                    key_expires_at: None,
                },
            );
        }
        Engine::new(&p, Arc::new(index) as Arc<dyn KeyStore>)
            .unwrap_or_else(|e| panic!("fixed forward-auth policy does not compile: {e}"))
    })
}

fn trusted() -> &'static TrustedProxies {
    static T: OnceLock<TrustedProxies> = OnceLock::new();
    T.get_or_init(|| TrustedProxies::new(vec!["127.0.0.0/8".parse().unwrap()]))
}

fn text(slot: Slot<'_>) -> Option<&str> {
    match slot {
        Slot::One(v) => std::str::from_utf8(v.as_bytes()).ok().map(str::trim),
        _ => None,
    }
}

/// The header map a gateway would send, from `name: value` lines.
fn header_map(body: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in body.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default();
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let value = String::from_utf8_lossy(value)
            .replace("@OPEN@", OPEN_KEY)
            .replace("@NET@", NET_KEY);
        // Non-UTF-8 bytes survive as U+FFFD; raw non-UTF-8 values are
        // covered by the engine's `header_extraction` target.
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name),
            header::HeaderValue::from_bytes(value.as_bytes()),
        ) else {
            continue;
        };
        map.append(n, v);
    }
    map
}

/// Checks the invariants on one input; returns the decision, if the
/// subrequest got as far as one.
pub fn forward_auth_headers(data: &[u8]) -> Option<Decision> {
    let (&flags, body) = data.split_first()?;
    let peer_trusted = flags & 1 == 1;
    let peer: SocketAddr = if peer_trusted {
        "127.0.0.1:40000".parse().unwrap()
    } else {
        "192.0.2.1:40000".parse().unwrap()
    };
    let uri: Uri = if flags & 2 == 2 {
        "http://authz.internal/v1/forward-auth".parse().unwrap()
    } else {
        "/v1/forward-auth".parse().unwrap()
    };
    let headers = header_map(body);
    let e = engine();
    let policy = e.policy();
    let scan = Scan::of(&headers, &policy.credential_headers);

    // Only the policy's credential headers reach the engine.
    for (name, _) in scan.credentials.iter() {
        assert!(
            policy.credential_headers.iter().any(|c| c == name),
            "`{name}` reached the engine"
        );
    }

    // An untrusted peer's forwarding headers change nothing.
    let host = decision_host(&uri, &scan, peer_trusted);
    let ip = client_ip(peer, trusted(), &scan);
    if !peer_trusted {
        assert_eq!(
            ip,
            Some(peer.ip()),
            "an untrusted peer chose the client address"
        );
        let mut bare = headers.clone();
        bare.remove("x-forwarded-host");
        bare.remove("x-forwarded-for");
        bare.remove("x-real-ip");
        let bare_scan = Scan::of(&bare, &policy.credential_headers);
        assert_eq!(
            decision_host(&uri, &bare_scan, false),
            host,
            "an untrusted peer's x-forwarded-host changed the host"
        );
    }

    let target = translate::target(&scan).ok()?;
    for slot in [
        scan.original_method,
        scan.original_uri,
        scan.forwarded_method,
        scan.forwarded_uri,
    ] {
        assert_ne!(slot, Slot::Repeated, "a repeated target header was used");
    }
    let (ou, fu) = (text(scan.original_uri), text(scan.forwarded_uri));
    if let (Some(a), Some(b)) = (ou, fu) {
        assert_eq!(a, b, "the two header families disagree and were accepted");
    }
    assert_eq!(
        Some(target.uri.as_str()),
        ou.or(fu),
        "target is not the sent uri"
    );
    assert!(target.uri.starts_with('/'));
    assert!(!target.method.is_empty());
    assert!(!target.method.bytes().any(|b| b.is_ascii_lowercase()));

    let host = host.ok()?;
    let request = Request {
        method: target.method,
        path: target.uri,
        host,
        headers: scan.credentials,
        source_ip: ip,
    };
    let d = e.decide(&request);
    assert_eq!(d.status, d.reason.status());
    if !d.allow || d.route.as_deref() == Some("open") {
        return Some(d);
    }
    // An allow on a protected route: a key that was sent, usable from there.
    let principal = d.principal.as_ref().map(|p| p.id.to_string());
    let sent = |key: &str| {
        request
            .headers
            .iter()
            .filter(|(_, v)| matches!(v, HeaderValue::Text(t) if t.contains(key)))
            .count()
    };
    match principal.as_deref() {
        Some("key_open") => assert!(sent(OPEN_KEY) >= 1, "allowed for a key not sent"),
        Some("key_net") => {
            assert!(sent(NET_KEY) >= 1, "allowed for a key not sent");
            assert!(
                peer_trusted,
                "net key allowed for an untrusted peer's claim"
            );
            let in_net = matches!(request.source_ip, Some(IpAddr::V4(v4)) if v4.octets().first() == Some(&10));
            assert!(in_net, "net key allowed from {:?}", request.source_ip);
        }
        other => panic!("allowed on {:?} for {other:?}", d.route),
    }
    Some(d)
}
