//! Key records (SPEC section 5) and the store interface the engine looks keys up in.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::format::KeyDigest;

/// A per-key rate-limit override: replaces the route's limit for this key's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateOverride {
    pub limit: u64,
    #[serde(with = "duration_ms")]
    pub per: Duration,
    pub burst: u64,
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// What a store knows about a key. Holds no secret: the digest lives in the index, not here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: Arc<str>,
    pub consumer: Arc<str>,
    pub scopes: Arc<[String]>,
    /// Unix seconds.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub not_before: Option<i64>,
    pub revoked_at: Option<i64>,
    #[serde(default)]
    pub allowed_cidrs: Vec<IpNet>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub rate_limit: Option<RateOverride>,
}

impl KeyRecord {
    /// A record with no time bounds, network restriction, metadata or override.
    pub fn new(id: &str, consumer: &str, scopes: &[&str]) -> Self {
        KeyRecord {
            id: Arc::from(id),
            consumer: Arc::from(consumer),
            scopes: scopes
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into(),
            created_at: 0,
            expires_at: None,
            not_before: None,
            revoked_at: None,
            allowed_cidrs: Vec::new(),
            metadata: BTreeMap::new(),
            rate_limit: None,
        }
    }

    pub fn ip_allowed(&self, ip: Option<IpAddr>) -> bool {
        if self.allowed_cidrs.is_empty() {
            return true;
        }
        // A key restricted to networks is refused when the client address is unknown.
        ip.is_some_and(|ip| self.allowed_cidrs.iter().any(|n| n.contains(&ip)))
    }
}

/// One key version in the index: a record can have two during a rotation overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub record: Arc<KeyRecord>,
    /// `first 8…last 4` of this key version.
    pub fingerprint: Arc<str>,
    /// When this key version stops working (rotation overlap end), in unix seconds.
    pub key_expires_at: Option<i64>,
}

impl KeyEntry {
    /// The index entry for a plaintext key: its digest, and the entry holding
    /// only the key's fingerprint. The key itself is not kept.
    pub fn for_key(key: &str, record: KeyRecord) -> (KeyDigest, KeyEntry) {
        let entry = KeyEntry {
            record: Arc::new(record),
            fingerprint: super::format::fingerprint(key).into(),
            key_expires_at: None,
        };
        (KeyDigest::of(key), entry)
    }
}

/// Why a lookup could not be answered. The engine turns it into `store_unavailable`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached or answered with an error.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
    /// A replica index is older than the configured staleness bound.
    #[error("key index is stale: last sync {0:?} ago")]
    Stale(Duration),
}

/// Where the engine looks up API keys by digest. Implemented in memory here,
/// and by SQLite, PostgreSQL and Redis backends in the server.
///
/// Synchronous on purpose: the engine does no I/O of its own; a network
/// backend in lookup mode blocks only the decision that needs it.
pub trait KeyStore: Send + Sync + 'static {
    fn lookup(&self, digest: &KeyDigest) -> Result<Option<KeyEntry>, StoreError>;

    /// Looks `digest` up and lets `f` read the entry where it lies; `Ok(false)`
    /// when there is none. In-memory stores override it so a decision does
    /// not clone the entry (two reference-count round trips, a measurable
    /// share of an API-key decision); the default goes through [`Self::lookup`].
    fn inspect(
        &self,
        digest: &KeyDigest,
        f: &mut dyn FnMut(&KeyEntry),
    ) -> Result<bool, StoreError> {
        Ok(match self.lookup(digest)? {
            Some(e) => {
                f(&e);
                true
            }
            None => false,
        })
    }
}
