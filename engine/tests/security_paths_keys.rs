//! SECURITY.md attack classes for paths, bearer extraction and API keys,
//! each through the public decision API (policy → engine → decision).
//! JWT classes: `jwt_*.rs`; mTLS and SPIFFE classes: `mtls_*.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use portcullis_engine::credential::apikey::{
    generate, KeyDigest, KeyEntry, KeyRecord, KeyStore, MemoryIndex, StoreError,
};
use portcullis_engine::{policy, Engine, Headers, Reason, Request};

const POLICY: &str = r#"
version: 1
credentials:
  key:
    type: api_key
    in: [header:x-api-key, bearer]
    prefixes: [pk_]
routes:
  - name: admin
    match: {path: "/admin/**"}
    require: key
  - name: public
    match: {path: "/public/**"}
    require: public
"#;

/// Counts lookups, to prove which requests never reach the store.
struct CountingStore {
    inner: MemoryIndex,
    lookups: AtomicUsize,
}

impl KeyStore for CountingStore {
    fn lookup(&self, d: &KeyDigest) -> Result<Option<KeyEntry>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.lookup(d)
    }
}

fn setup() -> (Engine, Arc<CountingStore>, String) {
    let store = Arc::new(CountingStore {
        inner: MemoryIndex::new(),
        lookups: AtomicUsize::new(0),
    });
    let key = generate("pk_").unwrap();
    let (digest, entry) = KeyEntry::for_key(&key, KeyRecord::new("key_1", "acme", &[]));
    store.inner.insert(digest, entry);
    let p = policy::load_str(Path::new("sec.yaml"), POLICY).unwrap();
    let engine = Engine::new(&p, Arc::clone(&store) as Arc<dyn KeyStore>).unwrap();
    (engine, store, key)
}

fn req(path: &str, headers: &[(&str, &str)]) -> Request {
    let mut h = Headers::new();
    for (k, v) in headers {
        h.append(k, *v);
    }
    Request {
        method: "GET".into(),
        path: path.into(),
        host: None,
        headers: h,
        source_ip: None,
    }
}

/// Paths: every known gateway bypass shape either is refused (`bad_path`) or
/// reaches the same route its canonical form does; none reaches the protected
/// route through the public one, and none reaches the public route for a
/// protected path.
#[test]
fn path_bypass_shapes_never_cross_routes() {
    let (e, _, _) = setup();
    let refused = [
        "/public/../admin/x",     // dot segments (Envoy CVE-2019-9901)
        "/public/%2e%2e/admin/x", // encoded dots (CVE-2021-29492)
        "/public/%2E%2E/admin/x",
        "/public%2F..%2Fadmin/x", // encoded slash (Istio CVE-2021-31920)
        "/public/..%5Cadmin/x",   // encoded backslash
        "/public\\..\\admin/x",   // raw backslash
        "/public/%252F../admin",  // double encoding
        "//admin/x",              // empty segment
        "/public//admin",
        "/admin;/x", // matrix parameters (Shiro CVE-2020-1957)
        "/public;/../admin/x",
        "/public%3b/../admin",
        "/admin%20",                  // trailing whitespace
        "/admin%0a",                  // control characters
        "/admin%00",                  // NUL
        "/public/%c0%ae%c0%ae/admin", // overlong UTF-8
        "/public/%c0%af",
        "http://evil/admin/x", // absolute form
        "admin/x",
        "/public/.",
        "/public/x#/../../admin", // fragment
    ];
    for p in refused {
        let d = e.decide(&req(p, &[]));
        assert_eq!((d.status, d.reason), (400, Reason::BadPath), "{p:?}");
        assert!(!d.allow);
    }
    // Case and trailing slash are significant, never folded into another route.
    assert_eq!(e.decide(&req("/ADMIN/x", &[])).reason, Reason::NoRoute);
    assert_eq!(e.decide(&req("/Public/x", &[])).reason, Reason::NoRoute);
    assert_eq!(
        e.decide(&req("/admin/x/", &[])).reason,
        Reason::CredentialMissing
    );
    // An escape of an unreserved character decodes, and routes as its plain form.
    assert_eq!(
        e.decide(&req("/%61dmin/x", &[])).route.as_deref(),
        Some("admin")
    );
    assert_eq!(
        e.decide(&req("/public/%61", &[])).route.as_deref(),
        Some("public")
    );
}

#[test]
fn bearer_scheme_is_case_insensitive() {
    let (e, _, key) = setup();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let v = format!("{scheme}   {key}");
        assert!(
            e.decide(&req("/admin/x", &[("Authorization", &v)])).allow,
            "{scheme}"
        );
    }
}

#[test]
fn repeated_or_comma_merged_authorization_is_ambiguous() {
    let (e, _, key) = setup();
    let b = format!("Bearer {key}");
    let d = e.decide(&req(
        "/admin/x",
        &[("authorization", &b), ("Authorization", &b)],
    ));
    assert_eq!((d.status, d.reason), (401, Reason::AmbiguousCredential));
    let merged = format!("Bearer {key},Bearer {key}");
    assert_eq!(
        e.decide(&req("/admin/x", &[("authorization", &merged)]))
            .reason,
        Reason::AmbiguousCredential
    );
    // The same key in its two accepted places is one credential found twice.
    let d = e.decide(&req(
        "/admin/x",
        &[("x-api-key", &key), ("authorization", &b)],
    ));
    assert_eq!(d.reason, Reason::AmbiguousCredential);
}

