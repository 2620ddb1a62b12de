//! Credential verifiers: each turns a request into an [`Outcome`] for one
//! named credential of the policy.

pub mod apikey;
pub mod basic;
pub mod extract;
pub mod jwt;
pub mod mtls;

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use crate::decision::Reason;
use crate::policy::{CredentialKind, Source};
use crate::request::Request;

pub use apikey::{KeyStore, RateOverride};

/// Which kind of credential produced an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialType {
    ApiKey,
    Jwt,
    Mtls,
    Basic,
}

/// Who a valid credential says the caller is. Holds ids and fingerprints, never secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub kind: CredentialType,
    /// Key id, JWT principal claim, SPIFFE ID or subject, Basic user.
    pub principal: Arc<str>,
    pub consumer: Option<Arc<str>>,
    /// `None`: this credential carries no scopes (and so does not restrict them).
    pub scopes: Option<Arc<[String]>>,
    /// API-key fingerprint, for logs.
    pub fingerprint: Option<Arc<str>>,
    pub rate_override: Option<RateOverride>,
}

/// The result of verifying one credential against one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not presented (or presented in a shape meant for another credential).
    Absent,
    Valid(Identity),
    /// Presented and refused; the detail is for explain traces and holds no secret.
    Invalid(Reason, &'static str),
}

/// What a verifier may consult besides the request.
pub struct VerifyContext<'a> {
    /// Read on first use: an API key without time bounds needs no clock, and
    /// reading it costs ~50 ns on a VM (a third of the decision's floor).
    now: Cell<Option<SystemTime>>,
    pub keys: &'a dyn KeyStore,
    /// The fingerprint of a well-formed API key that was refused (unknown,
    /// revoked, expired, wrong network), so the decision log can name it.
    refused_key: Cell<Option<Arc<str>>>,
}

impl<'a> VerifyContext<'a> {
    /// A context evaluating as of `now`, or of the current time when `None`.
    pub fn new(now: Option<SystemTime>, keys: &'a dyn KeyStore) -> Self {
        Self {
            now: Cell::new(now),
            keys,
            refused_key: Cell::new(None),
        }
    }

    /// Records the fingerprint of a refused API key (never the key).
    pub fn note_refused_key(&self, fingerprint: Arc<str>) {
        self.refused_key.set(Some(fingerprint));
    }

    /// The fingerprint of the last refused API key, if any.
    pub fn take_refused_key(&self) -> Option<Arc<str>> {
        self.refused_key.take()
    }

    /// The decision's time: one reading shared by every credential it verifies.
    pub fn now(&self) -> SystemTime {
        match self.now.get() {
            Some(t) => t,
            None => {
                let t = SystemTime::now();
                self.now.set(Some(t));
                t
            }
        }
    }
}

/// A compiled credential, ready to verify requests.
pub enum Verifier {
    ApiKey(apikey::ApiKeyVerifier),
    Jwt(jwt::JwtVerifier),
    Mtls(mtls::MtlsVerifier),
    Basic(basic::BasicVerifier),
}

impl Verifier {
    /// Builds the verifier for a credential definition; `base_dir` anchors relative paths.
    /// The error is a lowercase message for the definition's location.
    pub fn build(kind: &CredentialKind, base_dir: &Path) -> Result<Self, String> {
        Ok(match kind {
            CredentialKind::ApiKey(def) => Verifier::ApiKey(apikey::ApiKeyVerifier::new(def)),
            CredentialKind::Jwt(def) => Verifier::Jwt(jwt::JwtVerifier::new(def, base_dir)?),
            CredentialKind::Mtls(def) => Verifier::Mtls(mtls::MtlsVerifier::new(def, base_dir)?),
            CredentialKind::Basic(def) => {
                Verifier::Basic(basic::BasicVerifier::new(def, base_dir)?)
            }
        })
    }

    pub fn verify(&self, req: &Request, ctx: &VerifyContext<'_>) -> Outcome {
        match self {
            Verifier::ApiKey(v) => v.verify(req, ctx),
            Verifier::Jwt(v) => v.verify(req, ctx.now()),
            Verifier::Mtls(v) => v.verify(req, ctx.now()),
            Verifier::Basic(v) => v.verify(req, ctx.now()),
        }
    }

    /// The `www-authenticate` challenge this credential contributes to a 401, if any.
    pub fn challenge(&self) -> Option<Challenge> {
        match self {
            Verifier::ApiKey(v) => Some(if v.sources().contains(&Source::Bearer) {
                Challenge::Bearer
            } else {
                Challenge::ApiKey
            }),
            Verifier::Jwt(_) => Some(Challenge::Bearer),
            Verifier::Mtls(_) => None,
            Verifier::Basic(v) => Some(Challenge::Basic(v.realm().to_string())),
        }
    }
}

/// An authentication scheme to name in `www-authenticate`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Challenge {
    Bearer,
    ApiKey,
    Basic(String),
}
