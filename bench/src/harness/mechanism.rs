//! The mechanisms a workload compares, and the policy each one is served with.

use std::fmt;

use portcullis_engine::policy::JwtAlgorithm;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::units::Dur;

/// Where API keys live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
    Redis,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Redis => "redis",
        }
    }

    /// Whether several servers can share one store over the network (the
    /// harness then runs two instances to measure fleet-wide revocation).
    pub fn shared(self) -> bool {
        !matches!(self, Backend::Sqlite)
    }
}

/// How decisions reach the keys (the store's `mode=` URL option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// The whole index in memory, kept current by change notifications.
    Replica,
    /// One store query per decision.
    Lookup,
    /// One store query per decision unless answered within `cache_ttl`.
    LookupCache,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Replica => "replica",
            Mode::Lookup => "lookup",
            Mode::LookupCache => "lookup+cache",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "replica" => Some(Mode::Replica),
            "lookup" => Some(Mode::Lookup),
            "lookup+cache" => Some(Mode::LookupCache),
            _ => None,
        }
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Mode::from_name(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{s}` is not a mode: use replica, lookup or lookup+cache"
            ))
        })
    }
}

/// A JWT signing algorithm, written by its JWS name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Alg(pub JwtAlgorithm);

impl Serialize for Alg {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for Alg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        JwtAlgorithm::from_name(&s).map(Alg).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{s}` is not a JWT algorithm: use HS256, RS256, PS256, ES256, ES384, EdDSA, ..."
            ))
        })
    }
}

/// One mechanism under test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mechanism {
    /// API keys looked up in a store.
    ApiKey {
        backend: Backend,
        mode: Mode,
        /// Only with [`Mode::LookupCache`].
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cache_ttl: Option<Dur>,
    },
    /// Stateless JWTs verified against a local key.
    Jwt {
        alg: Alg,
        /// The verified-token cache (`cache_size` in the policy).
        cache: bool,
    },
}

impl Mechanism {
    /// A short identifier for file names and JSON: `apikey-sqlite-replica`, `jwt-es256-cache`.
    pub fn id(&self) -> String {
        match self {
            Mechanism::ApiKey {
                backend,
                mode,
                cache_ttl,
            } => match (mode, cache_ttl) {
                (Mode::LookupCache, Some(t)) => format!(
                    "apikey-{}-lookup-cache-{}",
                    backend.name(),
                    t.to_string().replace(' ', "")
                ),
                _ => format!(
                    "apikey-{}-{}",
                    backend.name(),
                    mode.name().replace('+', "-")
                ),
            },
            Mechanism::Jwt { alg, cache } => format!(
                "jwt-{}-{}",
                alg.0.name().to_ascii_lowercase(),
                if *cache { "cache" } else { "nocache" }
            ),
        }
    }

    pub fn is_jwt(&self) -> bool {
        matches!(self, Mechanism::Jwt { .. })
    }

    pub fn backend(&self) -> Option<Backend> {
        match self {
            Mechanism::ApiKey { backend, .. } => Some(*backend),
            Mechanism::Jwt { .. } => None,
        }
    }

    /// The `--store` URL options this mechanism is served with.
    pub fn store_options(&self) -> String {
        match self {
            Mechanism::ApiKey {
                mode: Mode::Replica,
                ..
            } => "mode=replica".into(),
            Mechanism::ApiKey {
                mode: Mode::Lookup, ..
            } => "mode=lookup".into(),
            Mechanism::ApiKey {
                mode: Mode::LookupCache,
                cache_ttl,
                ..
            } => format!(
                "mode=lookup&cache_ttl={}",
                cache_ttl
                    .unwrap_or(Dur::secs(5))
                    .to_string()
                    .replace(' ', "")
            ),
            Mechanism::Jwt { .. } => String::new(),
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mechanism::ApiKey {
                backend,
                mode: Mode::LookupCache,
                cache_ttl,
            } => write!(
                f,
                "API key {} lookup+cache {}",
                backend.name(),
                cache_ttl.unwrap_or(Dur::secs(5))
            ),
            Mechanism::ApiKey { backend, mode, .. } => {
                write!(f, "API key {} {}", backend.name(), mode.name())
            }
            Mechanism::Jwt { alg, cache } => write!(
                f,
                "JWT {}{}",
                alg.0.name(),
                if *cache { "" } else { " no-cache" }
            ),
        }
    }
}