#[test]
fn credentials_in_the_query_string_are_never_accepted() {
    let (e, store, key) = setup();
    for q in ["api_key", "access_token", "x-api-key", "key"] {
        let d = e.decide(&req(&format!("/admin/x?{q}={key}"), &[]));
        assert_eq!(d.reason, Reason::CredentialMissing, "{q}");
    }
    assert_eq!(store.lookups.load(Ordering::SeqCst), 0);
}

#[test]
fn non_utf8_credential_header_denies() {
    let (e, _, _) = setup();
    let mut r = req("/admin/x", &[]);
    r.headers.append_invalid("authorization");
    let d = e.decide(&r);
    assert!(!d.allow);
    assert_eq!(d.reason, Reason::AmbiguousCredential);
    let mut r = req("/admin/x", &[]);
    r.headers.append_invalid("x-api-key");
    assert!(!e.decide(&r).allow);
}

#[test]
fn checksum_failure_denies_before_any_lookup() {
    let (e, store, key) = setup();
    let mut bad = key.clone().into_bytes();
    let last = bad.len() - 1;
    bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    let d = e.decide(&req("/admin/x", &[("x-api-key", &bad)]));
    assert_eq!((d.status, d.reason), (401, Reason::CredentialInvalid));
    assert_eq!(
        store.lookups.load(Ordering::SeqCst),
        0,
        "a corrupt key reached the store"
    );
    // A well-formed key is looked up exactly once.
    assert!(e.decide(&req("/admin/x", &[("x-api-key", &key)])).allow);
    assert_eq!(store.lookups.load(Ordering::SeqCst), 1);
}

#[test]
fn raw_keys_never_appear_in_answers_or_debug_output() {
    let (e, _, key) = setup();
    let allowed = e.decide(&req("/admin/x", &[("x-api-key", &key)]));
    let unknown = generate("pk_").unwrap();
    let denied = e.decide(&req("/admin/x", &[("x-api-key", &unknown)]));
    for d in [&allowed, &denied] {
        let text = format!("{} {:?}", d.to_json(), d);
        assert!(
            !text.contains(&key) && !text.contains(&unknown),
            "a key leaked: {text}"
        );
        assert!(
            !text.contains(&KeyDigest::of(&key).to_hex()),
            "a digest leaked: {text}"
        );
    }
}

/// A store that fails is a deny (503), never an allow.
#[test]
fn store_failure_fails_closed() {
    struct Down;
    impl KeyStore for Down {
        fn lookup(&self, _: &KeyDigest) -> Result<Option<KeyEntry>, StoreError> {
            Err(StoreError::Unavailable("connection refused".into()))
        }
    }
    let p = policy::load_str(Path::new("sec.yaml"), POLICY).unwrap();
    let e = Engine::new(&p, Arc::new(Down) as Arc<dyn KeyStore>).unwrap();
    let key = generate("pk_").unwrap();
    let d = e.decide(&req("/admin/x", &[("x-api-key", &key)]));
    assert_eq!(
        (d.allow, d.status, d.reason),
        (false, 503, Reason::StoreUnavailable)
    );
}

/// Decisions name the key by its fingerprint (for decision logs): on allow,
/// and on a deny of a well-formed key (unknown or revoked); never for a value
/// that is not one of our keys, whose characters may be anyone's secret.
#[test]
fn decisions_carry_the_key_fingerprint_only() {
    use portcullis_engine::credential::apikey::fingerprint;
    let (e, store, key) = setup();
    let allowed = e.decide(&req("/admin/x", &[("x-api-key", &key)]));
    assert!(allowed.allow);
    assert_eq!(allowed.fingerprint.as_deref(), Some(&*fingerprint(&key)));
    assert!(!fingerprint(&key).contains(&key[8..key.len() - 4]));

    let unknown = generate("pk_").unwrap();
    let denied = e.decide(&req("/admin/x", &[("x-api-key", &unknown)]));
    assert_eq!(denied.reason, Reason::CredentialInvalid);
    assert_eq!(denied.fingerprint.as_deref(), Some(&*fingerprint(&unknown)));

    store.inner.update_record("key_1", |entry| {
        let mut rec = (*entry.record).clone();
        rec.revoked_at = Some(0);
        entry.record = Arc::new(rec);
    });
    let revoked = e.decide(&req("/admin/x", &[("x-api-key", &key)]));
    assert_eq!(revoked.reason, Reason::CredentialRevoked);
    assert_eq!(revoked.fingerprint.as_deref(), Some(&*fingerprint(&key)));

    let not_a_key = "pk_this-is-somebody's-password";
    let corrupt = e.decide(&req("/admin/x", &[("x-api-key", not_a_key)]));
    assert_eq!(corrupt.reason, Reason::CredentialInvalid);
    assert_eq!(corrupt.fingerprint, None);
    let missing = e.decide(&req("/admin/x", &[]));
    assert_eq!(missing.fingerprint, None);
}
