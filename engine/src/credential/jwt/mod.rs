//! JWT bearer credentials (RFC 7519 over RFC 7515 compact JWS), verified
//! the way RFC 8725 and the CVE history ask (SECURITY.md, docs/jwt.md).
//!
//! Pipeline, each step a module: [`compact`] (size, alphabet, three
//! segments, canonical base64url) → [`header`] (duplicate-free JSON read
//! by the strict [`reader`], `alg`,
//! `kid`, `typ`, forbidden members) → [`keyset`] (pick the one key bound to
//! the token's `alg`) → [`keys`] (signature, aws-lc-rs on keys parsed once)
//! → [`claims`] (types, time, issuer, audience, principal, scopes) →
//! [`denylist`] (`jti`) → [`cache`] (verified tokens, by SHA-256).
//! Keys come from [`jwks`] files, [`pem`] files, [`secret`] environment
//! variables, or [`remote`] JWKS URLs fetched by the server.

pub mod cache;
pub mod claims;
pub mod compact;
pub mod denylist;
pub mod header;
pub mod json;
pub mod jwks;
pub mod keys;
pub mod keyset;
pub mod pem;
pub mod reader;
pub mod remote;
pub mod secret;
pub mod testing;

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::credential::extract::{single, Found};
use crate::credential::{CredentialType, Identity, Outcome};
use crate::decision::Reason;
use crate::policy::{JwtAlgorithm, JwtDef, JwtKeySource, Source};
use crate::request::Request;

pub use denylist::{JtiDenylist, MemoryDenylist};
pub use keys::VerifyingKey;
pub use keyset::KeySet;
pub use remote::{registry, RemoteKeys};

/// Where a verifier's keys live.
enum Keys {
    Static(Arc<KeySet>),
    Remote(Arc<RemoteKeys>),
}

/// A compiled `type: jwt` credential (boxed: it is one variant of the
/// credential `Verifier` enum and much larger than the others).
pub struct JwtVerifier(Box<Inner>);

struct Inner {
    sources: Vec<Source>,
    algorithms: Vec<JwtAlgorithm>,
    keys: Keys,
    rules: claims::Rules,
    typ: Option<String>,
    max_token_bytes: usize,
    cache: Option<cache::TokenCache>,
    denylist: Option<Arc<dyn JtiDenylist>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.0.algorithms)
            .field("cache", &self.0.cache.is_some())
            .finish_non_exhaustive()
    }
}

/// Why the JWS layer refused a token (before claims). Details only, no token bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwsRefusal {
    pub reason: Reason,
    pub detail: &'static str,
}

fn refuse(reason: Reason, detail: &'static str) -> JwsRefusal {
    JwsRefusal { reason, detail }
}

fn bad(detail: &'static str) -> JwsRefusal {
    refuse(Reason::CredentialInvalid, detail)
}

const PAYLOAD_NOT_BASE64: &str = "jwt payload is not base64url";

// Stack buffers for the decoded segments (larger ones go to the heap, same
// rules): a header is tens of bytes, a signature at most 1,024 (RSA-8192),
// a claims set usually a few hundred.
const HEADER_BUF: usize = 512;
const SIGNATURE_BUF: usize = 1032;
const PAYLOAD_BUF: usize = 2048;

/// Seconds since the epoch, with sub-second precision.
fn secs(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(_) => 0.0,
    }
}

/// `typ` values compare case-insensitively, and `application/` is implied
/// (RFC 7515 4.1.9): `at+jwt` equals `application/at+jwt`.
fn typ_matches(want: &str, got: &str) -> bool {
    fn strip(s: &str) -> &str {
        match s.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => s.get(12..).unwrap_or(s),
            _ => s,
        }
    }
    strip(want).eq_ignore_ascii_case(strip(got))
}

