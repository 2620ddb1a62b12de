//! The validated policy: what `validate` produces and `compile` consumes.
//!
//! Every value a user wrote keeps the [`Span`] it came from, so later stages
//! (compile, lint) can still point at the line that caused a problem.

use std::path::PathBuf;
use std::time::Duration;

/// Where a value came from: file index into [`Policy::files`], 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub file: usize,
    pub line: usize,
    pub col: usize,
}

/// A value with the place it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

/// A whole validated policy (one file, or every policy file of a directory merged).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Source files in load order; [`Span::file`] indexes this.
    pub files: Vec<PathBuf>,
    pub settings: Settings,
    /// Credentials in the order they were written.
    pub credentials: Vec<CredentialDef>,
    pub rate_limits: Vec<RateLimitDef>,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmatched {
    Deny,
    Allow,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders {
    pub principal: String,
    pub consumer: String,
    pub scopes: String,
    pub credential: String,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            principal: "x-auth-principal".into(),
            consumer: "x-auth-consumer".into(),
            scopes: "x-auth-scopes".into(),
            credential: "x-auth-credential".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub unmatched: Unmatched,
    pub identity_headers: IdentityHeaders,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            unmatched: Unmatched::Deny,
            identity_headers: IdentityHeaders::default(),
        }
    }
}

/// Where a credential is read from. Query strings are never a source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A named request header (name stored lowercase).
    Header(String),
    /// `Authorization: Bearer <value>`, scheme matched case-insensitively.
    Bearer,
}

#[derive(Debug, Clone)]
pub struct CredentialDef {
    pub name: Spanned<String>,
    pub kind: CredentialKind,
}

#[derive(Debug, Clone)]
pub enum CredentialKind {
    ApiKey(ApiKeyDef),
    Jwt(JwtDef),
    Mtls(MtlsDef),
    Basic(BasicDef),
}

impl CredentialKind {
    /// Request header names this credential reads (for gateways to strip upstream).
    pub fn headers(&self) -> Vec<String> {
        let from_sources = |s: &[Source]| {
            s.iter()
                .map(|s| match s {
                    Source::Header(h) => h.clone(),
                    Source::Bearer => "authorization".to_string(),
                })
                .collect()
        };
        match self {
            CredentialKind::ApiKey(d) => from_sources(&d.sources),
            CredentialKind::Jwt(d) => from_sources(&d.sources),
            CredentialKind::Mtls(d) => match &d.source {
                MtlsSource::Xfcc => vec!["x-forwarded-client-cert".to_string()],
                MtlsSource::PemHeader {
                    header,
                    verify_header,
                } => {
                    let mut v = vec![header.clone()];
                    v.extend(verify_header.iter().cloned());
                    v
                }
            },
            CredentialKind::Basic(_) => vec!["authorization".to_string()],
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            CredentialKind::ApiKey(_) => "api_key",
            CredentialKind::Jwt(_) => "jwt",
            CredentialKind::Mtls(_) => "mtls",
            CredentialKind::Basic(_) => "basic",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiKeyDef {
    pub sources: Vec<Source>,
    /// Accepted key prefixes; a value without one of these is "absent" for this credential.
    pub prefixes: Vec<String>,
}

/// JWS algorithms Portcullis verifies. `none` and ES512 are refused at validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl JwtAlgorithm {
    pub const ALL: [JwtAlgorithm; 12] = [
        Self::HS256,
        Self::HS384,
        Self::HS512,
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
    ];

    /// The exact, case-sensitive JWS `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == s)
    }

    /// Minimum HMAC secret length in bytes (the hash output), if this is an HS algorithm.
    pub fn hmac_min_len(self) -> Option<usize> {
        match self {
            Self::HS256 => Some(32),
            Self::HS384 => Some(48),
            Self::HS512 => Some(64),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKeySource {
    JwksFile(PathBuf),
    JwksUrl {
        url: String,
        refresh: Duration,
        refetch_min_interval: Duration,
    },
    /// HMAC secret read from this environment variable at load.
    SecretEnv(String),
    PemFile(PathBuf),
}

#[derive(Debug, Clone)]
pub struct JwtDef {
    pub sources: Vec<Source>,
    pub issuer: Option<String>,
    pub audience: Vec<String>,
    pub algorithms: Vec<JwtAlgorithm>,
    pub keys: Spanned<JwtKeySource>,
    pub leeway: Duration,
    pub max_lifetime: Option<Duration>,
    pub require_claims: Vec<String>,
    pub scopes_claim: Option<String>,
    pub principal_claim: String,
    /// Expected `typ` header, compared case-insensitively (`at+jwt` = `application/at+jwt`).
    pub typ: Option<String>,
    /// Largest compact token accepted, checked before any decoding.
    pub max_token_bytes: usize,
    /// Verified-token cache size (0 disables the cache).
    pub cache_size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MtlsSource {
    /// `x-forwarded-client-cert` (Envoy); only the last element (the trusted proxy's) is used.
    Xfcc,
    /// A URL-escaped PEM certificate in this header (nginx, Traefik, Caddy).
    PemHeader {
        header: String,
        /// Header that must say `SUCCESS`, if set (nginx `$ssl_client_verify`).
        verify_header: Option<String>,
    },
}

#[derive(Debug, Clone, Default)]
pub struct MtlsAllow {
    pub spiffe_ids: Vec<String>,
    pub subjects: Vec<String>,
    pub fingerprints_sha256: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct MtlsDef {
    pub source: MtlsSource,
    pub ca_file: Option<Spanned<PathBuf>>,
    pub allow: MtlsAllow,
    pub grants: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct BasicDef {
    pub htpasswd_file: Spanned<PathBuf>,
    pub grants: Vec<String>,
    pub realm: String,
    /// How long a successful verification is remembered.
    pub cache_ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKey {
    Consumer,
    Credential,
    Principal,
    SourceIp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitDef {
    pub name: Spanned<String>,
    pub limit: u64,
    pub per: Duration,
    pub burst: u64,
    pub key: RateKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Public,
    /// A credential, by its index in [`Policy::credentials`].
    Credential(usize),
    AnyOf(Vec<Requirement>),
    AllOf(Vec<Requirement>),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ScopeRequirement {
    #[default]
    None,
    AllOf(Vec<String>),
    AnyOf(Vec<String>),
}

/// One segment of a route path pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PatternSegment {
    Static(String),
    /// `{name}`: exactly one non-empty segment.
    Param(String),
    /// Trailing `/**`: zero or more further segments.
    Rest,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathPattern {
    pub raw: String,
    pub segments: Vec<PatternSegment>,
}

#[derive(Debug, Clone)]
pub struct RouteMatch {
    /// Lowercase host without port; `None` matches any host.
    pub host: Option<String>,
    /// Uppercase methods; empty matches any method.
    pub methods: Vec<String>,
    pub path: PathPattern,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: Spanned<String>,
    pub matcher: RouteMatch,
    pub require: Requirement,
    pub scopes: ScopeRequirement,
    /// Index into [`Policy::rate_limits`].
    pub rate_limit: Option<usize>,
    pub span: Span,
}
