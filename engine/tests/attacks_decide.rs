//! SECURITY.md attack classes for JWT, bearer extraction, mTLS and SPIFFE,
//! each through the public decision API: YAML policy text → `policy::load_str`
//! → `Engine::new` → `Engine::decide` → the whole `Decision` (allow, status,
//! reason, `www-authenticate`). The verifier-level suites (`jwt_*.rs`,
//! `mtls_*.rs`) go deeper on each class; these prove the engine path wires
//! every check to the answer a gateway sees. Each area has a positive
//! control (`*_control_*`), so no deny below is vacuous.
//!
//! Tokens are signed for the real clock (the engine reads it), with the
//! checked-in keys (`tests/data/jwt/keys`) and test PKI (`tests/data/pki`).
//!
//! SECURITY.md item → test (module::function):
//!
//! JWT, "what the crate does NOT do":
//! - `nbf` in the future / non-numeric `nbf` → jwt::nbf_in_the_future_or_non_numeric
//! - no `aud` / no `iss` although configured → jwt::missing_iss_or_aud
//! - `aud`/`iss` of the wrong JSON type → jwt::iss_or_aud_of_the_wrong_type
//! - `crit` with any value, `[]` included → jwt::crit_in_any_form
//! - `typ` → jwt::typ_mismatch_or_absent
//! - `jku`, `x5u` (never dereferenced) → jwt::jku_and_x5u_never_fetched
//! - `jwk`, `x5c` (embedded keys) → jwt::embedded_jwk_or_x5c
//! - `kid` with path traversal → jwt::kid_traversal_is_an_unknown_kid
//! - HS256 with an empty secret → jwt::empty_or_short_hmac_secret_refused_at_load
//! - HS256 signed with our RSA public key → jwt::rs_to_hs_confusion,
//!   jwt::public_key_material_as_hmac_secret_refused_at_load
//! - duplicate `kid` in a JWKS → jwt::duplicate_kid_jwks_refused_at_load
//! - ES512 not supported → jwt::es512_denied_and_refused_at_load
//! - versions below 10.3.0 (GHSA-h395-gr6q-cpjc): a dependency-version item, not a
//!   request shape; Cargo.lock pins jsonwebtoken 11.x and verification does not use
//!   its decode path (docs/jwt.md)
//!
//! JWT, "rejected by the crate already":
//! - `alg: none` in any case → jwt::alg_none_in_any_case
//! - lowercase alg names → jwt::lowercase_alg_names
//! - empty signature → jwt::empty_signature
//! - duplicate header or claim members → jwt::duplicate_header_or_claim_members
//! - trailing bytes after JSON → jwt::trailing_bytes_after_json
//! - padded or standard base64 → jwt::padded_or_standard_base64
//! - whitespace → jwt::whitespace_in_the_token
//! - 2 or 4 segments → jwt::two_or_four_segments
//! - ES256 psychic signatures → jwt::psychic_es256_signatures
//! - RS→HS confusion → jwt::rs_to_hs_confusion
//!
//! JWT verifier checklist:
//! 1. one algorithm per key → jwt::alg_not_configured, jwt::kid_naming_a_key_of_another_algorithm,
//!    jwt::no_kid_and_several_candidate_keys
//! 2. never take keys from the token → jwt::embedded_jwk_or_x5c, jwt::jku_and_x5u_never_fetched
//! 3. `kid` exact lookup; 10 KB kid → jwt::kid_traversal_is_an_unknown_kid, jwt::ten_kb_kid
//! 4. explicit typing → jwt::typ_mismatch_or_absent (and the control's `application/at+jwt`)
//! 5. `iss`/`aud` required, typed, exact → jwt::missing_iss_or_aud,
//!    jwt::iss_or_aud_of_the_wrong_type, jwt::iss_and_aud_compared_exactly,
//!    jwt::control_aud_array_holding_ours_is_allowed
//! 6. `exp`/`nbf` with leeway, wrong types → jwt::expired_or_exp_of_the_wrong_type,
//!    jwt::nbf_in_the_future_or_non_numeric
//! 7. strict compact form → jwt::two_or_four_segments, jwt::padded_or_standard_base64,
//!    jwt::whitespace_in_the_token
//! 8. size limit before decoding (CVE-2025-30204) → jwt::oversized_token_and_many_periods
//! 9. ES256 exactly 64 bytes, r, s in [1, n-1] → jwt::psychic_es256_signatures
//! 10. key strength at load → jwt::empty_or_short_hmac_secret_refused_at_load,
//!     jwt::rsa_1024_refused_at_load
//! 11. JWKS by URL → jwt::jwks_url_not_yet_fetched_fails_closed (the decision side; the
//!     refetch rate limit and last-good set are `jwt_remote.rs` and `server/src/jwks.rs` units)
//!
//! Bearer and key extraction:
//! - scheme case-insensitive, one or more spaces → bearer::control_scheme_in_any_case_and_spaces
//! - repeated `Authorization` / comma-merged → bearer::repeated_or_comma_merged_authorization
//! - credential in the query string → bearer::token_in_the_query_string_is_never_read
//! - non-UTF-8 header values → bearer::non_utf8_authorization
//!
//! mTLS identity forwarded by a gateway:
//! - XFCC elements, last one trusted → mtls::xfcc_earlier_client_element_is_ignored
//! - only when configured to → mtls::xfcc_ignored_by_a_pem_header_credential
//! - keys case-insensitive → mtls::control_xfcc_keys_in_any_case
//! - values with `,` `;` `=` quoted, `\"` inside; DNS repeatable →
//!   mtls::control_quoted_values_with_separators_stay_whole
//! - known keys only, once-only keys once → mtls::xfcc_unknown_or_repeated_keys
//! - quoted `Subject` with `;URI=` never a URI → mtls::xfcc_quoted_subject_never_yields_a_uri
//! - unbalanced quotes → mtls::xfcc_unbalanced_quotes
//! - `Hash` not matching `Cert` → mtls::xfcc_hash_mismatch
//! - CR, LF, NUL anywhere → mtls::xfcc_control_characters
//! - repeated XFCC header → mtls::xfcc_repeated_header
//! - `Cert` percent-decoding only → mtls::xfcc_form_encoded_cert
//! - chain from another CA (same name) → mtls::rogue_ca_chain; expired → mtls::expired_certificate
//! - nginx escaped cert, exactly one → mtls::control_nginx_escaped_cert, mtls::pem_header_two_certificates
//! - `$ssl_client_verify` must be `SUCCESS` → mtls::nginx_verify_not_success
//! - SHA-1 fingerprint: pin SHA-256 → mtls::sha1_fingerprint_refused_sha256_pinned
//!
//! SPIFFE IDs:
//! - syntax (lowercase td, segments, no empty/./.., trailing slash, query, fragment, port,
//!   userinfo, percent-encoding, <= 2048 bytes) → spiffe::malformed_ids_are_no_identity
//! - exactly one URI SAN → spiffe::two_uri_sans_are_no_identity
//! - whole segments → spiffe::wildcard_matches_whole_segments_only
//! - trust domain exact → spiffe::trust_domain_matched_exactly
//! - `*` only as the last whole segment → spiffe::wildcard_elsewhere_refused_at_load
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use portcullis_engine::credential::apikey::MemoryIndex;
use portcullis_engine::credential::KeyStore;
use portcullis_engine::{policy, Decision, Engine, Headers, Reason, Request};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// A policy with one credential `c` (a YAML flow mapping) and one route,
/// `api` on `/api/**`, requiring it. Relative files resolve under `tests/data`.
fn policy_text(cred: &str) -> String {
    format!(
        "version: 1\ncredentials:\n  c: {cred}\nroutes:\n  - name: api\n    match: {{path: \"/api/**\"}}\n    require: c\n"
    )
}