/// The route every generated policy serves, and a path that matches it.
pub const ROUTE_PATH: &str = "/v1/items/{id}";
pub const SCOPE: &str = "items:read";
pub const KEY_PREFIX: &str = "pk_live_";
pub const KEY_HEADER: &str = "x-api-key";
pub const ISSUER: &str = "https://issuer.bench.example/";
pub const AUDIENCE: &str = "bench-api";
/// Environment variable carrying the HMAC secret to the server (HS algorithms).
pub const SECRET_ENV: &str = "PORTCULLIS_BENCH_HMAC_SECRET";

/// Where a JWT mechanism's verification key is, for its policy.
#[derive(Debug, Clone)]
pub enum JwtKeyRef {
    /// A PEM public key file beside the policy.
    PemFile(String),
    /// An HMAC secret in [`SECRET_ENV`].
    SecretEnv,
}

/// The policy (YAML) a mechanism is served with: one credential, one
/// scoped route, nothing else, so the measurement is the credential's cost.
pub fn policy_yaml(m: &Mechanism, key: Option<&JwtKeyRef>, leeway: Dur) -> String {
    let credential = match m {
        Mechanism::ApiKey { .. } => format!(
            "  cred:\n    type: api_key\n    in: [header:{KEY_HEADER}]\n    prefixes: [{KEY_PREFIX}]\n"
        ),
        Mechanism::Jwt { alg, cache } => {
            let keys = match key {
                Some(JwtKeyRef::PemFile(f)) => format!("{{pem_file: {f}}}"),
                Some(JwtKeyRef::SecretEnv) | None => format!("{{secret_env: {SECRET_ENV}}}"),
            };
            format!(
                "  cred:\n    type: jwt\n    in: [bearer]\n    issuer: {ISSUER}\n    audience: [{AUDIENCE}]\n    algorithms: [{}]\n    keys: {keys}\n    leeway: {}\n    require_claims: [sub, exp, iat]\n    scopes_claim: scope\n    cache_size: {}\n",
                alg.0.name(),
                leeway.to_string().replace(' ', ""),
                if *cache { 100_000 } else { 0 }
            )
        }
    };
    format!(
        "# generated by portcullis-bench for {m}\nversion: 1\nsettings:\n  unmatched: deny\ncredentials:\n{credential}routes:\n  - name: items.read\n    match: {{methods: [GET], path: \"{ROUTE_PATH}\"}}\n    require: cred\n    scopes: {{all_of: [\"{SCOPE}\"]}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_labels() {
        let m = Mechanism::ApiKey {
            backend: Backend::Redis,
            mode: Mode::LookupCache,
            cache_ttl: Some(Dur::secs(5)),
        };
        assert_eq!(m.id(), "apikey-redis-lookup-cache-5s");
        assert_eq!(m.to_string(), "API key redis lookup+cache 5s");
        assert_eq!(m.store_options(), "mode=lookup&cache_ttl=5s");
        let j = Mechanism::Jwt {
            alg: Alg(JwtAlgorithm::ES256),
            cache: false,
        };
        assert_eq!(j.id(), "jwt-es256-nocache");
        assert_eq!(j.to_string(), "JWT ES256 no-cache");
        let back: Mechanism = serde_json::from_str(&serde_json::to_string(&j).unwrap()).unwrap();
        assert_eq!(back, j);
    }

    #[test]
    fn policies_compile() {
        let dir = tempfile::tempdir().unwrap();
        let signer = crate::harness::jwtkeys::SigningKey::generate(JwtAlgorithm::ES256).unwrap();
        let pem = signer.install(dir.path(), "jwt").unwrap();
        for (m, key) in [
            (
                Mechanism::ApiKey {
                    backend: Backend::Sqlite,
                    mode: Mode::Replica,
                    cache_ttl: None,
                },
                None,
            ),
            (
                Mechanism::Jwt {
                    alg: Alg(JwtAlgorithm::ES256),
                    cache: true,
                },
                Some(&pem),
            ),
        ] {
            let text = policy_yaml(&m, key, Dur::secs(5));
            let file = dir.path().join("policy.yaml");
            let policy = portcullis_engine::policy::load_str(&file, &text)
                .unwrap_or_else(|d| panic!("{m}: {d:?}\n{text}"));
            assert_eq!(policy.routes.len(), 1);
            assert_eq!(policy.credentials.len(), 1);
        }
    }
}