impl JwtVerifier {
    /// Builds the verifier, loading and checking every key now (a weak or
    /// ambiguous key is an error here, never a surprise at request time).
    pub fn new(def: &JwtDef, base_dir: &Path) -> Result<Self, String> {
        if def.algorithms.is_empty() {
            return Err("`algorithms` must list at least one algorithm".into());
        }
        if def.require_claims.len() > 64 {
            return Err("`require_claims` may list at most 64 claims".into());
        }
        if def.principal_claim.is_empty() {
            return Err("`principal_claim` must not be empty".into());
        }
        let mut algorithms = def.algorithms.clone();
        algorithms.dedup();
        let resolve = |p: &Path| {
            if p.is_relative() {
                base_dir.join(p)
            } else {
                p.to_path_buf()
            }
        };
        let keys = match &def.keys.value {
            JwtKeySource::JwksFile(p) => {
                let path = resolve(p);
                let bytes = pem::read_limited(&path)?;
                let parsed = jwks::parse(&bytes, &algorithms, jwks::Origin::File)
                    .map_err(|e| format!("`{}`: {e}", path.display()))?;
                if parsed.keys.is_empty() {
                    return Err(format!("`{}` holds no usable signing key", path.display()));
                }
                Keys::Static(Arc::new(KeySet::new(parsed.keys)))
            }
            JwtKeySource::PemFile(p) => {
                let key = pem::load(&resolve(p), &algorithms)?;
                Keys::Static(Arc::new(KeySet::new(vec![key])))
            }
            JwtKeySource::SecretEnv(var) => {
                let key = secret::load(var, &algorithms)?;
                Keys::Static(Arc::new(KeySet::new(vec![key])))
            }
            JwtKeySource::JwksUrl {
                url,
                refresh,
                refetch_min_interval,
            } => {
                if !url.starts_with("https://") {
                    return Err(format!("`jwks_url` must be an https url, not `{url}`"));
                }
                if algorithms
                    .iter()
                    .any(|a| keys::family(*a) == keys::Family::Hmac)
                {
                    return Err(
                        "a `jwks_url` never provides hmac keys; remove the hs algorithms".into(),
                    );
                }
                Keys::Remote(registry().entry(url, &algorithms, *refresh, *refetch_min_interval))
            }
        };
        let rules = claims::Rules::new(
            def.issuer.clone(),
            def.audience.clone(),
            def.leeway.as_secs_f64(),
            def.max_lifetime.map(|d| d.as_secs_f64()),
            def.require_claims.clone(),
            def.principal_claim.clone(),
            def.scopes_claim.clone(),
        );
        Ok(Self(Box::new(Inner {
            sources: def.sources.clone(),
            algorithms,
            keys,
            rules,
            typ: def.typ.clone(),
            max_token_bytes: def.max_token_bytes,
            cache: cache::TokenCache::new(def.cache_size),
            denylist: None,
        })))
    }

    /// Uses this denylist instead of the process-wide one.
    pub fn set_denylist(&mut self, list: Arc<dyn JtiDenylist>) {
        self.0.denylist = Some(list);
    }

    pub fn sources(&self) -> &[Source] {
        &self.0.sources
    }

    /// Entries in the verified-token cache.
    pub fn cached(&self) -> usize {
        self.0.cache.as_ref().map_or(0, cache::TokenCache::len)
    }

    /// Decides on the request's token.
    pub fn verify(&self, req: &Request, now: SystemTime) -> Outcome {
        self.0.verify(req, now)
    }

    /// Decides on one compact token (the part after `Bearer `).
    pub fn verify_token(&self, token: &str, now: SystemTime) -> Outcome {
        self.0.verify_token(token, now)
    }

    /// The JWS layer alone: form, header, key choice and signature. Returns
    /// the verified payload bytes (not yet read as claims). Used by
    /// [`Self::verify_token`], and public so test vectors whose payloads
    /// are not JWT claims can be run through the same code path.
    pub fn verify_jws(&self, token: &str) -> Result<Vec<u8>, JwsRefusal> {
        self.0.with_verified(token, |payload, _| payload.to_vec())
    }
}

impl Inner {
    fn revoked(&self, jti: &str) -> bool {
        match &self.denylist {
            Some(l) => l.is_denied(jti),
            None => denylist::globally_denied(jti),
        }
    }

    fn verify(&self, req: &Request, now: SystemTime) -> Outcome {
        // A value without a dot is not a JWT: it is absent for this
        // credential (another credential, an API key say, may claim it).
        let token = match single(&req.headers, &self.sources, |v| {
            memchr::memchr(b'.', v.as_bytes()).is_some()
        }) {
            Found::Absent => return Outcome::Absent,
            Found::Ambiguous => {
                return Outcome::Invalid(
                    Reason::AmbiguousCredential,
                    "jwt given twice or in two places",
                )
            }
            Found::Value(v) => v,
        };
        self.verify_token(token, now)
    }

