//! Fuzz harnesses, shared by the cargo-fuzz targets in `fuzz/` and by the
//! corpus-replay tests (`tests/fuzz_corpus.rs`), so every input a fuzzer ever
//! found runs again under `cargo test`. Each function panics only when an
//! invariant is broken; that is the point of a harness.
#![doc(hidden)]
#![allow(clippy::panic, clippy::indexing_slicing)]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::credential::apikey::{classify, fingerprint, KeyShape, MemoryIndex};
use crate::credential::extract::{bearer, header, single, Found};
use crate::credential::KeyStore;
use crate::decision::Reason;
use crate::policy::Source;
use crate::request::{Headers, Request};
use crate::{path, policy, Engine};

/// Policy YAML: parse, validate, compile never panic; every error is located.
pub fn policy_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match policy::load_str(Path::new("fuzz.yaml"), text) {
        Err(diags) => {
            assert!(!diags.is_empty(), "an error result with no diagnostics");
            for d in diags.iter() {
                // Whole-file errors (empty or unreadable file) are located at the file, 0:0.
                assert!(
                    (d.line >= 1 && d.col >= 1) || (d.line == 0 && d.col == 0),
                    "unlocated diagnostic: {d}"
                );
                assert_eq!(d.file, Path::new("fuzz.yaml"));
                let _ = d.to_string();
            }
        }
        Ok(p) => {
            if let Err(diags) = Engine::new(&p, Arc::new(MemoryIndex::new()) as Arc<dyn KeyStore>) {
                for d in diags.iter() {
                    // Compile errors point at the definition that caused them.
                    let _ = d.to_string();
                }
            }
        }
    }
}

const FIXED_POLICY: &str = r#"
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
    match: {methods: [GET], path: "/items/{id}"}
    require: key
  - name: open
    match: {path: "/public/**"}
    require: public
"#;

fn fixed_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let p = match policy::load_str(Path::new("fixed.yaml"), FIXED_POLICY) {
            Ok(p) => p,
            Err(e) => panic!("fixed fuzz policy is invalid: {e}"),
        };
        match Engine::new(&p, Arc::new(MemoryIndex::new()) as Arc<dyn KeyStore>) {
            Ok(e) => e,
            Err(e) => panic!("fixed fuzz policy does not compile: {e}"),
        }
    })
}

/// Decision-request JSON: parsing never panics; with an empty key store,
/// nothing but the public route can ever be allowed.
pub fn decision_request_json(data: &[u8]) {
    let Ok(req) = Request::from_json(data) else {
        return;
    };
    let d = fixed_engine().decide(&req);
    if d.allow {
        assert_eq!(
            d.route.as_deref(),
            Some("open"),
            "allowed outside the public route: {:?}",
            req.path
        );
    }
    assert_eq!(d.status, d.reason.status());
    let _ = d.to_json();
}

/// Path normalisation: idempotent, decoding never changes the route, and a
/// path refused is refused for a reason.
pub fn path_canonical(data: &[u8]) {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(c) = path::canonical(target) else {
        return;
    };
    let again = match path::canonical(&c) {
        Ok(a) => a,
        Err(e) => panic!("canonical form {c:?} of {target:?} is refused: {e:?}"),
    };
    assert_eq!(again, c, "not idempotent for {target:?}");
    assert!(
        !c.contains("//") && !c.contains('%') && !c.contains('?'),
        "{c:?}"
    );
    assert!(path::segments(&c).all(|s| s != "." && s != ".."), "{c:?}");
    // A raw target and its canonical form reach the same route.
    let e = fixed_engine();
    let route = |p: &str| {
        let mut r = Request {
            method: "GET".into(),
            path: p.into(),
            ..Request::default()
        };
        r.headers = Headers::new();
        e.decide(&r).route
    };
    let routed = route(target);
    assert_eq!(routed, route(&c), "{target:?} and {c:?} route differently");
    // A path that routes to a protected route can never be rewritten to
    // reach a public one and back: percent-encoding any bytes an escape may
    // stand for (which ones is picked by the input) decodes to the same
    // canonical form, so it routes the same, protected stays protected.
    let encoded: String = c
        .bytes()
        .enumerate()
        .map(|(i, b)| {
            let pick = data.get(i % data.len()).is_some_and(|x| x & 1 == 1);
            if pick && (b.is_ascii_alphanumeric() || b"-_~!$&'()*+,=:@".contains(&b)) {
                format!("%{b:02X}")
            } else {
                char::from(b).to_string()
            }
        })
        .collect();
    if encoded.len() <= path::MAX_PATH_LEN {
        match path::canonical(&encoded) {
            Ok(back) => assert_eq!(back, c, "{encoded:?} does not decode back to {c:?}"),
            Err(e) => panic!("{encoded:?}, an encoding of {c:?}, is refused: {e:?}"),
        }
        let rerouted = route(&encoded);
        let protected = |r: &Option<Arc<str>>| matches!(r.as_deref(), Some("protected" | "item"));
        assert!(
            !(protected(&routed) && rerouted.as_deref() == Some("open")),
            "{target:?} routes to {routed:?} but its rewrite {encoded:?} reaches the public route"
        );
        assert_eq!(routed, rerouted, "{encoded:?} and {c:?} route differently");
    }
}

