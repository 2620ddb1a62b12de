//! Decisions through the public API: reason codes, headers, explain traces,
//! secrets kept out of output, hot swap and rate-limit state across reloads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use portcullis_engine::credential::apikey::{
    fingerprint, generate, KeyDigest, KeyEntry, KeyRecord, MemoryIndex,
};
use portcullis_engine::credential::KeyStore;
use portcullis_engine::{policy, DecideOptions, Engine, Headers, Reason, Request};

const POLICY: &str = r#"
version: 1
credentials:
  key:
    type: api_key
    in: [header:x-api-key, bearer]
    prefixes: [pk_test_]
rate_limits:
  tight: {limit: 1, per: 1h, burst: 2, key: consumer}
routes:
  - name: read
    match: {methods: [GET], path: "/v1/things/{id}"}
    require: key
    scopes: {all_of: [things:read]}
  - name: limited
    match: {methods: [POST], path: /v1/things}
    require: key
    rate_limit: tight
  - name: open
    match: {path: "/public/**"}
    require: public
"#;

fn index_with(scopes: &[&str]) -> (Arc<MemoryIndex>, String) {
    let index = MemoryIndex::new();
    let key = generate("pk_test_").unwrap();
    let (digest, entry) = KeyEntry::for_key(&key, KeyRecord::new("key_1", "acme", scopes));
    index.insert(digest, entry);
    (Arc::new(index), key)
}

fn engine(text: &str, keys: Arc<MemoryIndex>) -> Engine {
    let p = policy::load_str(Path::new("test.yaml"), text).unwrap();
    Engine::new(&p, keys as Arc<dyn KeyStore>).unwrap()
}

fn get(path: &str, key: Option<&str>) -> Request {
    let mut headers = Headers::new();
    if let Some(k) = key {
        headers.append("X-Api-Key", k);
    }
    Request {
        method: "GET".into(),
        path: path.into(),
        host: None,
        headers,
        source_ip: None,
    }
}

#[test]
fn allow_carries_identity_headers_and_principal() {
    let (idx, key) = index_with(&["things:read"]);
    let e = engine(POLICY, idx);
    let d = e.decide(&get("/v1/things/1", Some(&key)));
    assert!(d.allow, "{d:?}");
    assert_eq!((d.status, d.reason), (200, Reason::Allowed));
    assert_eq!(d.route.as_deref(), Some("read"));
    assert_eq!(d.credential.as_deref(), Some("key"));
    let p = d.principal.as_ref().unwrap();
    assert_eq!((&*p.id, p.consumer.as_deref()), ("key_1", Some("acme")));
    assert_eq!(d.header("x-auth-principal").as_deref(), Some("key_1"));
    assert_eq!(d.header("x-auth-consumer").as_deref(), Some("acme"));
    assert_eq!(d.header("x-auth-scopes").as_deref(), Some("things:read"));
    assert_eq!(d.header("x-auth-credential").as_deref(), Some("key"));
    let json = d.to_json();
    assert_eq!(json["reason"], "allowed");
    assert_eq!(json["principal"]["id"], "key_1");
    assert_eq!(json["headers"]["x-auth-consumer"], "acme");
}

#[test]
fn missing_key_is_401_with_a_challenge_naming_bearer() {
    let (idx, _) = index_with(&[]);
    let d = engine(POLICY, idx).decide(&get("/v1/things/1", None));
    assert_eq!((d.status, d.reason), (401, Reason::CredentialMissing));
    let challenge = d.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(d.header("x-auth-principal").is_none());
}

#[test]
fn insufficient_scope_names_the_scope() {
    let (idx, key) = index_with(&["other"]);
    let d = engine(POLICY, idx).decide(&get("/v1/things/1", Some(&key)));
    assert_eq!((d.status, d.reason), (403, Reason::InsufficientScope));
    assert_eq!(
        d.header("www-authenticate").as_deref(),
        Some("Bearer error=\"insufficient_scope\", scope=\"things:read\"")
    );
}

#[test]
fn rate_limit_answers_429_with_retry_after_and_status() {
    let (idx, key) = index_with(&[]);
    let e = engine(POLICY, idx);
    let mut req = get("/v1/things", Some(&key));
    req.method = "POST".into();
    let a = e.decide(&req);
    assert!(a.allow);
    assert_eq!(a.ratelimit.unwrap().remaining, 1);
    assert!(e.decide(&req).allow);
    let d = e.decide(&req);
    assert_eq!((d.status, d.reason), (429, Reason::RateLimited));
    assert_eq!(d.ratelimit.unwrap().remaining, 0);
    let retry: u64 = d.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
}