    fn verify_token(&self, token: &str, now: SystemTime) -> Outcome {
        if token.len() > self.max_token_bytes {
            return Outcome::Invalid(Reason::CredentialInvalid, "jwt longer than the size limit");
        }
        let now_s = secs(now);
        let key = self.cache.as_ref().and_then(|_| cache::key_of(token));
        if let (Some(c), Some(k)) = (&self.cache, &key) {
            if let Some(hit) = c.get(k) {
                if let Some(out) = self.check_hit(c, &k.digest, hit, now_s) {
                    return out;
                }
            }
        }
        // The claims are read and acted on while the decoded payload is
        // borrowed: `jti` is copied out only into a cache entry.
        let decided = self.with_verified(token, |p, generation| {
            let claims = match claims::check(p, &self.rules, now_s) {
                Ok(c) => c,
                Err(claims::ClaimsError::Expired) => {
                    return Outcome::Invalid(Reason::CredentialExpired, "jwt expired")
                }
                Err(claims::ClaimsError::NotYetValid) => {
                    return Outcome::Invalid(Reason::CredentialExpired, "jwt not valid yet (nbf)")
                }
                Err(claims::ClaimsError::Invalid(d)) => {
                    return Outcome::Invalid(Reason::CredentialInvalid, d)
                }
            };
            if let Some(jti) = &claims.jti {
                if self.revoked(jti.as_str()) {
                    return Outcome::Invalid(Reason::CredentialRevoked, "jwt id (jti) revoked");
                }
            }
            let identity = Identity {
                kind: CredentialType::Jwt,
                principal: claims.principal,
                consumer: None,
                scopes: claims.scopes,
                fingerprint: None,
                rate_override: None,
            };
            if let (Some(c), Some(k), Some(exp)) = (&self.cache, key, claims.exp) {
                c.insert(
                    &k,
                    cache::Entry {
                        identity: identity.clone(),
                        exp: exp + self.rules.leeway,
                        nbf: claims.nbf,
                        jti: claims.jti.map(|j| Arc::from(j.as_str())),
                        generation,
                    },
                    now_s,
                );
            }
            Outcome::Valid(identity)
        });
        decided.unwrap_or_else(|r| Outcome::Invalid(r.reason, r.detail))
    }

    /// A cache hit's verdict, or `None` to verify afresh.
    fn check_hit(
        &self,
        c: &cache::TokenCache,
        d: &cache::Digest,
        hit: cache::Entry,
        now: f64,
    ) -> Option<Outcome> {
        // A rotated key set may have dropped the key that verified it.
        let current = match &self.keys {
            Keys::Static(k) => Some(k.generation()),
            Keys::Remote(r) => r.keys().map(|k| k.generation()),
        };
        if current != Some(hit.generation) {
            c.remove(d);
            return None;
        }
        if now >= hit.exp {
            c.remove(d);
            return Some(Outcome::Invalid(Reason::CredentialExpired, "jwt expired"));
        }
        if hit.nbf.is_some_and(|nbf| now + self.rules.leeway < nbf) {
            return Some(Outcome::Invalid(
                Reason::CredentialExpired,
                "jwt not valid yet (nbf)",
            ));
        }
        if let Some(jti) = &hit.jti {
            if self.revoked(jti) {
                return Some(Outcome::Invalid(
                    Reason::CredentialRevoked,
                    "jwt id (jti) revoked",
                ));
            }
        }
        Some(Outcome::Valid(hit.identity))
    }

    /// Form, header, key choice and signature, then `f` on the verified
    /// payload's bytes and the generation of the key set that verified it.
    ///
    /// All three segments are decoded before any is acted on, so that the
    /// decoders check the alphabet (they refuse every byte outside it) and a
    /// valid token is not scanned for bad characters a second time. A
    /// decoding failure is reported where its check comes in the order
    /// below, unless the token has a bad character, which refuses it first,
    /// as [`compact::split`] does.
    fn with_verified<R>(
        &self,
        token: &str,
        f: impl FnOnce(&[u8], u64) -> R,
    ) -> Result<R, JwsRefusal> {
        let form = |e| {
            bad(match e {
                compact::CompactError::TooLarge => "jwt longer than the size limit",
                compact::CompactError::BadCharacter => "jwt has a character outside base64url",
                compact::CompactError::Segments => "jwt does not have three segments",
                compact::CompactError::EmptySegment => "jwt has an empty header or signature",
                compact::CompactError::Base64 => "jwt segment is not canonical base64url",
            })
        };
        if token.len() > self.max_token_bytes {
            return Err(form(compact::CompactError::TooLarge));
        }
        // On a malformed form, the full split's error (a bad character
        // comes before the segments).
        let parts = compact::split_dots(token).map_err(|e| {
            form(
                compact::split(token, self.max_token_bytes)
                    .err()
                    .unwrap_or(e),
            )
        })?;
        compact::decoded::<HEADER_BUF, _>(parts.header, |header| {
            compact::decoded::<SIGNATURE_BUF, _>(parts.signature, |signature| {
                compact::decoded::<PAYLOAD_BUF, _>(parts.payload, |payload| {
                    if (header.is_err() || signature.is_err() || payload.is_err())
                        && compact::has_bad_character(token)
                    {
                        return Err(form(compact::CompactError::BadCharacter));
                    }
                    let header = header.map_err(|_| bad("jwt header is not base64url"))?;
                    let generation = self.verify_signed(&parts, header, signature)?;
                    let payload = payload.map_err(|_| bad(PAYLOAD_NOT_BASE64))?;
                    Ok(f(payload, generation))
                })
            })
        })
    }