/// API-key format: classification never panics, and agrees with a checksum
/// recomputed independently.
pub fn api_key_format(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let shape = classify(s, &[]);
    if shape == KeyShape::WellFormed {
        let (body, sum) = s.split_at(s.len() - 6);
        let mut n = crc32fast::hash(body.as_bytes());
        let mut expect = [b'0'; 6];
        for slot in expect.iter_mut().rev() {
            *slot = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                [(n % 62) as usize];
            n /= 62;
        }
        assert_eq!(sum.as_bytes(), &expect, "accepted a wrong checksum: {s:?}");
        let fp = fingerprint(s);
        assert!(
            !fp.contains(&s[8..s.len() - 4]),
            "fingerprint shows the secret middle"
        );
    }
    let _ = classify(s, &["pk_".to_string()]);
}

/// Header extraction: arbitrary header sets never panic; a value is taken
/// only when it is the single, comma-free value of its header.
pub fn header_extraction(data: &[u8]) {
    let mut headers = Headers::new();
    for line in data.split(|&b| b == b'\n') {
        let mut parts = line.splitn(2, |&b| b == b':');
        let (Some(name), value) = (parts.next(), parts.next().unwrap_or_default()) else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        match std::str::from_utf8(value) {
            Ok(v) => headers.append(name, v),
            Err(_) => headers.append_invalid(name),
        }
    }
    if let Found::Value(v) = bearer(&headers) {
        assert!(
            !v.is_empty() && !v.contains(',') && !v.contains(' '),
            "bearer {v:?}"
        );
        assert_eq!(headers.get_all("authorization").count(), 1);
    }
    if let Found::Value(v) = header(&headers, "x-api-key") {
        assert!(!v.contains(','), "{v:?}");
        assert_eq!(headers.get_all("x-api-key").count(), 1);
    }
    let srcs = [Source::Header("x-api-key".into()), Source::Bearer];
    if let Found::Value(v) = single(&headers, &srcs, |_| true) {
        let in_header = matches!(header(&headers, "x-api-key"), Found::Value(x) if x == v);
        let in_bearer = matches!(bearer(&headers), Found::Value(x) if x == v);
        assert!(
            in_header ^ in_bearer,
            "value found in both places was accepted"
        );
    }
    // Through the engine: no key store entries, so never an allow on a protected route.
    let req = Request {
        method: "GET".into(),
        path: "/admin/x".into(),
        headers,
        ..Request::default()
    };
    let d = fixed_engine().decide(&req);
    assert!(!d.allow);
    assert_ne!(d.reason, Reason::Allowed);
}

/// The HS256 secret of the fuzz verifier (public: tests and seeds sign with it).
pub const FUZZ_HS256_SECRET: &[u8] = b"portcullis-fuzz-hs256-secret-0123456789";
const FUZZ_HS256_ENV: &str = "PORTCULLIS_FUZZ_HS256_SECRET";

