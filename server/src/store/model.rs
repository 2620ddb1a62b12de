//! What the stores hold and what key management returns: records with their
//! key versions (digests, never keys), the request to create one, the view
//! shown to operators (fingerprints, never keys or digests).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use portcullis_engine::credential::apikey::{KeyDigest, KeyEntry, KeyRecord, RateOverride};
use serde::Serialize;

/// Why a store operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpError {
    /// The store could not be reached, timed out or answered with an error.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
    /// No key record has this id.
    #[error("no key `{0}`")]
    NotFound(String),
    /// The operation does not apply to the record as it is (e.g. rotating a revoked key).
    #[error("{0}")]
    Conflict(String),
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The store holds data this version cannot read.
    #[error("key store data is unreadable: {0}")]
    Corrupt(String),
}

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// One key of a record: a record has two while a rotation overlaps.
#[derive(Clone, PartialEq, Eq)]
pub struct VersionRow {
    pub digest: KeyDigest,
    /// The key's prefix (public), so a rotation can issue the same shape.
    pub prefix: String,
    pub fingerprint: String,
    pub created_at: i64,
    /// When this key stops working on its own (the end of a rotation overlap).
    pub expires_at: Option<i64>,
}

impl std::fmt::Debug for VersionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionRow")
            .field("fingerprint", &self.fingerprint)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A record as stored: the engine's [`KeyRecord`], its key versions, and a
/// revision counter that only grows, so a replica never applies an older
/// read over a newer one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub record: Arc<KeyRecord>,
    pub versions: Vec<VersionRow>,
    pub rev: i64,
}

impl StoredRecord {
    /// The index entries of this record, one per key version.
    pub fn entries(&self) -> impl Iterator<Item = (KeyDigest, KeyEntry)> + '_ {
        self.versions.iter().map(|v| {
            (
                v.digest,
                KeyEntry {
                    record: Arc::clone(&self.record),
                    fingerprint: Arc::from(v.fingerprint.as_str()),
                    key_expires_at: v.expires_at,
                },
            )
        })
    }

    /// Index entry for one digest.
    pub fn entry_for(&self, digest: &KeyDigest) -> Option<KeyEntry> {
        self.entries().find(|(d, _)| d == digest).map(|(_, e)| e)
    }
}

/// What `keys create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub consumer: String,
    pub scopes: Vec<String>,
    pub prefix: String,
    pub expires_at: Option<i64>,
    pub not_before: Option<i64>,
    pub allowed_cidrs: Vec<IpNet>,
    pub metadata: BTreeMap<String, String>,
    pub rate_limit: Option<RateOverride>,
}

const MAX_TEXT: usize = 256;
const MAX_SCOPES: usize = 256;
const MAX_METADATA: usize = 64;
const MAX_CIDRS: usize = 256;

fn plain_text(what: &str, s: &str) -> Result<(), OpError> {
    if s.is_empty() || s.len() > MAX_TEXT || s.chars().any(char::is_control) {
        return Err(OpError::Invalid(format!(
            "{what} must be 1 to {MAX_TEXT} characters without control characters"
        )));
    }
    Ok(())
}

impl NewKey {
    pub fn validate(&self) -> Result<(), OpError> {
        plain_text("consumer", &self.consumer)?;
        if self.scopes.len() > MAX_SCOPES {
            return Err(OpError::Invalid(format!("at most {MAX_SCOPES} scopes")));
        }
        for s in &self.scopes {
            if s.is_empty()
                || s.len() > MAX_TEXT
                || s.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(OpError::Invalid(format!(
                    "scope `{}` must be non-empty without spaces",
                    s.escape_debug()
                )));
            }
        }
        if self.metadata.len() > MAX_METADATA {
            return Err(OpError::Invalid(format!(
                "at most {MAX_METADATA} metadata entries"
            )));
        }
        for (k, v) in &self.metadata {
            plain_text("metadata key", k)?;
            if v.len() > 4096 {
                return Err(OpError::Invalid(format!(
                    "metadata `{k}` is longer than 4096 bytes"
                )));
            }
        }
        if self.allowed_cidrs.len() > MAX_CIDRS {
            return Err(OpError::Invalid(format!("at most {MAX_CIDRS} networks")));
        }
        if let (Some(nb), Some(exp)) = (self.not_before, self.expires_at) {
            if nb >= exp {
                return Err(OpError::Invalid(
                    "not_before must be before expires_at".into(),
                ));
            }
        }
        if let Some(r) = &self.rate_limit {
            if r.limit == 0 || r.per.is_zero() {
                return Err(OpError::Invalid("rate limit must be more than zero".into()));
            }
        }
        Ok(())
    }
}

/// A new random record id, `key_` + 16 base62 characters. Taken from a fresh
/// key's random part (the OS CSPRNG), so ids are unguessable too.
pub fn new_id() -> Result<String, OpError> {
    let k = portcullis_engine::credential::apikey::generate("key_")
        .map_err(|e| OpError::Unavailable(e.to_string()))?;
    k.get(..20)
        .map(str::to_string)
        .ok_or_else(|| OpError::Unavailable("key generation".into()))
}