#[test]
fn reload_keeps_state_of_unchanged_limits_and_resets_changed_ones() {
    let (idx, key) = index_with(&[]);
    let e = engine(POLICY, Arc::clone(&idx));
    let mut req = get("/v1/things", Some(&key));
    req.method = "POST".into();
    assert!(e.decide(&req).allow);
    assert!(e.decide(&req).allow);
    assert!(!e.decide(&req).allow);
    // Same definition, other routes changed: still exhausted.
    let same = POLICY.replace("/public/**", "/pub/**");
    e.reload(&policy::load_str(Path::new("test.yaml"), &same).unwrap())
        .unwrap();
    assert_eq!(e.decide(&req).reason, Reason::RateLimited);
    // Changed definition: fresh state.
    let changed = POLICY.replace("burst: 2", "burst: 3");
    e.reload(&policy::load_str(Path::new("test.yaml"), &changed).unwrap())
        .unwrap();
    assert!(e.decide(&req).allow);
}

#[test]
fn failed_reload_keeps_the_old_policy_and_returns_the_errors() {
    let (idx, key) = index_with(&["things:read"]);
    let e = engine(POLICY, idx);
    let generation = e.generation();
    let broken = POLICY.replace("require: key\n    scopes", "require: nope\n    scopes");
    let errors = policy::load_str(Path::new("test.yaml"), &broken).unwrap_err();
    assert!(errors.to_string().contains("nope"), "{errors}");
    assert_eq!(e.generation(), generation);
    assert!(e.decide(&get("/v1/things/1", Some(&key))).allow);
}

#[test]
fn explain_trace_shows_steps_and_never_the_key() {
    let (idx, key) = index_with(&["things:read"]);
    let e = engine(POLICY, idx);
    let d = e.decide_with(
        &get("/v1/things/1?token=secret-query", Some(&key)),
        &DecideOptions {
            explain: true,
            now: None,
        },
    );
    let trace = d.trace.clone().unwrap();
    let all = trace.join("\n");
    assert!(all.contains("route `read`"), "{all}");
    assert!(all.contains(&fingerprint(&key)), "{all}");
    assert!(!all.contains(&key), "key leaked into trace: {all}");
    assert!(
        !all.contains("secret-query"),
        "query leaked into trace: {all}"
    );
    let debug = format!("{d:?} {:?}", get("/x", Some(&key)));
    assert!(!debug.contains(&key), "key leaked into Debug");
    assert!(!format!("{:?}", KeyDigest::of(&key)).contains(&KeyDigest::of(&key).to_hex()));
    assert!(e.decide(&get("/v1/things/1", Some(&key))).trace.is_none());
}

#[test]
fn public_routes_allow_without_identity() {
    let (idx, _) = index_with(&[]);
    let d = engine(POLICY, idx).decide(&get("/public/a/b", None));
    assert!(d.allow);
    assert!(d.principal.is_none());
    assert!(d.response_headers().is_empty());
}

#[test]
fn unmatched_allow_setting() {
    let (idx, _) = index_with(&[]);
    let text = format!("{POLICY}settings:\n  unmatched: allow\n");
    let d = engine(&text, idx).decide(&get("/nowhere", None));
    assert!(d.allow);
    assert_eq!(d.route, None);
}

#[test]
fn each_credential_is_verified_once_however_often_named() {
    // any_of [key, key] with a bad key must report the key's failure once; the trace shows one verification.
    let (idx, _) = index_with(&[]);
    let text = POLICY.replace(
        "    require: key\n    scopes: {all_of: [things:read]}",
        "    require: {any_of: [key, {all_of: [key, key]}]}",
    );
    let e = engine(&text, idx);
    let bad = generate("pk_test_").unwrap();
    let d = e.decide_with(
        &get("/v1/things/1", Some(&bad)),
        &DecideOptions {
            explain: true,
            now: None,
        },
    );
    assert_eq!(d.reason, Reason::CredentialInvalid);
    let verifications = d
        .trace
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("credential `key`"))
        .count();
    assert_eq!(verifications, 1);
}

/// Regression for issue 3 item 8: a decision never sees a mix of two policies.
/// Two versions differ in every route's scope and in which path is public;
/// every answer under concurrent reloads must match one version entirely.
#[test]
fn hot_swap_never_mixes_two_policies() {
    let (idx, key) = index_with(&["things:read"]);
    let v1 = policy::load_str(Path::new("v1.yaml"), POLICY).unwrap();
    let v2 = policy::load_str(
        Path::new("v2.yaml"),
        &POLICY
            .replace("things:read", "things:write")
            .replace("/public/**", "/v1/things/{id}/public"),
    )
    .unwrap();
    let e = Arc::new(Engine::new(&v1, Arc::clone(&idx) as Arc<dyn KeyStore>).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (e, stop, key) = (Arc::clone(&e), Arc::clone(&stop), key.clone());
            thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) || n < 2000 {
                    let d = e.decide(&get("/v1/things/1", Some(&key)));
                    // v1: allowed by scope; v2: insufficient_scope. Nothing else.
                    assert!(
                        matches!(d.reason, Reason::Allowed | Reason::InsufficientScope),
                        "unexpected {:?}",
                        d.reason
                    );
                    n += 1;
                }
                n
            })
        })
        .collect();
    for i in 0..200 {
        e.reload(if i % 2 == 0 { &v2 } else { &v1 }).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() >= 2000);
    }
    assert_eq!(e.generation(), 201);
}
