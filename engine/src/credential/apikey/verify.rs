//! The API-key verifier: extract, check the shape (no lookup on a bad
//! checksum), look up the digest, then enforce the record's rules.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::format::{classify, fingerprint, KeyDigest, KeyShape};
use super::record::KeyEntry;
use crate::credential::extract::{single, Found};
use crate::credential::{CredentialType, Identity, Outcome, VerifyContext};
use crate::decision::Reason;
use crate::policy::{ApiKeyDef, Source};
use crate::request::Request;

pub struct ApiKeyVerifier {
    sources: Vec<Source>,
    prefixes: Vec<String>,
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

impl ApiKeyVerifier {
    pub fn new(def: &ApiKeyDef) -> Self {
        Self {
            sources: def.sources.clone(),
            prefixes: def.prefixes.clone(),
        }
    }

    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    pub fn verify(&self, req: &Request, ctx: &VerifyContext<'_>) -> Outcome {
        // The shape of the value `single` accepted, so the checksum is computed
        // once per decision rather than again after extraction. Two accepted
        // values make `single` answer `Ambiguous`, so the last shape recorded
        // is the returned value's.
        let shape = Cell::new(KeyShape::Foreign);
        let value = match single(&req.headers, &self.sources, |v| {
            let s = classify(v, &self.prefixes);
            // A value not meant for this credential (a JWT in `authorization`
            // beside the key in `x-api-key`) must not overwrite the key's shape.
            if s != KeyShape::Foreign {
                shape.set(s);
            }
            s != KeyShape::Foreign
        }) {
            Found::Absent => return Outcome::Absent,
            Found::Ambiguous => {
                return Outcome::Invalid(
                    Reason::AmbiguousCredential,
                    "api key given twice or in two places",
                )
            }
            Found::Value(v) => v,
        };
        if shape.get() != KeyShape::WellFormed {
            return Outcome::Invalid(
                Reason::CredentialInvalid,
                "api key checksum or shape is wrong; no lookup made",
            );
        }
        let mut outcome = None;
        match ctx.keys.inspect(&KeyDigest::of(value), &mut |e| {
            let o = check(e, req, || unix(ctx.now()));
            if matches!(o, Outcome::Invalid(..)) {
                ctx.note_refused_key(Arc::clone(&e.fingerprint));
            }
            outcome = Some(o);
        }) {
            Err(_) => Outcome::Invalid(Reason::StoreUnavailable, "key store unavailable"),
            Ok(false) => {
                // Well-formed (its checksum holds), so it is one of our keys
                // and its fingerprint is what SPEC section 5 lets logs show.
                ctx.note_refused_key(Arc::from(fingerprint(value)));
                Outcome::Invalid(Reason::CredentialInvalid, "api key not found")
            }
            // A store that says "found" without showing the entry is broken: deny.
            Ok(true) => outcome.unwrap_or(Outcome::Invalid(
                Reason::StoreUnavailable,
                "internal: key store found an entry but did not show it",
            )),
        }
    }
}

/// The record's rules, in the order SPEC section 5 gives them. `now` is
/// called only for a key with a time bound.
fn check(entry: &KeyEntry, req: &Request, now: impl Fn() -> i64) -> Outcome {
    let rec = &entry.record;
    let timed = rec.revoked_at.is_some()
        || rec.expires_at.is_some()
        || rec.not_before.is_some()
        || entry.key_expires_at.is_some();
    let now = if timed { now() } else { 0 };
    if rec.revoked_at.is_some_and(|t| t <= now) {
        return Outcome::Invalid(Reason::CredentialRevoked, "api key revoked");
    }
    if rec.expires_at.is_some_and(|t| t <= now) || entry.key_expires_at.is_some_and(|t| t <= now) {
        return Outcome::Invalid(Reason::CredentialExpired, "api key expired");
    }
    if rec.not_before.is_some_and(|t| t > now) {
        return Outcome::Invalid(Reason::CredentialExpired, "api key not valid yet");
    }
    if !rec.ip_allowed(req.source_ip) {
        return Outcome::Invalid(
            Reason::IpNotAllowed,
            "client address not in the key's allowed networks",
        );
    }
    Outcome::Valid(Identity {
        kind: CredentialType::ApiKey,
        principal: Arc::clone(&rec.id),
        consumer: Some(Arc::clone(&rec.consumer)),
        scopes: Some(Arc::clone(&rec.scopes)),
        fingerprint: Some(Arc::clone(&entry.fingerprint)),
        rate_override: rec.rate_limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::apikey::{generate, KeyRecord, MemoryIndex};
    use crate::request::Headers;

    fn verifier() -> ApiKeyVerifier {
        ApiKeyVerifier::new(&ApiKeyDef {
            sources: vec![Source::Header("x-api-key".into()), Source::Bearer],
            prefixes: vec!["pk_live_".into()],
        })
    }

    fn request(pairs: &[(&str, &str)]) -> Request {
        let mut headers = Headers::new();
        for (k, v) in pairs {
            headers.append(k, *v);
        }
        Request {
            method: "GET".into(),
            path: "/".into(),
            headers,
            ..Request::default()
        }
    }

    #[test]
    fn a_foreign_bearer_after_the_key_does_not_hide_its_shape() {
        let key = generate("pk_live_").unwrap();
        let index = MemoryIndex::new();
        let (d, e) = KeyEntry::for_key(&key, KeyRecord::new("k1", "acme", &["read"]));
        index.insert(d, e);
        let ctx = VerifyContext::new(None, &index);
        let v = verifier();
        for req in [
            request(&[
                ("x-api-key", &key),
                ("authorization", "Bearer eyJhbGciOi.x.y"),
            ]),
            request(&[
                ("authorization", "Bearer eyJhbGciOi.x.y"),
                ("x-api-key", &key),
            ]),
            request(&[("x-api-key", &key)]),
            request(&[("authorization", &format!("Bearer {key}"))]),
        ] {
            match v.verify(&req, &ctx) {
                Outcome::Valid(id) => assert_eq!(&*id.principal, "k1"),
                other => panic!("expected valid, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_corrupt_key_beside_a_foreign_bearer_is_invalid_without_lookup() {
        let key = generate("pk_live_").unwrap();
        let mut bad = key.clone().into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'0' { b'1' } else { b'0' };
        let bad = String::from_utf8(bad).unwrap();
        let index = MemoryIndex::new();
        let ctx = VerifyContext::new(None, &index);
        let req = request(&[("x-api-key", &bad), ("authorization", "Bearer other")]);
        assert_eq!(
            verifier().verify(&req, &ctx),
            Outcome::Invalid(
                Reason::CredentialInvalid,
                "api key checksum or shape is wrong; no lookup made"
            )
        );
        let both = request(&[
            ("x-api-key", &key),
            ("authorization", &format!("Bearer {key}")),
        ]);
        assert!(matches!(
            verifier().verify(&both, &ctx),
            Outcome::Invalid(Reason::AmbiguousCredential, _)
        ));
    }
}