fn try_engine(cred: &str) -> Result<Engine, String> {
    let p = policy::load_str(&data().join("policy.yaml"), &policy_text(cred))
        .map_err(|e| e.to_string())?;
    Engine::new(&p, Arc::new(MemoryIndex::new()) as Arc<dyn KeyStore>).map_err(|e| e.to_string())
}

fn engine(cred: &str) -> Engine {
    match try_engine(cred) {
        Ok(e) => e,
        Err(e) => panic!("policy refused: {e}\n{}", policy_text(cred)),
    }
}

/// The load error (policy or compile) for a policy that must be refused.
#[track_caller]
fn refused(cred: &str) -> String {
    match try_engine(cred) {
        Ok(_) => panic!("policy loaded, expected a refusal:\n{}", policy_text(cred)),
        Err(e) => e,
    }
}

fn req(headers: &[(&str, &str)]) -> Request {
    req_to("/api/x", headers)
}

fn req_to(path: &str, headers: &[(&str, &str)]) -> Request {
    let mut h = Headers::new();
    for (k, v) in headers {
        h.append(k, *v);
    }
    Request {
        method: "GET".into(),
        path: path.into(),
        headers: h,
        ..Request::default()
    }
}

#[track_caller]
fn assert_allowed(d: &Decision, principal: &str) {
    assert!(d.allow, "{d:?}");
    assert_eq!((d.status, d.reason), (200, Reason::Allowed), "{d:?}");
    assert_eq!(d.route.as_deref(), Some("api"));
    assert_eq!(
        d.principal.as_ref().map(|p| &*p.id),
        Some(principal),
        "{d:?}"
    );
    assert_eq!(d.header("www-authenticate"), None);
}

