//! What Portcullis answers: SPEC section 3.

use std::sync::Arc;

use serde::Serialize;

/// A stable reason code. Each maps to exactly one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// The request may pass.
    Allowed,
    /// The path has dot segments, empty segments or encoded separators.
    BadPath,
    /// No credential the route accepts was presented.
    CredentialMissing,
    /// A credential was presented but is malformed, unknown or has a bad signature.
    CredentialInvalid,
    /// The credential is past its expiry (or not yet valid).
    CredentialExpired,
    /// The credential was revoked.
    CredentialRevoked,
    /// A credential header was given twice, or one credential was found in two places.
    AmbiguousCredential,
    /// The credential lacks a scope the route requires.
    InsufficientScope,
    /// The key may not be used from the client's address.
    IpNotAllowed,
    /// No route matches and unmatched requests are denied.
    NoRoute,
    /// The client certificate is valid but not on the allowlist.
    CertificateNotAllowed,
    /// A rate limit is exhausted.
    RateLimited,
    /// A store needed for the decision could not be reached, or the engine failed internally.
    StoreUnavailable,
}

impl Reason {
    pub fn status(self) -> u16 {
        match self {
            Reason::Allowed => 200,
            Reason::BadPath => 400,
            Reason::CredentialMissing
            | Reason::CredentialInvalid
            | Reason::CredentialExpired
            | Reason::CredentialRevoked
            | Reason::AmbiguousCredential => 401,
            Reason::InsufficientScope
            | Reason::IpNotAllowed
            | Reason::NoRoute
            | Reason::CertificateNotAllowed => 403,
            Reason::RateLimited => 429,
            Reason::StoreUnavailable => 503,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::BadPath => "bad_path",
            Reason::CredentialMissing => "credential_missing",
            Reason::CredentialInvalid => "credential_invalid",
            Reason::CredentialExpired => "credential_expired",
            Reason::CredentialRevoked => "credential_revoked",
            Reason::AmbiguousCredential => "ambiguous_credential",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::IpNotAllowed => "ip_not_allowed",
            Reason::NoRoute => "no_route",
            Reason::CertificateNotAllowed => "certificate_not_allowed",
            Reason::RateLimited => "rate_limited",
            Reason::StoreUnavailable => "store_unavailable",
        }
    }

    pub fn from_code(s: &str) -> Option<Self> {
        const ALL: [Reason; 13] = [
            Reason::Allowed,
            Reason::BadPath,
            Reason::CredentialMissing,
            Reason::CredentialInvalid,
            Reason::CredentialExpired,
            Reason::CredentialRevoked,
            Reason::AmbiguousCredential,
            Reason::InsufficientScope,
            Reason::IpNotAllowed,
            Reason::NoRoute,
            Reason::CertificateNotAllowed,
            Reason::RateLimited,
            Reason::StoreUnavailable,
        ];
        ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Who was let through (or refused): never a secret, only ids and fingerprints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub id: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<Arc<str>>,
    pub scopes: Arc<[String]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimitStatus {
    pub limit: u64,
    pub remaining: u64,
    pub reset_after_ms: u64,
}

/// Identity header names (policy `settings.identity_headers`), shared into allow decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityNames {
    pub principal: Arc<str>,
    pub consumer: Arc<str>,
    pub scopes: Arc<str>,
    pub credential: Arc<str>,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allow: bool,
    pub status: u16,
    pub reason: Reason,
    pub route: Option<Arc<str>>,
    /// The credential(s) that satisfied (or failed) the requirement, `+`-joined for `all_of`.
    pub credential: Option<Arc<str>>,
    pub principal: Option<Principal>,
    /// Protocol headers: `www-authenticate` on 401/403, `retry-after` on 429.
    /// Identity headers are rendered from `principal` by [`Decision::response_headers`],
    /// so deciding does not pay for strings only a gateway answer needs.
    pub headers: Vec<(Arc<str>, Arc<str>)>,
    /// Set on allow: the names under which to send the identity.
    pub identity_names: Option<Arc<IdentityNames>>,
    pub ratelimit: Option<RateLimitStatus>,
    /// The fingerprint (first 8, last 4 characters) of the API key that
    /// satisfied or failed the requirement, for decision logs. Never the key,
    /// and not part of the SPEC JSON.
    pub fingerprint: Option<Arc<str>>,
    pub trace: Option<Vec<String>>,
}

impl Decision {
    /// A deny with nothing else known.
    pub fn deny(reason: Reason) -> Self {
        Decision {
            allow: false,
            status: reason.status(),
            reason,
            route: None,
            credential: None,
            principal: None,
            headers: Vec::new(),
            identity_names: None,
            ratelimit: None,
            fingerprint: None,
            trace: None,
        }
    }

    /// Turns a `deny(Reason::Allowed)` into an allow.
    pub fn with_allow(mut self) -> Self {
        self.allow = self.reason == Reason::Allowed;
        self
    }

    /// The decision as SPEC section 3 JSON (headers as an object).
    pub fn to_json(&self) -> serde_json::Value {
        let mut headers = serde_json::Map::new();
        for (k, v) in &self.response_headers() {
            headers.insert(k.to_string(), serde_json::Value::String(v.to_string()));
        }
        let mut out = serde_json::json!({
            "allow": self.allow,
            "status": self.status,
            "reason": self.reason.as_str(),
            "route": self.route.as_deref(),
            "credential": self.credential.as_deref(),
            "principal": self.principal,
            "headers": headers,
            "ratelimit": self.ratelimit,
        });
        if let (Some(trace), Some(obj)) = (&self.trace, out.as_object_mut()) {
            obj.insert("trace".into(), serde_json::json!(trace));
        }
        out
    }

    /// Every header to send with the answer: the protocol headers, and on
    /// allow the identity headers (principal, consumer, scopes, credential).
    pub fn response_headers(&self) -> Vec<(Arc<str>, Arc<str>)> {
        let mut out = self.headers.clone();
        if let (Some(names), true) = (&self.identity_names, self.allow) {
            if let Some(p) = &self.principal {
                out.push((Arc::clone(&names.principal), Arc::clone(&p.id)));
                if let Some(c) = &p.consumer {
                    out.push((Arc::clone(&names.consumer), Arc::clone(c)));
                }
                out.push((Arc::clone(&names.scopes), Arc::from(p.scopes.join(" "))));
            }
            if let Some(c) = &self.credential {
                out.push((Arc::clone(&names.credential), Arc::clone(c)));
            }
        }
        out
    }

    /// One response header by name (case-insensitive), identity headers included.
    pub fn header(&self, name: &str) -> Option<Arc<str>> {
        self.response_headers()
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}
