//! One JWT setup per algorithm, shared by the criterion suite
//! (`benches/jwt.rs`) and the instruction counter (`examples/jwt_cost.rs`),
//! so both measure the same token, keys and rules.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{self, ParsedPublicKey};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use portcullis_engine::credential::apikey::MemoryIndex;
use portcullis_engine::credential::jwt::testing::sign;
use portcullis_engine::credential::KeyStore;
use portcullis_engine::policy::{
    CredentialKind, JwtAlgorithm, JwtDef, JwtKeySource, Source, Span, Spanned,
};
use portcullis_engine::{Engine, Request};

use crate::{path_for, policy_with_routes};

/// Every algorithm, with the stem of its key files (`""`: an HMAC secret
/// of the hash length, from the environment).
pub const ALGORITHMS: [(&str, JwtAlgorithm, &str); 12] = [
    ("HS256", JwtAlgorithm::HS256, ""),
    ("HS384", JwtAlgorithm::HS384, ""),
    ("HS512", JwtAlgorithm::HS512, ""),
    ("RS256", JwtAlgorithm::RS256, "rsa"),
    ("RS384", JwtAlgorithm::RS384, "rsa"),
    ("RS512", JwtAlgorithm::RS512, "rsa"),
    ("PS256", JwtAlgorithm::PS256, "rsa"),
    ("PS384", JwtAlgorithm::PS384, "rsa"),
    ("PS512", JwtAlgorithm::PS512, "rsa"),
    ("ES256", JwtAlgorithm::ES256, "ec256"),
    ("ES384", JwtAlgorithm::ES384, "ec384"),
    ("EdDSA", JwtAlgorithm::EdDSA, "ed25519"),
];

/// The checked-in test keys.
pub fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/data/jwt/keys")
}

/// The bench's rules: issuer, audience, required claims, lifetime, scopes.
pub fn def(alg: JwtAlgorithm, keys: JwtKeySource, cache: usize) -> JwtDef {
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

/// The bare signature check of a key parsed once: the floor.
pub enum Bare {
    Public(ParsedPublicKey),
    Hmac(Box<aws_lc_rs::hmac::Key>),
}

impl Bare {
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            Bare::Public(k) => k.verify_sig(msg, sig).is_ok(),
            Bare::Hmac(k) => aws_lc_rs::hmac::verify(k, msg, sig).is_ok(),
        }
    }
}

/// An algorithm's key material: where the verifier loads it from, the
/// signing key (secret or private PEM), and the bare verifier.
pub struct KeyMaterial {
    pub source: JwtKeySource,
    pub signing: Vec<u8>,
    pub bare: Bare,
}

/// Key material for `alg` (`stem` as in [`ALGORITHMS`]). For HMAC it sets
/// the environment variable `PORTCULLIS_BENCH_<name>_SECRET` the verifier reads.
pub fn key_material(name: &str, alg: JwtAlgorithm, stem: &str) -> Result<KeyMaterial, String> {
    use JwtAlgorithm as A;
    if stem.is_empty() {
        let (len, h) = match alg {
            A::HS256 => (32u8, aws_lc_rs::hmac::HMAC_SHA256),
            A::HS384 => (48, aws_lc_rs::hmac::HMAC_SHA384),
            _ => (64, aws_lc_rs::hmac::HMAC_SHA512),
        };
        let secret: Vec<u8> = (0..len).collect();
        let var = format!("PORTCULLIS_BENCH_{name}_SECRET");
        // Set before a verifier loads it.
        std::env::set_var(
            &var,
            format!("base64url:{}", URL_SAFE_NO_PAD.encode(&secret)),
        );
        let bare = Bare::Hmac(Box::new(aws_lc_rs::hmac::Key::new(h, &secret)));
        return Ok(KeyMaterial {
            source: JwtKeySource::SecretEnv(var),
            signing: secret,
            bare,
        });
    }
    let read = |f: String| std::fs::read(keys_dir().join(&f)).map_err(|e| format!("{f}: {e}"));
    let pub_pem = String::from_utf8(read(format!("{stem}.pub.pem"))?)
        .map_err(|_| "public key is not text".to_string())?;
    let b64: String = pub_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(b64).map_err(|e| e.to_string())?;
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
    Ok(KeyMaterial {
        source: JwtKeySource::PemFile(keys_dir().join(format!("{stem}.pub.pem"))),
        signing: read(format!("{stem}.key.pem"))?,
        bare: Bare::Public(ParsedPublicKey::new(va, &der).map_err(|e| e.to_string())?),
    })
}

/// A token with the bench's 7 claims, valid for the next 50 minutes.
pub fn token(alg: JwtAlgorithm, signing: &[u8]) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
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
    sign(alg, signing, None, None, &claims)
}

/// The 10-route bench policy with its credential swapped for this JWT.
pub fn jwt_engine(jwt: JwtDef) -> Result<Engine, String> {
    let mut policy = policy_with_routes(10);
    if let Some(c) = policy.credentials.first_mut() {
        c.kind = CredentialKind::Jwt(jwt);
    }
    Engine::new(&policy, Arc::new(MemoryIndex::new()) as Arc<dyn KeyStore>)
        .map_err(|e| e.to_string())
}

/// The token in `Authorization: Bearer` among three headers, for `path`.
pub fn request(token: &str, path: &str) -> Request {
    let mut r = Request {
        method: "GET".into(),
        path: path.into(),
        ..Request::default()
    };
    r.headers.append("authorization", format!("Bearer {token}"));
    r.headers.append("accept", "application/json");
    r.headers.append("user-agent", "bench/1.0");
    r
}

/// [`request`] on a route of the bench policy.
pub fn route_request(token: &str) -> Request {
    request(token, &path_for(0))
}