/// A deny with exactly this status, reason and `www-authenticate` (None: absent).
#[track_caller]
fn assert_denied(d: &Decision, status: u16, reason: Reason, challenge: Option<&str>) {
    assert!(!d.allow, "{d:?}");
    assert_eq!((d.status, d.reason), (status, reason), "{d:?}");
    assert_eq!(reason.status(), status);
    assert!(d.principal.is_none() || !d.allow);
    assert_eq!(d.header("www-authenticate").as_deref(), challenge, "{d:?}");
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

fn temp_dir() -> PathBuf {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("portcullis-attacks-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---------------------------------------------------------------------------
// JWT: SECURITY.md "what the crate does NOT do", "rejected by the crate
// already" and the verifier checklist.
// ---------------------------------------------------------------------------
mod jwt {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    use portcullis_engine::credential::jwt::testing::{sign_raw, signature};
    use portcullis_engine::policy::JwtAlgorithm as A;
    use serde_json::{json, Value};
    use std::time::{SystemTime, UNIX_EPOCH};

    pub(super) const ISS: &str = "https://issuer.test/";
    pub(super) const AUD: &str = "payments-api";
    const INVALID: Option<&str> = Some("Bearer realm=\"portcullis\", error=\"invalid_token\"");
    const PLAIN: Option<&str> = Some("Bearer realm=\"portcullis\"");

    pub(super) fn key(name: &str) -> Vec<u8> {
        std::fs::read(data().join("jwt/keys").join(name)).unwrap()
    }

    fn jwk(name: &str, kid: &str, alg: &str) -> Value {
        let mut k: Value = serde_json::from_slice(&key(&format!("{name}.jwk.json"))).unwrap();
        k["kid"] = json!(kid);
        k["alg"] = json!(alg);
        k
    }

    fn jwks(keys: &[Value]) -> PathBuf {
        let p = temp_dir().join("jwks.json");
        std::fs::write(&p, serde_json::to_vec(&json!({ "keys": keys })).unwrap()).unwrap();
        p
    }

    /// ES256 keys `k1` and `k2` and an RS256 key `r1`, `typ: at+jwt` required.
    pub(super) fn cred() -> String {
        let p = jwks(&[
            jwk("ec256", "k1", "ES256"),
            jwk("ec256b", "k2", "ES256"),
            jwk("rsa", "r1", "RS256"),
        ]);
        format!(
            "{{type: jwt, issuer: \"{ISS}\", audience: [{AUD}], algorithms: [ES256, RS256], \
             keys: {{jwks_file: \"{}\"}}, require_claims: [sub, exp], typ: at+jwt, \
             leeway: 30s, cache_size: 0}}",
            p.display()
        )
    }

    pub(super) fn engine() -> Engine {
        super::engine(&cred())
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    pub(super) fn claims() -> Value {
        json!({"iss": ISS, "aud": AUD, "sub": "user-1", "iat": now() - 10, "exp": now() + 600})
    }

    pub(super) fn header() -> Value {
        json!({"alg": "ES256", "kid": "k1", "typ": "at+jwt"})
    }

    /// Validly signed with `ec256` (kid `k1`) over exactly these JSON texts.
    pub(super) fn es256_raw(header: &str, payload: &str) -> String {
        sign_raw(
            A::ES256,
            &key("ec256.key.pem"),
            header.as_bytes(),
            payload.as_bytes(),
        )
        .unwrap()
    }

    pub(super) fn es256(header: &Value, claims: &Value) -> String {
        es256_raw(&header.to_string(), &claims.to_string())
    }

    pub(super) fn good() -> String {
        es256(&header(), &claims())
    }

    pub(super) fn bearer(token: &str) -> Request {
        req(&[("authorization", &format!("Bearer {token}"))])
    }

    fn b64(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    fn parts(t: &str) -> (String, String, String) {
        let v: Vec<&str> = t.split('.').collect();
        assert_eq!(v.len(), 3);
        (v[0].into(), v[1].into(), v[2].into())
    }

    /// Every token: `401 credential_invalid` with the `invalid_token` challenge.
    #[track_caller]
    fn all_invalid(e: &Engine, tokens: &[String]) {
        for t in tokens {
            let d = e.decide(&bearer(t));
            assert_denied(&d, 401, Reason::CredentialInvalid, INVALID);
        }
    }

    fn with(mut v: Value, k: &str, x: Value) -> Value {
        v[k] = x;
        v
    }

    fn without(mut v: Value, k: &str) -> Value {
        v.as_object_mut().unwrap().remove(k);
        v
    }

    #[test]
    fn control_well_formed_token_is_allowed() {
        let e = engine();
        assert_allowed(&e.decide(&bearer(&good())), "user-1");
        // Explicit typing: `application/at+jwt`, any case, is the same type.
        for typ in ["application/at+jwt", "AT+JWT"] {
            let t = es256(&with(header(), "typ", json!(typ)), &claims());
            assert_allowed(&e.decide(&bearer(&t)), "user-1");
        }
        // RS256 with its own key.
        let t = sign_raw(
            A::RS256,
            &key("rsa.key.pem"),
            json!({"alg": "RS256", "kid": "r1", "typ": "at+jwt"})
                .to_string()
                .as_bytes(),
            claims().to_string().as_bytes(),
        )
        .unwrap();
        assert_allowed(&e.decide(&bearer(&t)), "user-1");
        // No token at all: missing, with the plain challenge.
        assert_denied(&e.decide(&req(&[])), 401, Reason::CredentialMissing, PLAIN);
    }

    #[test]
    fn control_aud_array_holding_ours_is_allowed() {
        let e = engine();
        let t = es256(&header(), &with(claims(), "aud", json!(["other", AUD])));
        assert_allowed(&e.decide(&bearer(&t)), "user-1");
    }

    // --- "what the crate does NOT do for you by default" ---

    #[test]
    fn nbf_in_the_future_or_non_numeric() {
        let e = engine();
        let t = es256(&header(), &with(claims(), "nbf", json!(now() + 3600)));
        assert_denied(
            &e.decide(&bearer(&t)),
            401,
            Reason::CredentialExpired,
            INVALID,
        );
        all_invalid(
            &e,
            &[json!("0"), json!(null), json!([1]), json!(true)]
                .into_iter()
                .map(|nbf| es256(&header(), &with(claims(), "nbf", nbf)))
                .collect::<Vec<_>>(),
        );
    }

    #[test]
    fn missing_iss_or_aud() {
        let e = engine();
        all_invalid(
            &e,
            &[
                es256(&header(), &without(claims(), "iss")),
                es256(&header(), &without(claims(), "aud")),
            ],
        );
    }

    #[test]
    fn iss_or_aud_of_the_wrong_type() {
        let e = engine();
        all_invalid(
            &e,
            &[
                es256(&header(), &with(claims(), "iss", json!([ISS]))),
                es256(&header(), &with(claims(), "iss", json!(1))),
                es256(&header(), &with(claims(), "aud", json!(1))),
                es256(&header(), &with(claims(), "aud", json!([1, AUD]))),
                es256(&header(), &with(claims(), "aud", json!([]))),
                es256(&header(), &with(claims(), "aud", json!({"aud": AUD}))),
            ],
        );
    }

    #[test]
    fn iss_and_aud_compared_exactly() {
        let e = engine();
        all_invalid(
            &e,
            &[
                es256(
                    &header(),
                    &with(claims(), "iss", json!("https://ISSUER.test/")),
                ),
                es256(
                    &header(),
                    &with(claims(), "iss", json!("https://issuer.test")),
                ),
                es256(&header(), &with(claims(), "aud", json!("Payments-API"))),
                es256(&header(), &with(claims(), "aud", json!("payments-api "))),
            ],
        );
    }

    #[test]
    fn crit_in_any_form() {
        let e = engine();
        all_invalid(
            &e,
            &[
                json!([]),
                json!(["exp"]),
                json!(["b64"]),
                json!("x"),
                json!(null),
            ]
            .into_iter()
            .map(|c| es256(&with(header(), "crit", c), &claims()))
            .collect::<Vec<_>>(),
        );
    }

    #[test]
    fn typ_mismatch_or_absent() {
        let e = engine();
        let mut tokens: Vec<String> = ["JWT", "at+jwt2", "application/jwt", "", "at+jwt "]
            .into_iter()
            .map(|t| es256(&with(header(), "typ", json!(t)), &claims()))
            .collect();
        tokens.push(es256(&without(header(), "typ"), &claims()));
        tokens.push(es256(&with(header(), "typ", json!(1)), &claims()));
        all_invalid(&e, &tokens);
    }

    #[test]
    fn jku_and_x5u_never_fetched() {
        // A listener that would see any outbound request the engine made.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let url = format!("http://{}/jwks.json", l.local_addr().unwrap());
        let e = engine();
        all_invalid(
            &e,
            &[
                es256(&with(header(), "jku", json!(url)), &claims()),
                es256(&with(header(), "x5u", json!(url)), &claims()),
            ],
        );
        assert_eq!(
            l.accept().map_err(|e| e.kind()).err(),
            Some(std::io::ErrorKind::WouldBlock),
            "the engine connected to a URL from the token"
        );
    }

    #[test]
    fn embedded_jwk_or_x5c() {
        let e = engine();
        // Signed with ec256b's key, which is embedded; with kid `k2` (the same
        // key, configured) the signature verifies, so only the member denies.
        let attacker: Value = serde_json::from_slice(&key("ec256b.jwk.json")).unwrap();
        let cert_der = {
            let pem = String::from_utf8(key("ec256.cert.pem")).unwrap();
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            body
        };
        let sign_b = |h: Value| {
            sign_raw(
                A::ES256,
                &key("ec256b.key.pem"),
                h.to_string().as_bytes(),
                claims().to_string().as_bytes(),
            )
            .unwrap()
        };
        // Control: the same token without the embedded key is allowed.
        assert_allowed(
            &e.decide(&bearer(&sign_b(with(header(), "kid", json!("k2"))))),
            "user-1",
        );
        all_invalid(
            &e,
            &[
                sign_b(with(
                    with(header(), "kid", json!("k2")),
                    "jwk",
                    attacker.clone(),
                )),
                sign_b(with(without(header(), "kid"), "jwk", attacker)),
                // Even validly signed by the configured key, a token carrying keys is refused.
                es256(&with(header(), "x5c", json!([cert_der])), &claims()),
            ],
        );
    }

    #[test]
    fn kid_traversal_is_an_unknown_kid() {
        let e = engine();
        all_invalid(
            &e,
            &[
                "../../../../dev/null",
                "/etc/passwd",
                "k1/../k1",
                "K1",
                "k1 ",
                "k1\u{0}",
                "' OR '1'='1",
            ]
            .into_iter()
            .map(|kid| es256(&with(header(), "kid", json!(kid)), &claims()))
            .collect::<Vec<_>>(),
        );
    }

    #[test]
    fn ten_kb_kid() {
        let e = engine();
        let t = es256(&with(header(), "kid", json!("k".repeat(10_240))), &claims());
        let started = std::time::Instant::now();
        all_invalid(&e, &[t]);
        // Generous for a shared debug build: the point is no per-byte key search.
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn empty_or_short_hmac_secret_refused_at_load() {
        for (secret, n) in [("", 0), ("short-secret", 1), (&*"x".repeat(31), 2)] {
            let var = format!("PORTCULLIS_ATTACKS_HS_{}_{n}", std::process::id());
            std::env::set_var(&var, secret);
            let err = refused(&format!(
                "{{type: jwt, algorithms: [HS256], keys: {{secret_env: {var}}}}}"
            ));
            assert!(!err.is_empty());
            // The secret itself never appears in the error.
            assert!(secret.is_empty() || !err.contains(secret), "{err}");
        }
    }

    #[test]
    fn public_key_material_as_hmac_secret_refused_at_load() {
        let pem = String::from_utf8(key("rsa.pub.pem")).unwrap();
        let jwk = String::from_utf8(key("rsa.jwk.json")).unwrap();
        for (n, material) in [pem, jwk].into_iter().enumerate() {
            let var = format!("PORTCULLIS_ATTACKS_PK_{}_{n}", std::process::id());
            std::env::set_var(&var, &material);
            refused(&format!(
                "{{type: jwt, algorithms: [HS256], keys: {{secret_env: {var}}}}}"
            ));
        }
    }

    #[test]
    fn rs_to_hs_confusion() {
        // The engine holds our RSA public key; the attacker MACs with its bytes.
        let e = engine();
        let pem = key("rsa.pub.pem");
        let der = STANDARD
            .decode(
                String::from_utf8(pem.clone())
                    .unwrap()
                    .lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap();
        let jwk = key("rsa.jwk.json");
        let mut tokens = Vec::new();
        for material in [pem, der, jwk] {
            for kid in ["r1", "k1"] {
                let h = json!({"alg": "HS256", "kid": kid, "typ": "at+jwt"});
                tokens.push(
                    sign_raw(
                        A::HS256,
                        &material,
                        h.to_string().as_bytes(),
                        claims().to_string().as_bytes(),
                    )
                    .unwrap(),
                );
            }
        }
        all_invalid(&e, &tokens);
        // The same with an HS-configured credential next to an RS key file:
        // HS keys only ever come from `secret_env`.
        refused(&format!(
            "{{type: jwt, algorithms: [HS256], keys: {{pem_file: \"{}\"}}}}",
            data().join("jwt/keys/rsa.pub.pem").display()
        ));
    }

    #[test]
    fn duplicate_kid_jwks_refused_at_load() {
        let p = jwks(&[jwk("ec256", "k1", "ES256"), jwk("ec256b", "k1", "ES256")]);
        refused(&format!(
            "{{type: jwt, algorithms: [ES256], keys: {{jwks_file: \"{}\"}}}}",
            p.display()
        ));
    }

    #[test]
    fn es512_denied_and_refused_at_load() {
        let e = engine();
        all_invalid(
            &e,
            &[es256(&with(header(), "alg", json!("ES512")), &claims())],
        );
        refused(&format!(
            "{{type: jwt, algorithms: [ES512], keys: {{pem_file: \"{}\"}}}}",
            data().join("jwt/keys/p521.pub.pem").display()
        ));
        refused(&format!(
            "{{type: jwt, algorithms: [ES256], keys: {{pem_file: \"{}\"}}}}",
            data().join("jwt/keys/p521.pub.pem").display()
        ));
    }

    #[test]
    fn rsa_1024_refused_at_load() {
        refused(&format!(
            "{{type: jwt, algorithms: [RS256], keys: {{pem_file: \"{}\"}}}}",
            data().join("jwt/keys/rsa1024.pub.pem").display()
        ));
    }

    // --- "rejected by the crate already" ---

    #[test]
    fn alg_none_in_any_case() {
        let e = engine();
        let p = b64(claims().to_string().as_bytes());
        let mut tokens = Vec::new();
        for none in ["none", "None", "NONE", "nOnE"] {
            let h = b64(with(header(), "alg", json!(none)).to_string().as_bytes());
            tokens.push(format!("{h}.{p}."));
            tokens.push(format!("{h}.{p}.AAAA"));
        }
        all_invalid(&e, &tokens);
    }

    #[test]
    fn lowercase_alg_names() {
        let e = engine();
        all_invalid(
            &e,
            &["es256", "Es256", "ES256 ", "rs256"]
                .into_iter()
                .map(|a| es256(&with(header(), "alg", json!(a)), &claims()))
                .collect::<Vec<_>>(),
        );
    }

    #[test]
    fn empty_signature() {
        let (h, p, _) = parts(&good());
        all_invalid(&engine(), &[format!("{h}.{p}.")]);
    }

    #[test]
    fn duplicate_header_or_claim_members() {
        let e = engine();
        let c = claims().to_string();
        let body = &c[1..c.len() - 1];
        all_invalid(
            &e,
            &[
                es256_raw(
                    r#"{"alg":"ES256","kid":"k1","typ":"at+jwt","alg":"ES256"}"#,
                    &c,
                ),
                es256_raw(
                    r#"{"alg":"ES256","kid":"k2","typ":"at+jwt","\u006bid":"k1"}"#,
                    &c,
                ),
                es256_raw(
                    &header().to_string(),
                    &format!(r#"{{{body},"sub":"admin"}}"#),
                ),
                es256_raw(
                    &header().to_string(),
                    &format!(r#"{{"aud":"other",{body}}}"#),
                ),
            ],
        );
    }

    #[test]
    fn trailing_bytes_after_json() {
        let e = engine();
        let h = header().to_string();
        let c = claims().to_string();
        all_invalid(
            &e,
            &[
                es256_raw(&format!("{h} x"), &c),
                es256_raw(&format!("{h}{{}}"), &c),
                es256_raw(&h, &format!("{c}\u{0}")),
                es256_raw(&h, &format!("{c}{c}")),
            ],
        );
    }

    #[test]
    fn padded_or_standard_base64() {
        let e = engine();
        let mut tokens = Vec::new();
        // Pad whichever segment has a length that takes padding.
        let (h, p, s) = parts(&good());
        for (i, seg) in [&h, &p, &s].into_iter().enumerate() {
            let pad = "=".repeat((4 - seg.len() % 4) % 4);
            if pad.is_empty() {
                continue;
            }
            let mut v = [h.clone(), p.clone(), s.clone()];
            v[i] = format!("{seg}{pad}");
            tokens.push(v.join("."));
        }
        // The standard alphabet: a signature holding `-` or `_`, rewritten.
        let sig_std = loop {
            let (h2, p2, s2) = parts(&good());
            if s2.contains('-') || s2.contains('_') {
                break format!("{h2}.{p2}.{}", s2.replace('-', "+").replace('_', "/"));
            }
        };
        tokens.push(sig_std);
        assert!(!tokens.is_empty());
        all_invalid(&e, &tokens);
    }

    #[test]
    fn whitespace_in_the_token() {
        let e = engine();
        let (h, p, s) = parts(&good());
        // Inside the bearer value a space splits it: two values, ambiguous.
        for t in [format!("{h}.{p} .{s}"), format!("{h} .{p}.{s}")] {
            assert_denied(
                &e.decide(&bearer(&t)),
                401,
                Reason::AmbiguousCredential,
                PLAIN,
            );
        }
        // Tabs, newlines and whitespace inside the encoded JSON.
        let ws_header = es256_raw(
            "{ \"alg\" : \"ES256\",\n\"kid\":\"k1\",\t\"typ\":\"at+jwt\" }",
            &claims().to_string(),
        );
        let d = e.decide(&bearer(&ws_header));
        // JSON whitespace is legal JSON: the token is well formed and allowed.
        assert!(d.allow, "{d:?}");
        for t in [format!("{h}.{p}\t.{s}"), format!("{h}.\n{p}.{s}")] {
            let d = e.decide(&bearer(&t));
            assert!(!d.allow, "{d:?}");
            assert_eq!(d.status, 401);
        }
    }

    #[test]
    fn two_or_four_segments() {
        let (h, p, s) = parts(&good());
        all_invalid(
            &engine(),
            &[
                format!("{h}.{p}"),
                format!("{h}.{p}.{s}.{s}"),
                format!("{h}.{p}.{s}."),
                format!(".{h}.{p}.{s}"),
            ],
        );
    }

    #[test]
    fn psychic_es256_signatures() {
        let (h, p, s) = parts(&good());
        let real = URL_SAFE_NO_PAD.decode(&s).unwrap();
        all_invalid(
            &engine(),
            &[
                format!("{h}.{p}.{}", b64(&[0u8; 64])),
                format!("{h}.{p}.MAYCAQACAQA"),
                format!("{h}.{p}.{}", b64(&[&[0u8; 32][..], &real[32..]].concat())),
                format!("{h}.{p}.{}", b64(&[&real[..32], &[0u8; 32][..]].concat())),
                format!("{h}.{p}.{}", b64(&[real.clone(), vec![0]].concat())),
                format!("{h}.{p}.{}", b64(&real[..63])),
            ],
        );
    }

    // --- checklist ---

    #[test]
    fn alg_not_configured() {
        // HS256 and ES384 are not configured: a validly formed MAC or
        // signature under any key is refused before key lookup.
        let e = engine();
        let h = json!({"alg": "HS256", "kid": "k1", "typ": "at+jwt"}).to_string();
        let c = claims().to_string();
        let input = format!("{}.{}", b64(h.as_bytes()), b64(c.as_bytes()));
        let mac = signature(A::HS256, &[7u8; 32], input.as_bytes()).unwrap();
        let es384 = sign_raw(
            A::ES384,
            &key("ec384.key.pem"),
            json!({"alg": "ES384", "typ": "at+jwt"})
                .to_string()
                .as_bytes(),
            c.as_bytes(),
        )
        .unwrap();
        all_invalid(&e, &[format!("{input}.{}", b64(&mac)), es384]);
    }

    #[test]
    fn kid_naming_a_key_of_another_algorithm() {
        let e = engine();
        // ES256 header naming the RSA key, and RS256 naming an EC key.
        let rs = sign_raw(
            A::RS256,
            &key("rsa.key.pem"),
            json!({"alg": "RS256", "kid": "k1", "typ": "at+jwt"})
                .to_string()
                .as_bytes(),
            claims().to_string().as_bytes(),
        )
        .unwrap();
        all_invalid(
            &e,
            &[es256(&with(header(), "kid", json!("r1")), &claims()), rs],
        );
    }

    #[test]
    fn no_kid_and_several_candidate_keys() {
        // k1 and k2 are both ES256: without a kid no key is tried in turn.
        all_invalid(&engine(), &[es256(&without(header(), "kid"), &claims())]);
    }

    #[test]
    fn expired_or_exp_of_the_wrong_type() {
        let e = engine();
        for exp in [now() - 3600, now() - 31] {
            let t = es256(&header(), &with(claims(), "exp", json!(exp)));
            assert_denied(
                &e.decide(&bearer(&t)),
                401,
                Reason::CredentialExpired,
                INVALID,
            );
        }
        // Within the 30 s leeway: still allowed.
        let t = es256(&header(), &with(claims(), "exp", json!(now() - 5)));
        assert_allowed(&e.decide(&bearer(&t)), "user-1");
        let mut tokens: Vec<String> = [json!((now() + 600).to_string()), json!(null), json!([1])]
            .into_iter()
            .map(|exp| es256(&header(), &with(claims(), "exp", exp)))
            .collect();
        // `exp` is in require_claims.
        tokens.push(es256(&header(), &without(claims(), "exp")));
        all_invalid(&e, &tokens);
    }

    #[test]
    fn oversized_token_and_many_periods() {
        let e = engine();
        let big = es256(&header(), &with(claims(), "pad", json!("x".repeat(9000))));
        assert!(big.len() > 8192);
        // CVE-2025-30204: a header of many periods.
        let periods = format!("{}{}", ".".repeat(100_000), "a");
        let started = std::time::Instant::now();
        all_invalid(&e, &[big, periods]);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn jwks_url_not_yet_fetched_fails_closed() {
        // The engine does no I/O: until the server's fetcher installs a set,
        // every token is `503 store_unavailable`, never an allow.
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let e = super::engine(&format!(
            "{{type: jwt, algorithms: [ES256], keys: {{jwks_url: \"https://jwks.invalid/{}-{n}.json\"}}}}",
            std::process::id()
        ));
        let d = e.decide(&bearer(&good()));
        assert_denied(&d, 503, Reason::StoreUnavailable, None);
    }
}

// ---------------------------------------------------------------------------
// Bearer extraction: SECURITY.md "Bearer and key extraction", with a JWT
// credential on `Authorization: Bearer`.
// ---------------------------------------------------------------------------
mod bearer {
    use super::*;

    const PLAIN: Option<&str> = Some("Bearer realm=\"portcullis\"");

    #[test]
    fn control_scheme_in_any_case_and_spaces() {
        let e = jwt::engine();
        let t = jwt::good();
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            for spaces in [" ", "   "] {
                let d = e.decide(&req(&[("Authorization", &format!("{scheme}{spaces}{t}"))]));
                assert_allowed(&d, "user-1");
            }
        }
    }

    #[test]
    fn repeated_or_comma_merged_authorization() {
        let e = jwt::engine();
        let b = format!("Bearer {}", jwt::good());
        let other = format!(
            "Bearer {}",
            jwt::es256(
                &jwt::header(),
                &serde_json::json!({"iss": jwt::ISS, "aud": jwt::AUD, "sub": "admin",
                    "exp": jwt::claims()["exp"].clone()})
            )
        );
        for headers in [
            vec![("authorization", b.as_str()), ("Authorization", b.as_str())],
            vec![
                ("authorization", b.as_str()),
                ("authorization", other.as_str()),
            ],
        ] {
            assert_denied(
                &e.decide(&req(&headers)),
                401,
                Reason::AmbiguousCredential,
                PLAIN,
            );
        }
        for merged in [format!("{b},{other}"), format!("{b}, {b}"), format!("{b},")] {
            assert_denied(
                &e.decide(&req(&[("authorization", &merged)])),
                401,
                Reason::AmbiguousCredential,
                PLAIN,
            );
        }
    }

    #[test]
    fn token_in_the_query_string_is_never_read() {
        let e = jwt::engine();
        let t = jwt::good();
        for q in ["access_token", "api_key", "token", "jwt"] {
            let d = e.decide(&req_to(&format!("/api/x?{q}={t}"), &[]));
            assert_denied(&d, 401, Reason::CredentialMissing, PLAIN);
            assert!(
                !format!("{d:?}").contains(&t),
                "the token leaked into the decision"
            );
        }
    }

    #[test]
    fn non_utf8_authorization() {
        let e = jwt::engine();
        let mut r = req(&[]);
        r.headers.append_invalid("authorization");
        let d = e.decide(&r);
        // An unreadable value cannot be told apart from a second credential.
        assert_denied(&d, 401, Reason::AmbiguousCredential, PLAIN);
        // Next to a good token, still a deny.
        let mut r = jwt::bearer(&jwt::good());
        r.headers.append_invalid("authorization");
        assert!(!e.decide(&r).allow);
    }
}

// ---------------------------------------------------------------------------
// mTLS: SECURITY.md "mTLS identity forwarded by a gateway" (XFCC and nginx
// PEM headers), with the checked-in test PKI.
// ---------------------------------------------------------------------------
mod mtls {
    use super::*;
    use portcullis_engine::credential::mtls::testing::{escaped_pem, xfcc_header};

    pub(super) const SPIFFE_API: &str = "spiffe://portcullis.test/ns/billing/sa/api";
    pub(super) const CERT: Option<&str> = Some("ClientCertificate realm=\"portcullis\"");
    const CLIENT_SUBJECT: &str = "CN=client.portcullis.test,O=Portcullis Test";

    pub(super) fn pki(name: &str) -> String {
        std::fs::read_to_string(data().join("pki").join(name)).unwrap()
    }

    pub(super) fn xfcc_cred(ca: bool, spiffe_ids: &str) -> String {
        let ca = if ca { "ca_file: pki/root-ca.pem, " } else { "" };
        format!("{{type: mtls, in: xfcc, {ca}allow: {{spiffe_ids: [{spiffe_ids}]}}}}")
    }

    fn mesh() -> Engine {
        engine(&xfcc_cred(
            true,
            "\"spiffe://portcullis.test/ns/billing/*\"",
        ))
    }

    fn edge() -> Engine {
        engine(&format!(
            "{{type: mtls, in: \"pem_header:X-SSL-Client-Cert\", verify_header: X-SSL-Client-Verify, \
             ca_file: pki/intermediate-ca.pem, allow: {{subjects: [\"{CLIENT_SUBJECT}\"]}}}}"
        ))
    }

    /// What Envoy with cert and chain details writes for `leaf` (own URI SAN).
    pub(super) fn element(leaf: &str, chain: &str, uri: Option<&str>) -> String {
        format!(
            "{};Chain=\"{}\"",
            xfcc_header(&pki(leaf), uri),
            escaped_pem(&pki(chain))
        )
    }

    fn spiffe_element() -> String {
        element("spiffe.pem", "spiffe-chain.pem", Some(SPIFFE_API))
    }

    fn client_element() -> String {
        element("client.pem", "client-chain.pem", None)
    }

    fn xfcc(v: &str) -> Request {
        req(&[("x-forwarded-client-cert", v)])
    }

    #[track_caller]
    fn all_invalid(e: &Engine, values: &[String]) {
        for v in values {
            assert_denied(&e.decide(&xfcc(v)), 401, Reason::CredentialInvalid, CERT);
        }
    }

    #[test]
    fn control_xfcc_with_chain_is_allowed() {
        let e = mesh();
        assert_allowed(&e.decide(&xfcc(&spiffe_element())), SPIFFE_API);
        assert_denied(&e.decide(&req(&[])), 401, Reason::CredentialMissing, CERT);
    }

    #[test]
    fn control_xfcc_keys_in_any_case() {
        let e = mesh();
        let lower = spiffe_element()
            .replace("By=", "by=")
            .replace("Hash=", "hash=")
            .replace("Cert=", "cert=")
            .replace("Chain=", "CHAIN=")
            .replace("URI=", "uri=");
        assert_allowed(&e.decide(&xfcc(&lower)), SPIFFE_API);
    }

    #[test]
    fn control_quoted_values_with_separators_stay_whole() {
        let e = mesh();
        // `,` `;` `=` and `\"` inside quoted values of the trusted element,
        // and a repeated DNS key: one element, still the SPIFFE identity.
        let h = format!(
            "{};DNS=\"a,b;c=d\\\"e\";DNS=api.portcullis.test;By=\"spiffe://x,y;z=w\"",
            spiffe_element()
        );
        assert_allowed(&e.decide(&xfcc(&h)), SPIFFE_API);
    }

    #[test]
    fn xfcc_earlier_client_element_is_ignored() {
        let e = mesh();
        // The client sends an allowed element; the proxy appends the real one.
        let h = format!("{},{}", spiffe_element(), client_element());
        assert_denied(
            &e.decide(&xfcc(&h)),
            403,
            Reason::CertificateNotAllowed,
            None,
        );
        // And the other way round the proxy's (last) element decides.
        let h = format!("{}, {}", client_element(), spiffe_element());
        assert_allowed(&e.decide(&xfcc(&h)), SPIFFE_API);
    }

    #[test]
    fn xfcc_ignored_by_a_pem_header_credential() {
        let e = edge();
        let d = e.decide(&xfcc(&client_element()));
        assert_denied(&d, 401, Reason::CredentialMissing, CERT);
        // ...and a PEM header is not read by an XFCC credential.
        let d = mesh().decide(&req(&[
            ("X-SSL-Client-Cert", &escaped_pem(&pki("spiffe.pem"))),
            ("X-SSL-Client-Verify", "SUCCESS"),
        ]));
        assert_denied(&d, 401, Reason::CredentialMissing, CERT);
    }

    #[test]
    fn xfcc_unknown_or_repeated_keys() {
        let e = mesh();
        let s = spiffe_element();
        all_invalid(
            &e,
            &[
                format!("{s};Evil=1"),
                format!("{s};Cert=x"),
                format!("{s};Subject=\"a\";Subject=\"b\""),
                format!("{s};Hash={}", "0".repeat(64)),
                format!("{s};noequals"),
            ],
        );
    }

    #[test]
    fn xfcc_quoted_subject_never_yields_a_uri() {
        let e = mesh();
        // client.pem has no URI SAN; its element claims one inside a quoted Subject.
        let c = escaped_pem(&pki("client.pem"));
        let chain = escaped_pem(&pki("client-chain.pem"));
        let h = format!(
            "Cert=\"{c}\";Chain=\"{chain}\";Subject=\"CN=x;URI={SPIFFE_API}\";DNS=client.portcullis.test"
        );
        assert_denied(
            &e.decide(&xfcc(&h)),
            403,
            Reason::CertificateNotAllowed,
            None,
        );
        let h = format!("Cert=\"{c}\";Chain=\"{chain}\";Subject=\"CN=x\\\";URI={SPIFFE_API}\"");
        assert_denied(
            &e.decide(&xfcc(&h)),
            403,
            Reason::CertificateNotAllowed,
            None,
        );
    }

    #[test]
    fn xfcc_unbalanced_quotes() {
        let e = mesh();
        let s = spiffe_element();
        all_invalid(
            &e,
            &[
                format!("{s};Subject=\"CN=x"),
                // An open quote in a client element must not swallow the proxy's.
                format!("Subject=\"x,{s}"),
                format!("{s};Subject=CN=\"x\""),
                format!("{s};Subject=\"x\"y"),
            ],
        );
    }

    #[test]
    fn xfcc_hash_mismatch() {
        let e = mesh();
        let s = spiffe_element();
        let i = s.find("Hash=").unwrap() + 5;
        let real = &s[i..i + 64];
        let flipped = if real.starts_with('0') { "1" } else { "0" };
        all_invalid(
            &e,
            &[
                format!("{}{}{}", &s[..i], "0".repeat(64), &s[i + 64..]),
                format!("{}{flipped}{}", &s[..i], &s[i + 1..]),
                format!("{}{}{}", &s[..i], &real[..40], &s[i + 64..]),
            ],
        );
    }

    #[test]
    fn xfcc_control_characters() {
        let e = mesh();
        let s = spiffe_element();
        let tokens: Vec<String> = ["\r", "\n", "\0", "\t", "\u{7f}", "\r\n"]
            .into_iter()
            .flat_map(|c| {
                [
                    format!("{s}{c}"),
                    format!("{c}{s}"),
                    s.replacen(';', &format!("{c};"), 1),
                ]
            })
            .collect();
        all_invalid(&e, &tokens);
    }

    #[test]
    fn xfcc_repeated_header() {
        let e = mesh();
        let s = spiffe_element();
        for name in ["x-forwarded-client-cert", "X-Forwarded-Client-Cert"] {
            let d = e.decide(&req(&[("x-forwarded-client-cert", &s), (name, &s)]));
            assert_denied(&d, 401, Reason::AmbiguousCredential, CERT);
        }
    }

    #[test]
    fn xfcc_form_encoded_cert() {
        // Without ca_file so `Cert` alone (no Chain) is enough.
        let e = engine(&xfcc_cred(
            false,
            "\"spiffe://portcullis.test/ns/billing/*\"",
        ));
        let pem = pki("spiffe.pem");
        let minimal = pem.replace('\n', "%0A").replace(' ', "%20");
        let d = e.decide(&xfcc(&format!("Cert=\"{minimal}\";URI={SPIFFE_API}")));
        assert_allowed(&d, SPIFFE_API);
        let form = pem.replace('\n', "%0A").replace(' ', "+");
        let d = e.decide(&xfcc(&format!("Cert=\"{form}\";URI={SPIFFE_API}")));
        assert_denied(&d, 401, Reason::CredentialInvalid, CERT);
        let d = e.decide(&xfcc(&format!("Cert=\"{}%zz\"", escaped_pem(&pem))));
        assert_denied(&d, 401, Reason::CredentialInvalid, CERT);
    }

    #[test]
    fn rogue_ca_chain() {
        let e = mesh();
        let rogue = pki("rogue-client.pem");
        let h = format!(
            "{};Chain=\"{}\"",
            xfcc_header(&rogue, Some(SPIFFE_API)),
            escaped_pem(&format!("{rogue}{}", pki("rogue-ca.pem")))
        );
        assert_denied(&e.decide(&xfcc(&h)), 401, Reason::CredentialInvalid, CERT);
        // A server-auth-only leaf from the right CA is not a client certificate.
        let h = element("server-eku.pem", "intermediate-ca.pem", None);
        let h = h.replacen(
            "Chain=\"",
            &format!("Chain=\"{}", escaped_pem(&pki("server-eku.pem"))),
            1,
        );
        assert_denied(&e.decide(&xfcc(&h)), 401, Reason::CredentialInvalid, CERT);
    }

    #[test]
    fn expired_certificate() {
        let e = mesh();
        let exp = pki("expired.pem");
        let h = format!(
            "{};Chain=\"{}\"",
            xfcc_header(&exp, None),
            escaped_pem(&format!("{exp}{}", pki("intermediate-ca.pem")))
        );
        assert_denied(&e.decide(&xfcc(&h)), 401, Reason::CredentialExpired, CERT);
        let d = edge().decide(&req(&[
            ("X-SSL-Client-Cert", &escaped_pem(&exp)),
            ("X-SSL-Client-Verify", "SUCCESS"),
        ]));
        assert_denied(&d, 401, Reason::CredentialExpired, CERT);
    }

    #[test]
    fn control_nginx_escaped_cert() {
        let d = edge().decide(&req(&[
            ("X-SSL-Client-Cert", &escaped_pem(&pki("client.pem"))),
            ("X-SSL-Client-Verify", "SUCCESS"),
        ]));
        assert_allowed(&d, CLIENT_SUBJECT);
        // nginx without a client certificate: "" and NONE are absent, not invalid.
        let d = edge().decide(&req(&[
            ("X-SSL-Client-Cert", ""),
            ("X-SSL-Client-Verify", "NONE"),
        ]));
        assert_denied(&d, 401, Reason::CredentialMissing, CERT);
    }

    #[test]
    fn pem_header_two_certificates() {
        let e = edge();
        let d = e.decide(&req(&[
            ("X-SSL-Client-Cert", &escaped_pem(&pki("client-chain.pem"))),
            ("X-SSL-Client-Verify", "SUCCESS"),
        ]));
        assert_denied(&d, 401, Reason::CredentialInvalid, CERT);
    }

    #[test]
    fn nginx_verify_not_success() {
        let e = edge();
        let cert = escaped_pem(&pki("client.pem"));
        for v in [
            "NONE",
            "FAILED:certificate has expired",
            "FAILED:unable to verify the first certificate",
            "success",
            " SUCCESS",
            "SUCCESS ",
            "",
        ] {
            let d = e.decide(&req(&[
                ("X-SSL-Client-Cert", &cert),
                ("X-SSL-Client-Verify", v),
            ]));
            assert_denied(&d, 401, Reason::CredentialInvalid, CERT);
        }
        // Absent.
        let d = e.decide(&req(&[("X-SSL-Client-Cert", &cert)]));
        assert_denied(&d, 401, Reason::CredentialInvalid, CERT);
        // Repeated.
        let d = e.decide(&req(&[
            ("X-SSL-Client-Cert", &cert),
            ("X-SSL-Client-Verify", "SUCCESS"),
            ("X-SSL-Client-Verify", "SUCCESS"),
        ]));
        assert_denied(&d, 401, Reason::AmbiguousCredential, CERT);
    }

    #[test]
    fn sha1_fingerprint_refused_sha256_pinned() {
        // The XFCC `Hash` the helper writes is the SHA-256 of the DER.
        let x = xfcc_header(&pki("client.pem"), None);
        let i = x.find("Hash=").unwrap() + 5;
        let sha256 = x[i..i + 64].to_string();
        let cred = |fp: &str| {
            format!(
                "{{type: mtls, in: \"pem_header:X-SSL-Client-Cert\", verify_header: X-SSL-Client-Verify, \
                 allow: {{fingerprints_sha256: [\"{fp}\"]}}}}"
            )
        };
        let err = refused(&cred(&"ab".repeat(20)));
        assert!(err.to_lowercase().contains("sha"), "{err}");
        let colons = sha256
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        let e = engine(&cred(&colons));
        let d = e.decide(&req(&[
            ("X-SSL-Client-Cert", &escaped_pem(&pki("client.pem"))),
            ("X-SSL-Client-Verify", "SUCCESS"),
        ]));
        assert_allowed(&d, CLIENT_SUBJECT);
        // Another certificate of the same CA: not pinned.
        let d = e.decide(&req(&[
            ("X-SSL-Client-Cert", &escaped_pem(&pki("spiffe.pem"))),
            ("X-SSL-Client-Verify", "SUCCESS"),
        ]));
        assert_denied(&d, 403, Reason::CertificateNotAllowed, None);
    }
}

// ---------------------------------------------------------------------------
// SPIFFE: SECURITY.md "SPIFFE IDs". Malformed IDs are tried as URIs a trusted
// proxy vouches for (XFCC without `Cert`, no `ca_file`), so each case differs
// from the allowed one only in the ID.
// ---------------------------------------------------------------------------
mod spiffe {
    use super::mtls::{element, pki, xfcc_cred, CERT, SPIFFE_API};
    use super::*;
    use portcullis_engine::credential::mtls::testing::quote;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn vouched(uris: &[&str]) -> Request {
        let mut h = format!("By=spiffe://portcullis.test/ns/edge/sa/envoy;Hash={HASH}");
        for u in uris {
            h.push_str(&format!(";URI=\"{}\"", quote(u)));
        }
        req(&[("x-forwarded-client-cert", &h)])
    }

    fn billing() -> Engine {
        engine(&xfcc_cred(
            false,
            "\"spiffe://portcullis.test/ns/billing/*\"",
        ))
    }

    #[test]
    fn control_vouched_spiffe_id_is_allowed() {
        assert_allowed(&billing().decide(&vouched(&[SPIFFE_API])), SPIFFE_API);
    }

    #[test]
    fn malformed_ids_are_no_identity() {
        let e = billing();
        let long = format!("spiffe://portcullis.test/ns/billing/{}", "a".repeat(2048));
        for id in [
            "spiffe://Portcullis.test/ns/billing/sa/api",
            "SPIFFE://portcullis.test/ns/billing/sa/api",
            "spiffe://portcullis.test/ns/billing//api",
            "spiffe://portcullis.test/ns/billing/./api",
            "spiffe://portcullis.test/ns/billing/../billing/sa",
            "spiffe://portcullis.test/ns/billing/sa/api/",
            "spiffe://portcullis.test/ns/billing/sa/api?x=1",
            "spiffe://portcullis.test/ns/billing/sa/api#frag",
            "spiffe://portcullis.test:443/ns/billing/sa/api",
            "spiffe://user@portcullis.test/ns/billing/sa/api",
            "spiffe://portcullis.test/ns/billing/sa/%61pi",
            "spiffe://portcullis.test/ns/billing/sa/a pi",
            "spiffe://por_cullis!.test/ns/billing/sa/api",
            long.as_str(),
        ] {
            let d = e.decide(&vouched(&[id]));
            assert_denied(&d, 403, Reason::CertificateNotAllowed, None);
        }
    }

    #[test]
    fn two_uri_sans_are_no_identity() {
        let e = engine(&xfcc_cred(
            true,
            "\"spiffe://portcullis.test/ns/billing/*\"",
        ));
        // two-uris.pem carries an allowed ID and another: no SPIFFE identity.
        let d = e.decide(&req(&[(
            "x-forwarded-client-cert",
            &format!(
                "{};Chain=\"{}\"",
                portcullis_engine::credential::mtls::testing::xfcc_header(
                    &pki("two-uris.pem"),
                    None
                ),
                portcullis_engine::credential::mtls::testing::escaped_pem(&format!(
                    "{}{}",
                    pki("two-uris.pem"),
                    pki("intermediate-ca.pem")
                ))
            ),
        )]));
        assert_denied(&d, 403, Reason::CertificateNotAllowed, None);
        // The vouched form: two URIs are none either.
        let d = billing().decide(&vouched(&[
            SPIFFE_API,
            "spiffe://portcullis.test/ns/admin/sa/root",
        ]));
        assert_denied(&d, 403, Reason::CertificateNotAllowed, None);
        // A control for the cert route: the single-URI certificate is allowed.
        let d = e.decide(&req(&[(
            "x-forwarded-client-cert",
            &element("spiffe.pem", "spiffe-chain.pem", Some(SPIFFE_API)),
        )]));
        assert_allowed(&d, SPIFFE_API);
    }

    #[test]
    fn wildcard_matches_whole_segments_only() {
        let e = engine(&xfcc_cred(false, "\"spiffe://portcullis.test/ns/prod/*\""));
        assert_allowed(
            &e.decide(&vouched(&["spiffe://portcullis.test/ns/prod/sa/api"])),
            "spiffe://portcullis.test/ns/prod/sa/api",
        );
        for id in [
            "spiffe://portcullis.test/ns/production/sa/api",
            "spiffe://portcullis.test/ns/prod",
            "spiffe://portcullis.test/ns/prodx",
            "spiffe://portcullis.test/ns/Prod/sa/api",
            "spiffe://portcullis.test/x/ns/prod/sa",
        ] {
            let d = e.decide(&vouched(&[id]));
            assert_denied(&d, 403, Reason::CertificateNotAllowed, None);
        }
    }

    #[test]
    fn trust_domain_matched_exactly() {
        let e = engine(&xfcc_cred(false, "\"spiffe://td/*\""));
        assert_allowed(
            &e.decide(&vouched(&["spiffe://td/sa/api"])),
            "spiffe://td/sa/api",
        );
        for id in [
            "spiffe://td.evil.com/sa/api",
            "spiffe://eviltd/sa/api",
            "spiffe://td-x/sa/api",
            "spiffe://evil.td/sa/api",
        ] {
            let d = e.decide(&vouched(&[id]));
            assert_denied(&d, 403, Reason::CertificateNotAllowed, None);
        }
        let _ = CERT;
    }

    #[test]
    fn wildcard_elsewhere_refused_at_load() {
        for p in [
            "spiffe://td/ns/*/sa",
            "spiffe://td/prod*",
            "spiffe://*.td/ns",
            "spiffe://td/**",
            "spiffe://td",
            "spiffe://TD/ns/*",
            "spiffe://td/ns/../*",
        ] {
            let err = refused(&xfcc_cred(false, &format!("\"{p}\"")));
            assert!(err.contains(p), "{p}: {err}");
        }
    }
}