/// `100/1s` or `100/1s:200` (limit per duration, optional burst).
pub fn parse_rate(s: &str) -> Result<RateOverride, String> {
    let (rate, burst) = match s.split_once(':') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    let (limit, per) = rate.split_once('/').ok_or_else(|| {
        format!("rate limit `{s}`: write LIMIT/DURATION[:BURST], e.g. 100/1s:200")
    })?;
    let limit: u64 = limit
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("rate limit `{s}`: limit must be a positive number"))?;
    let per = humantime::parse_duration(per.trim())
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("rate limit `{s}`: `{per}` is not a duration"))?;
    let burst = match burst {
        Some(b) => b
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("rate limit `{s}`: burst must be a positive number"))?,
        None => limit,
    };
    Ok(RateOverride { limit, per, burst })
}

/// Unix seconds as RFC 3339 (UTC), the form answers use.
pub fn rfc3339(t: i64) -> String {
    let st = if t >= 0 {
        UNIX_EPOCH + Duration::from_secs(t.unsigned_abs())
    } else {
        UNIX_EPOCH
    };
    humantime::format_rfc3339_seconds(st).to_string()
}

/// A time given on the command line or in the admin API: RFC 3339, or unix seconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|_| {
        format!("`{s}` is not a time: use RFC 3339 (2030-01-31T12:00:00Z) or unix seconds")
    })?;
    Ok(t.duration_since(UNIX_EPOCH).map(secs).unwrap_or(0))
}

/// One key version as operators see it: its fingerprint only.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VersionInfo {
    pub fingerprint: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub active: bool,
}

/// A key record as `keys list`/`show` and the admin API show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: String,
    pub consumer: String,
    pub scopes: Vec<String>,
    /// `active`, `revoked`, `expired` or `pending` (before `not_before`).
    pub status: &'static str,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub not_before: Option<String>,
    pub revoked_at: Option<String>,
    pub allowed_cidrs: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub rate_limit: Option<String>,
    pub keys: Vec<VersionInfo>,
}

pub fn format_rate(r: &RateOverride) -> String {
    format!(
        "{}/{}:{}",
        r.limit,
        humantime::format_duration(r.per),
        r.burst
    )
}

impl KeyInfo {
    pub fn of(s: &StoredRecord, now: i64) -> Self {
        let r = &s.record;
        let status = if r.revoked_at.is_some_and(|t| t <= now) {
            "revoked"
        } else if r.expires_at.is_some_and(|t| t <= now)
            || s.versions
                .iter()
                .all(|v| v.expires_at.is_some_and(|t| t <= now))
        {
            "expired"
        } else if r.not_before.is_some_and(|t| t > now) {
            "pending"
        } else {
            "active"
        };
        KeyInfo {
            id: r.id.to_string(),
            consumer: r.consumer.to_string(),
            scopes: r.scopes.to_vec(),
            status,
            created_at: rfc3339(r.created_at),
            expires_at: r.expires_at.map(rfc3339),
            not_before: r.not_before.map(rfc3339),
            revoked_at: r.revoked_at.map(rfc3339),
            allowed_cidrs: r.allowed_cidrs.iter().map(ToString::to_string).collect(),
            metadata: r.metadata.clone(),
            rate_limit: r.rate_limit.as_ref().map(format_rate),
            keys: s
                .versions
                .iter()
                .map(|v| VersionInfo {
                    fingerprint: v.fingerprint.clone(),
                    created_at: rfc3339(v.created_at),
                    expires_at: v.expires_at.map(rfc3339),
                    active: v.expires_at.is_none_or(|t| t > now),
                })
                .collect(),
        }
    }
}

/// A freshly issued key: the only time the key itself exists outside the client.
#[derive(Clone, Serialize)]
pub struct Issued {
    pub id: String,
    /// The key. Shown once; never logged (see the `Debug` impl).
    pub key: String,
    pub fingerprint: String,
    pub consumer: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<String>,
    /// Rotation: when the previous keys stop working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_keys_expire_at: Option<String>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        let r = parse_rate("100/1s:200").unwrap();
        assert_eq!(
            (r.limit, r.per, r.burst),
            (100, Duration::from_secs(1), 200)
        );
        let r = parse_rate("5/1m").unwrap();
        assert_eq!((r.limit, r.burst), (5, 5));
        for bad in ["", "100", "0/1s", "10/0s", "10/xs", "10/1s:0", "a/1s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(
            format_rate(&parse_rate("100/1s:200").unwrap()),
            "100/1s:200"
        );
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_time("2030-01-31T12:00:00Z").unwrap(), 1_896_091_200);
        assert_eq!(parse_time("1896091200").unwrap(), 1_896_091_200);
        assert!(parse_time("tomorrow").is_err());
    }

    #[test]
    fn ids_are_fresh() {
        let a = new_id().unwrap();
        assert!(a.starts_with("key_") && a.len() == 20);
        assert_ne!(a, new_id().unwrap());
    }

    #[test]
    fn validation() {
        let ok = NewKey {
            consumer: "acme".into(),
            scopes: vec!["a:b".into()],
            prefix: "pk_".into(),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        let mut bad = ok.clone();
        bad.consumer = "".into();
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.scopes = vec!["a b".into()];
        assert!(bad.validate().is_err());
        let mut bad = ok;
        bad.not_before = Some(10);
        bad.expires_at = Some(5);
        assert!(bad.validate().is_err());
    }

    #[test]
    fn issued_debug_hides_the_key() {
        let i = Issued {
            id: "key_1".into(),
            key: "pk_live_SECRETSECRET".into(),
            fingerprint: "pk_live_…CRET".into(),
            consumer: "c".into(),
            scopes: vec![],
            expires_at: None,
            previous_keys_expire_at: None,
        };
        assert!(!format!("{i:?}").contains("SECRETSECRET"));
    }
}
