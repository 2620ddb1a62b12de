//! The API-key verifier: extract, check the shape (no lookup on a bad
//! checksum), look up the digest, then enforce the record's rules.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::format::{classify, KeyDigest, KeyShape};
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
        let value = match single(&req.headers, &self.sources, |v| {
            classify(v, &self.prefixes) != KeyShape::Foreign
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
        if classify(value, &self.prefixes) != KeyShape::WellFormed {
            return Outcome::Invalid(
                Reason::CredentialInvalid,
                "api key checksum or shape is wrong; no lookup made",
            );
        }
        let entry = match ctx.keys.lookup(&KeyDigest::of(value)) {
            Err(_) => return Outcome::Invalid(Reason::StoreUnavailable, "key store unavailable"),
            Ok(None) => return Outcome::Invalid(Reason::CredentialInvalid, "api key not found"),
            Ok(Some(e)) => e,
        };
        let now = unix(ctx.now);
        let rec = &entry.record;
        if rec.revoked_at.is_some_and(|t| t <= now) {
            return Outcome::Invalid(Reason::CredentialRevoked, "api key revoked");
        }
        if rec.expires_at.is_some_and(|t| t <= now)
            || entry.key_expires_at.is_some_and(|t| t <= now)
        {
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
}