fn jwt_verifier_for(
    alg: crate::policy::JwtAlgorithm,
    keys: crate::policy::JwtKeySource,
) -> crate::credential::jwt::JwtVerifier {
    use crate::policy::{JwtDef, Span, Spanned};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/jwt/keys");
    let def = JwtDef {
        sources: vec![Source::Bearer],
        issuer: None,
        audience: vec![],
        algorithms: vec![alg],
        keys: Spanned::new(keys, Span::default()),
        leeway: std::time::Duration::from_secs(30),
        max_lifetime: None,
        require_claims: vec![],
        scopes_claim: None,
        principal_claim: "sub".into(),
        typ: None,
        max_token_bytes: 8192,
        cache_size: 0,
    };
    match crate::credential::jwt::JwtVerifier::new(&def, &dir) {
        Ok(v) => v,
        Err(e) => panic!("fuzz jwt verifier: {e}"),
    }
}

fn jwt_verifier() -> &'static crate::credential::jwt::JwtVerifier {
    use crate::policy::{JwtAlgorithm, JwtKeySource};
    static V: OnceLock<crate::credential::jwt::JwtVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/jwt/keys");
        jwt_verifier_for(
            JwtAlgorithm::ES256,
            JwtKeySource::PemFile(dir.join("ec256.pub.pem")),
        )
    })
}

fn jwt_hs_verifier() -> &'static crate::credential::jwt::JwtVerifier {
    use crate::policy::{JwtAlgorithm, JwtKeySource};
    static V: OnceLock<crate::credential::jwt::JwtVerifier> = OnceLock::new();
    V.get_or_init(|| {
        use std::os::unix::ffi::OsStrExt;
        // `secret_env` is the only source of HMAC keys.
        std::env::set_var(
            FUZZ_HS256_ENV,
            std::ffi::OsStr::from_bytes(FUZZ_HS256_SECRET),
        );
        jwt_verifier_for(
            JwtAlgorithm::HS256,
            JwtKeySource::SecretEnv(FUZZ_HS256_ENV.into()),
        )
    })
}

/// JWT compact tokens: never a panic, and never a valid outcome (so never
/// an allow) unless the signature verifies under the configured key, checked
/// independently with `ring`: ES256 against the checked-in key, HS256
/// against [`FUZZ_HS256_SECRET`].
pub fn jwt_compact(data: &[u8]) {
    use base64::Engine as _;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    if let crate::credential::Outcome::Valid(_) = jwt_verifier().verify_token(token, now) {
        let (signing_input, sig) = token.rsplit_once('.').unwrap_or_default();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .unwrap_or_default();
        // Public key point from the checked-in JWK (x, y) in uncompressed form.
        let jwk: serde_json::Value =
            serde_json::from_str(include_str!("../tests/data/jwt/keys/ec256.jwk.json"))
                .unwrap_or_default();
        let coord = |k: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwk.get(k).and_then(|v| v.as_str()).unwrap_or_default())
                .unwrap_or_default()
        };
        let mut point = vec![4u8];
        point.extend(coord("x"));
        point.extend(coord("y"));
        let ok = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(signing_input.as_bytes(), &sig)
            .is_ok();
        assert!(
            ok,
            "a token without a valid signature was accepted: {token:?}"
        );
    }
    if let crate::credential::Outcome::Valid(_) = jwt_hs_verifier().verify_token(token, now) {
        let (signing_input, sig) = token.rsplit_once('.').unwrap_or_default();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .unwrap_or_default();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, FUZZ_HS256_SECRET);
        assert!(
            ring::hmac::verify(&key, signing_input.as_bytes(), &sig).is_ok(),
            "an hs256 token without a valid mac was accepted: {token:?}"
        );
    }
}

/// XFCC and PEM client-certificate headers: the parsers never panic, and the
/// XFCC parser trusts only the last element.
pub fn client_cert_headers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(el) = crate::credential::mtls::xfcc::parse_last(text) {
        let _ = format!("{el:?}");
    }
    let _ = crate::credential::mtls::pem::certificates(text);
}

