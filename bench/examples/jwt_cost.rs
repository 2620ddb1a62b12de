//! Instruction counts of a JWT decision, for callgrind (load-independent):
//! `valgrind --tool=callgrind --toggle-collect='jwt_cost::run*' \
//!   target/release/examples/jwt_cost HS256 decide 1000`
//! then divide the total by the iteration count. Modes: `decide` (cache
//! off), `hit` (cache warm), `sig` (the bare signature check of the same
//! key), `apikey` (an API-key decision, 1,000 keys).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{self, ParsedPublicKey};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use portcullis_bench::{key_index, key_requests, path_for, policy_with_routes};
use portcullis_engine::credential::apikey::MemoryIndex;
use portcullis_engine::credential::jwt::testing::sign;
use portcullis_engine::credential::KeyStore;
use portcullis_engine::policy::{
    CredentialKind, JwtAlgorithm, JwtDef, JwtKeySource, Source, Span, Spanned,
};
use portcullis_engine::{Engine, Request};

fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/data/jwt/keys")
}

fn def(alg: JwtAlgorithm, keys: JwtKeySource, cache: usize) -> JwtDef {
    JwtDef {
        sources: vec![Source::Bearer],
        issuer: Some("https://issuer.test/".into()),
        audience: vec!["payments-api".into()],
        algorithms: vec![alg],
        keys: Spanned::new(keys, Span::default()),
        leeway: Duration::from_secs(30),
        max_lifetime: Some(Duration::from_secs(3600)),
        require_claims: vec!["sub".into(), "exp".into(), "iat".into()],
        scopes_claim: Some("scope".into()),
        principal_claim: "sub".into(),
        typ: None,
        max_token_bytes: 8192,
        cache_size: cache,
    }
}

enum Bare {
    Public(ParsedPublicKey),
    Hmac(Box<aws_lc_rs::hmac::Key>),
}

#[inline(never)]
fn run(n: usize, f: &mut dyn FnMut() -> bool) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        ok += usize::from(black_box(f()));
    }
    ok
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("HS256", String::as_str);
    let mode = args.get(2).map_or("decide", String::as_str);
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000);
    if mode == "apikey" {
        let (index, sample) = key_index(1000);
        let engine = Engine::new(&policy_with_routes(10), index as Arc<dyn KeyStore>).unwrap();
        let reqs = key_requests(&sample);
        let req = &reqs[0];
        let mut f = || engine.decide(black_box(req)).allow;
        println!("{}", run(n, &mut f));
        return;
    }
    use JwtAlgorithm as A;
    let (alg, stem) = match name {
        "HS256" => (A::HS256, ""),
        "HS384" => (A::HS384, ""),
        "HS512" => (A::HS512, ""),
        "RS256" => (A::RS256, "rsa"),
        "RS384" => (A::RS384, "rsa"),
        "RS512" => (A::RS512, "rsa"),
        "PS256" => (A::PS256, "rsa"),
        "PS384" => (A::PS384, "rsa"),
        "PS512" => (A::PS512, "rsa"),
        "ES256" => (A::ES256, "ec256"),
        "ES384" => (A::ES384, "ec384"),
        _ => (A::EdDSA, "ed25519"),
    };
    let (src, signing, bare) = if stem.is_empty() {
        let (len, h) = match alg {
            A::HS256 => (32u8, aws_lc_rs::hmac::HMAC_SHA256),
            A::HS384 => (48, aws_lc_rs::hmac::HMAC_SHA384),
            _ => (64, aws_lc_rs::hmac::HMAC_SHA512),
        };
        let secret: Vec<u8> = (0..len).collect();
        let var = format!("PORTCULLIS_COST_{name}_SECRET");
        std::env::set_var(
            &var,
            format!("base64url:{}", URL_SAFE_NO_PAD.encode(&secret)),
        );
        let bare = Bare::Hmac(Box::new(aws_lc_rs::hmac::Key::new(h, &secret)));
        (JwtKeySource::SecretEnv(var), secret, bare)
    } else {
        let pub_pem = std::fs::read_to_string(keys_dir().join(format!("{stem}.pub.pem"))).unwrap();
        let b64: String = pub_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = STANDARD.decode(b64).unwrap();
        let va: &'static dyn signature::VerificationAlgorithm = match alg {
            A::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            A::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            A::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            A::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            A::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            A::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            A::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            A::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            _ => &signature::ED25519,
        };
        (
            JwtKeySource::PemFile(keys_dir().join(format!("{stem}.pub.pem"))),
            std::fs::read(keys_dir().join(format!("{stem}.key.pem"))).unwrap(),
            Bare::Public(ParsedPublicKey::new(va, &der).unwrap()),
        )
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://issuer.test/",
        "aud": "payments-api",
        "sub": "user-1",
        "iat": now - 10,
        "exp": now + 3000,
        "scope": "read charges:read refunds:write",
        "jti": "bench-token-1",
    });
    let token = sign(alg, &signing, None, None, &claims).unwrap();
    let cache = if mode == "hit" { 10_000 } else { 0 };
    let mut policy = policy_with_routes(10);
    policy.credentials[0].kind = CredentialKind::Jwt(def(alg, src, cache));
    let engine = Engine::new(&policy, Arc::new(MemoryIndex::new()) as Arc<dyn KeyStore>).unwrap();
    let mut req = Request {
        method: "GET".into(),
        path: path_for(0),
        ..Request::default()
    };
    req.headers
        .append("authorization", format!("Bearer {token}"));
    req.headers.append("accept", "application/json");
    req.headers.append("user-agent", "bench/1.0");
    assert!(engine.decide(&req).allow, "the bench token must be allowed");
    let (signing_input, sig) = token.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let ok = match mode {
        "sig" => {
            let mut f = || match &bare {
                Bare::Public(k) => k
                    .verify_sig(black_box(signing_input.as_bytes()), &sig)
                    .is_ok(),
                Bare::Hmac(k) => {
                    aws_lc_rs::hmac::verify(k, black_box(signing_input.as_bytes()), &sig).is_ok()
                }
            };
            run(n, &mut f)
        }
        _ => {
            let mut f = || engine.decide(black_box(&req)).allow;
            run(n, &mut f)
        }
    };
    println!("{ok}");
}