    /// The JWS checks once the header is decoded.
    fn verify_signed(
        &self,
        parts: &compact::Compact<'_>,
        header_bytes: &[u8],
        signature: Result<&[u8], compact::CompactError>,
    ) -> Result<u64, JwsRefusal> {
        let h = header::parse(header_bytes).map_err(|e| {
            bad(match e {
                header::HeaderError::Duplicate => "jwt header has a duplicate member",
                header::HeaderError::NoAlg => "jwt header has no alg",
                _ => "jwt header is not a valid json object",
            })
        })?;
        let alg_name = h.alg.as_ref().map(json::Str::as_str).unwrap_or_default();
        if alg_name.eq_ignore_ascii_case("none") {
            return Err(bad("jwt alg none is never accepted"));
        }
        if let Some(member) = h.forbidden {
            return Err(bad(match member {
                "crit" => "jwt header has crit; no extension is supported",
                "jku" | "x5u" => "jwt header points at remote keys (jku/x5u); refused",
                "jwk" | "x5c" => "jwt header embeds a key (jwk/x5c); refused",
                "cty" => "nested jwt (cty: JWT) refused",
                _ => "jwt header has an unsupported member (b64/zip/enc)",
            }));
        }
        let alg = JwtAlgorithm::from_name(alg_name).ok_or(bad("jwt alg is not supported"))?;
        if !self.algorithms.contains(&alg) {
            return Err(bad("jwt alg is not among the configured algorithms"));
        }
        if let Some(want) = &self.typ {
            match &h.typ {
                Some(got) if typ_matches(want, got.as_str()) => {}
                _ => return Err(bad("jwt typ does not match")),
            }
        }
        let kid = h.kid.as_ref().map(json::Str::as_str);
        let remote_set;
        let set: &KeySet = match &self.keys {
            Keys::Static(k) => k,
            Keys::Remote(r) => {
                remote_set = r
                    .keys()
                    .ok_or(refuse(Reason::StoreUnavailable, "jwks not fetched yet"))?;
                &remote_set
            }
        };
        let key = match set.select(alg, kid) {
            keyset::Selected::Key(k) => k,
            keyset::Selected::KidTooLong => return Err(bad("jwt kid too long")),
            keyset::Selected::UnknownKid => {
                if let Keys::Remote(r) = &self.keys {
                    r.record_miss();
                }
                return Err(bad("jwt kid names no configured key"));
            }
            keyset::Selected::KidForOtherAlg => {
                return Err(bad("jwt kid names a key bound to another algorithm"))
            }
            keyset::Selected::NoKeyForAlg => return Err(bad("no key for the jwt alg")),
            keyset::Selected::NeedKid => {
                return Err(bad("jwt has no kid and several keys could verify it"))
            }
        };
        let sig = signature.map_err(|_| bad("jwt signature is not base64url"))?;
        if !key.verify(parts.signing_input.as_bytes(), sig) {
            return Err(bad("jwt signature does not verify"));
        }
        Ok(set.generation())
    }
}

#[cfg(test)]
mod tests {
    use super::typ_matches;

    #[test]
    fn typ_comparison() {
        assert!(typ_matches("at+jwt", "application/at+jwt"));
        assert!(typ_matches("application/AT+JWT", "at+jwt"));
        assert!(typ_matches("JWT", "jwt"));
        assert!(!typ_matches("at+jwt", "jwt"));
        assert!(!typ_matches("at+jwt", "application/jwt"));
        assert!(!typ_matches("jwt", "xapplication/jwt"));
    }
}
