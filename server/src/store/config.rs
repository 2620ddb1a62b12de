//! `--store URL` parsing: the backend, the serving mode and its options.
//!
//! Our options travel in the URL's query string (`?mode=lookup&cache_ttl=5s`)
//! so one flag names a whole store; they are removed before the rest of the
//! URL reaches the backend's own client. Passwords never appear in errors or
//! `Debug` output ([`redact`]).

use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::percent_decode_str;

/// Which database holds the keys.
#[derive(Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// Embedded SQLite file (WAL mode), created on first use.
    Sqlite { path: PathBuf },
    /// Shared PostgreSQL; `url` is what tokio-postgres parses (our options removed).
    Postgres { url: String, schema: Option<String> },
    /// Shared Redis; every key name starts with `prefix`.
    Redis { url: String, prefix: String },
}

/// How decisions reach the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The whole index in memory, kept current by change notifications.
    Replica,
    /// One store query per decision (optionally cached, see `cache_ttl`).
    Lookup,
}

/// A parsed `--store` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub backend: BackendConfig,
    pub mode: Mode,
    /// Lookup mode: keep positive and negative answers this long (`None`: no cache).
    pub cache_ttl: Option<Duration>,
    /// Lookup mode: most digests cached.
    pub cache_size: usize,
    /// Replica mode: full reload interval, healing anything a notification missed.
    pub resync: Duration,
    /// Replica mode: serve the last index at most this long after losing the store.
    pub max_staleness: Duration,
    /// How often the change feed proves its connection alive.
    pub heartbeat: Duration,
    /// SQLite: how often the change counter is polled.
    pub poll: Duration,
    /// Bound on every store operation.
    pub timeout: Duration,
    /// Connections per pool.
    pub pool_size: usize,
}

impl std::fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendConfig::Sqlite { path } => write!(f, "Sqlite({})", path.display()),
            BackendConfig::Postgres { url, schema } => {
                write!(f, "Postgres({}, schema={schema:?})", redact(url))
            }
            BackendConfig::Redis { url, prefix } => {
                write!(f, "Redis({}, prefix={prefix:?})", redact(url))
            }
        }
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("backend", &self.backend)
            .field("mode", &self.mode)
            .field("cache_ttl", &self.cache_ttl)
            .field("resync", &self.resync)
            .field("max_staleness", &self.max_staleness)
            .finish_non_exhaustive()
    }
}

/// Why a store URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL has no `scheme://`, or a scheme we do not serve.
    #[error("unsupported key store `{0}`: use sqlite://PATH, postgres://... or redis://...")]
    Scheme(String),
    /// An option we know has a value we cannot use.
    #[error("store option `{name}`: {message}")]
    Option { name: String, message: String },
    /// `sqlite://` without a path.
    #[error("sqlite store needs a path: sqlite://PATH")]
    NoPath,
}

fn opt_err(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Option {
        name: name.to_string(),
        message: message.into(),
    }
}

/// The URL with any password replaced by `***`, for logs and errors.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => url.to_string(),
    }
}

fn duration(name: &str, v: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(v).map_err(|e| opt_err(name, format!("`{v}` is not a duration: {e}")))
}

fn positive(name: &str, v: &str) -> Result<Duration, ConfigError> {
    let d = duration(name, v)?;
    if d.is_zero() {
        return Err(opt_err(name, "must be more than zero"));
    }
    Ok(d)
}

/// Schema names go into SQL identifiers: keep them plain.
fn valid_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
}