/// The strict JSON reader of JWT headers and claims against serde_json:
/// every member of a document the reader accepts must be what serde_json
/// reads (value for value), a document serde_json accepts without a
/// duplicate member must be accepted, and a duplicate must be refused as
/// one. The reader's deliberate differences (lone surrogate escapes and
/// out-of-range numbers refused; no nesting limit in skipped values) are
/// excused only where the document could hold them.
pub fn json_reader(data: &[u8]) {
    use crate::credential::jwt::reader::{ObjectReader, ReadError, Value};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ours = (|| {
        let mut r = ObjectReader::new(text)?;
        let mut out = Vec::new();
        while let Some(name) = r.next_name()? {
            out.push((name.into_owned(), r.value()?));
        }
        r.finish()?;
        Ok::<_, ReadError>(out)
    })();
    let theirs = serde_members(text);
    let excused = json_reader_may_differ(text);
    match (ours, theirs) {
        (Ok(ours), Ok(theirs)) => {
            assert!(
                !has_duplicate(&theirs),
                "the reader accepted a duplicate member: {text:?}"
            );
            assert_eq!(ours.len(), theirs.len(), "{text:?}");
            for ((name, v), (their_name, t)) in ours.iter().zip(&theirs) {
                assert_eq!(name, their_name, "{text:?}");
                let same = match (v, t) {
                    (Value::Null, serde_json::Value::Null) => true,
                    (Value::Num(a), serde_json::Value::Number(b)) => {
                        b.as_f64().is_some_and(|b| (a - b).abs() <= a.abs() * 1e-15)
                    }
                    (Value::Str(a), serde_json::Value::String(b)) => a.as_str() == b,
                    (Value::Strs(a), serde_json::Value::Array(b)) => {
                        a.len() == b.len()
                            && a.iter().zip(b).all(|(x, y)| y.as_str() == Some(x.as_str()))
                    }
                    (Value::Other, serde_json::Value::Bool(_) | serde_json::Value::Object(_)) => {
                        true
                    }
                    (Value::Other, serde_json::Value::Array(b)) => b.iter().any(|e| !e.is_string()),
                    _ => false,
                };
                assert!(same, "member `{name}` read as {v:?}, serde_json: {t:?}");
            }
        }
        (Err(ReadError::Duplicate), Ok(theirs)) => assert!(
            has_duplicate(&theirs),
            "the reader saw a duplicate that is not there: {text:?}"
        ),
        (Ok(_), Err(_)) | (Err(_), Ok(_)) => {
            assert!(excused, "the reader and serde_json disagree on {text:?}")
        }
        (Err(_), Err(_)) => {}
    }
}

/// The top-level members of an object as serde_json reads them, duplicates kept.
fn serde_members(text: &str) -> Result<Vec<(String, serde_json::Value)>, serde_json::Error> {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Vec<(String, serde_json::Value)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    impl<'de> DeserializeSeed<'de> for Members {
        type Value = Vec<(String, serde_json::Value)>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let out = Members.deserialize(&mut de)?;
    de.end()?;
    Ok(out)
}

fn has_duplicate(members: &[(String, serde_json::Value)]) -> bool {
    let mut names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.windows(2).any(|w| w.first() == w.get(1))
}

/// Could `text` hold one of the reader's deliberate differences from
/// serde_json: a surrogate escape, a number that may overflow `f64`, or
/// nesting near serde_json's limit?
pub fn json_reader_may_differ(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let surrogate = [
        "\\ud8", "\\ud9", "\\uda", "\\udb", "\\udc", "\\udd", "\\ude", "\\udf",
    ]
    .iter()
    .any(|p| lower.contains(p));
    let bytes = lower.as_bytes();
    // An exponent of three digits or more after a digit (`1e400`), or a
    // digit run long enough to overflow by itself.
    let big_exponent = bytes.windows(2).enumerate().any(|(i, w)| {
        w.first().is_some_and(u8::is_ascii_digit)
            && w.get(1) == Some(&b'e')
            && bytes
                .iter()
                .skip(i + 2)
                .skip_while(|b| matches!(b, b'+' | b'-'))
                .take_while(|b| b.is_ascii_digit())
                .count()
                >= 3
    });
    let mut run = 0usize;
    let mut long_run = false;
    for b in bytes {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        long_run |= run >= 300;
    }
    let deep = bytes.iter().filter(|b| matches!(b, b'[' | b'{')).count() > 100;
    surrogate || big_exponent || long_run || deep
}