impl StoreConfig {
    /// Parses `sqlite://PATH`, `postgres://...`, `redis://...` with our query options.
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        let (scheme, _) = url
            .split_once("://")
            .ok_or_else(|| ConfigError::Scheme(redact(url)))?;
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut cfg = StoreConfig {
            backend: BackendConfig::Sqlite {
                path: PathBuf::new(),
            },
            mode: Mode::Replica,
            cache_ttl: None,
            cache_size: 100_000,
            resync: Duration::from_secs(60),
            max_staleness: Duration::from_secs(30),
            heartbeat: Duration::from_secs(1),
            poll: Duration::from_millis(10),
            timeout: Duration::from_secs(2),
            pool_size: 8,
        };
        let mut passthrough: Vec<&str> = Vec::new();
        let mut schema = None;
        let mut prefix = "portcullis:".to_string();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode_str(raw).decode_utf8_lossy();
            match k {
                "mode" => {
                    cfg.mode = match &*v {
                        "replica" => Mode::Replica,
                        "lookup" => Mode::Lookup,
                        other => {
                            return Err(opt_err(
                                k,
                                format!("`{other}` is not `replica` or `lookup`"),
                            ))
                        }
                    }
                }
                "cache_ttl" => {
                    let d = duration(k, &v)?;
                    cfg.cache_ttl = (!d.is_zero()).then_some(d);
                }
                "cache_size" => {
                    cfg.cache_size = v
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| opt_err(k, format!("`{v}` is not a positive number")))?
                }
                "pool_size" => {
                    cfg.pool_size = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=256).contains(n))
                        .ok_or_else(|| opt_err(k, format!("`{v}` is not in 1..=256")))?
                }
                "resync" => cfg.resync = positive(k, &v)?,
                "max_staleness" => cfg.max_staleness = positive(k, &v)?,
                "heartbeat" => cfg.heartbeat = positive(k, &v)?,
                "poll" => cfg.poll = positive(k, &v)?,
                "timeout" => cfg.timeout = positive(k, &v)?,
                "prefix" => prefix = v.into_owned(),
                "schema" => {
                    if !valid_ident(&v) {
                        return Err(opt_err(k, "use lowercase letters, digits and `_`"));
                    }
                    schema = Some(v.into_owned());
                }
                _ => passthrough.push(pair),
            }
        }
        if cfg.heartbeat >= cfg.max_staleness {
            return Err(opt_err(
                "heartbeat",
                "must be shorter than max_staleness, or a healthy replica would look stale",
            ));
        }
        let rest = if passthrough.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", passthrough.join("&"))
        };
        cfg.backend = match scheme {
            "sqlite" => {
                if !passthrough.is_empty() {
                    return Err(opt_err(
                        passthrough.first().copied().unwrap_or(""),
                        "unknown option for sqlite",
                    ));
                }
                let path = base.strip_prefix("sqlite://").unwrap_or("");
                if path.is_empty() {
                    return Err(ConfigError::NoPath);
                }
                BackendConfig::Sqlite {
                    path: PathBuf::from(path),
                }
            }
            "postgres" | "postgresql" => BackendConfig::Postgres { url: rest, schema },
            "redis" | "rediss" => {
                if !passthrough.is_empty() {
                    return Err(opt_err(
                        passthrough.first().copied().unwrap_or(""),
                        "unknown option for redis",
                    ));
                }
                BackendConfig::Redis { url: rest, prefix }
            }
            other => return Err(ConfigError::Scheme(other.to_string())),
        };
        Ok(cfg)
    }

    /// A description safe for logs.
    pub fn describe(&self) -> String {
        let mode = match (self.mode, self.cache_ttl) {
            (Mode::Replica, _) => "replica".to_string(),
            (Mode::Lookup, None) => "lookup".to_string(),
            (Mode::Lookup, Some(t)) => format!("lookup+cache({})", humantime::format_duration(t)),
        };
        format!("{:?} mode={mode}", self.backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_options() {
        let c = StoreConfig::parse("sqlite://portcullis.db").unwrap();
        assert_eq!(
            c.backend,
            BackendConfig::Sqlite {
                path: "portcullis.db".into()
            }
        );
        assert_eq!(c.mode, Mode::Replica);
        let c = StoreConfig::parse("sqlite:///tmp/x.db?mode=lookup&cache_ttl=5s&cache_size=10")
            .unwrap();
        assert_eq!(c.mode, Mode::Lookup);
        assert_eq!(c.cache_ttl, Some(Duration::from_secs(5)));
        assert_eq!(c.cache_size, 10);
        assert_eq!(
            c.backend,
            BackendConfig::Sqlite {
                path: "/tmp/x.db".into()
            }
        );
    }

    #[test]
    fn postgres_keeps_its_own_options_and_loses_ours() {
        let c = StoreConfig::parse(
            "postgres://u:secret@h:5432/db?mode=replica&sslmode=disable&schema=t_1&max_staleness=5s",
        )
        .unwrap();
        assert_eq!(
            c.backend,
            BackendConfig::Postgres {
                url: "postgres://u:secret@h:5432/db?sslmode=disable".into(),
                schema: Some("t_1".into())
            }
        );
        assert_eq!(c.max_staleness, Duration::from_secs(5));
        assert!(!format!("{c:?}").contains("secret"));
        assert!(!c.describe().contains("secret"));
    }

    #[test]
    fn redis_prefix() {
        let c = StoreConfig::parse("redis://127.0.0.1:6379/0?prefix=t1:").unwrap();
        assert_eq!(
            c.backend,
            BackendConfig::Redis {
                url: "redis://127.0.0.1:6379/0".into(),
                prefix: "t1:".into()
            }
        );
    }

    #[test]
    fn bad_urls_are_refused_clearly() {
        assert!(matches!(
            StoreConfig::parse("mysql://x"),
            Err(ConfigError::Scheme(_))
        ));
        assert!(matches!(
            StoreConfig::parse("portcullis.db"),
            Err(ConfigError::Scheme(_))
        ));
        assert_eq!(StoreConfig::parse("sqlite://"), Err(ConfigError::NoPath));
        assert!(StoreConfig::parse("sqlite://x?mode=fast").is_err());
        assert!(StoreConfig::parse("sqlite://x?resync=0s").is_err());
        assert!(StoreConfig::parse("sqlite://x?bogus=1").is_err());
        assert!(StoreConfig::parse("postgres://h/db?schema=Robert');").is_err());
        assert!(StoreConfig::parse("sqlite://x?heartbeat=10s&max_staleness=5s").is_err());
        let e = StoreConfig::parse("mysql://u:pw@h/db").unwrap_err();
        assert!(!e.to_string().contains("pw"));
    }

    #[test]
    fn redaction() {
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("redis://:pw@h:6379"), "redis://:***@h:6379");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
    }
}
