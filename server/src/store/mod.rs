//! Key stores: where API-key records live, how decisions reach them, and
//! key lifecycle (create, list, show, revoke, rotate) over them.
//!
//! Backends ([`backend::Backend`]): [`sqlite`] (embedded default),
//! [`postgres`] and [`redis_store`] (shared by a fleet). Serving modes
//! ([`config::Mode`]): [`replica`] (the whole index in memory, kept current
//! by a change feed) and [`lookup`] (one query per decision, optionally
//! cached). [`ratelimit`] is the fleet-wide rate limiter over Redis;
//! [`admin`] the admin API's key endpoints. See `docs/stores.md`.

pub mod admin;
pub mod backend;
pub mod codec;
pub mod config;
pub mod lookup;
pub mod model;
pub mod postgres;
pub mod ratelimit;
pub mod redis_store;
pub mod replica;
pub mod sqlite;
#[doc(hidden)]
pub mod testkit;
#[cfg(test)]
mod tests;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use portcullis_engine::credential::apikey::{
    fingerprint, generate, KeyDigest, KeyEntry, KeyRecord, KeyStore, StoreError,
};
use serde::Serialize;

use self::backend::{Backend, FeedGuard};
pub use self::config::{BackendConfig, Mode, StoreConfig};
use self::lookup::LookupStore;
use self::model::{now_unix, rfc3339, secs};
pub use self::model::{Issued, KeyInfo, NewKey, OpError};
pub use self::model::{StoredRecord, VersionRow};
use self::replica::Replica;

/// How decisions reach this store's keys.
enum Serving {
    Replica(Arc<Replica>),
    Lookup(Arc<LookupStore>),
}

/// An open key store: serves lookups to the engine ([`KeyStore`]) and
/// manages keys. Cheap to share behind an `Arc`.
pub struct Store {
    config: StoreConfig,
    backend: Arc<dyn Backend>,
    serving: Serving,
    // Dropping the store stops the feed, which stops the worker thread.
    _feed: Option<Box<dyn FeedGuard>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What `/readyz` and operators see of a store.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStatus {
    pub backend: &'static str,
    pub mode: String,
    pub ready: bool,
    /// Replica: keys in memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<usize>,
    /// Replica: milliseconds since the index was last known current.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_ms: Option<u64>,
}

/// Opens the key store named by `url` (`--store`) for serving decisions.
pub fn open(url: &str) -> Result<Arc<Store>, String> {
    Store::open(url).map_err(|e| e.to_string())
}

/// Opens the store for one decision or command (`portcullis decide`):
/// lookup mode, nothing loaded up front.
pub fn open_oneshot(url: &str) -> Result<Arc<Store>, String> {
    Store::open_admin(url).map_err(|e| e.to_string())
}

fn open_backend(cfg: &StoreConfig) -> Result<Arc<dyn Backend>, OpError> {
    Ok(match &cfg.backend {
        BackendConfig::Sqlite { path } => Arc::new(sqlite::SqliteBackend::open(
            path,
            cfg.pool_size.min(16),
            cfg.timeout,
            cfg.poll,
            cfg.heartbeat,
        )?),
        BackendConfig::Postgres { url, schema } => Arc::new(postgres::PostgresBackend::open(
            url,
            schema.as_deref(),
            cfg,
        )?),
        BackendConfig::Redis { url, prefix } => {
            Arc::new(redis_store::RedisBackend::open(url, prefix, cfg)?)
        }
    })
}

impl Store {
    /// Opens a store for serving: in replica mode, returns once the whole
    /// index is loaded (or fails if the store cannot be read).
    pub fn open(url: &str) -> Result<Arc<Store>, OpError> {
        let cfg = StoreConfig::parse(url).map_err(|e| OpError::Invalid(e.to_string()))?;
        Self::open_config(cfg)
    }

    /// Opens a store for key management only (the `keys` CLI): no index
    /// loaded, no feed, every call goes to the store.
    pub fn open_admin(url: &str) -> Result<Arc<Store>, OpError> {
        let mut cfg = StoreConfig::parse(url).map_err(|e| OpError::Invalid(e.to_string()))?;
        cfg.mode = Mode::Lookup;
        cfg.cache_ttl = None;
        cfg.pool_size = cfg.pool_size.min(2);
        Self::open_config(cfg)
    }

    pub fn open_config(cfg: StoreConfig) -> Result<Arc<Store>, OpError> {
        let backend = open_backend(&cfg)?;
        match cfg.mode {
            Mode::Replica => {
                let replica = Arc::new(Replica::new(cfg.max_staleness));
                let (tx, rx) = mpsc::channel();
                let feed = backend.watch(tx)?;
                let (ready_tx, ready_rx) = mpsc::channel();
                let (r, b, every) = (Arc::clone(&replica), Arc::clone(&backend), cfg.resync);
                std::thread::Builder::new()
                    .name("portcullis-replica".into())
                    .spawn(move || replica::run_worker(r, b, rx, every, ready_tx))
                    .map_err(|e| OpError::Unavailable(format!("cannot start the replica: {e}")))?;
                // The first load may take a while at 10^6 keys; bound it generously.
                let wait = cfg.timeout.saturating_mul(10).max(Duration::from_secs(30));
                match ready_rx.recv_timeout(wait) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        return Err(OpError::Unavailable(
                            "the key index did not load in time".into(),
                        ))
                    }
                }
                tracing::info!(store = %cfg.describe(), keys = replica.len(), "key store open");
                Ok(Arc::new(Store {
                    config: cfg,
                    backend,
                    serving: Serving::Replica(replica),
                    _feed: Some(feed),
                }))
            }
            Mode::Lookup => {
                let cache = cfg.cache_ttl.map(|t| (t, cfg.cache_size));
                let lookup = Arc::new(LookupStore::new(Arc::clone(&backend), cache));
                let feed = if lookup.has_cache() {
                    let (tx, rx) = mpsc::channel();
                    let feed = backend.watch(tx)?;
                    let l = Arc::clone(&lookup);
                    std::thread::Builder::new()
                        .name("portcullis-cache-feed".into())
                        .spawn(move || lookup::run_invalidator(l, rx))
                        .map_err(|e| {
                            OpError::Unavailable(format!("cannot start the cache feed: {e}"))
                        })?;
                    Some(feed)
                } else {
                    None
                };
                backend.ping()?;
                tracing::info!(store = %cfg.describe(), "key store open");
                Ok(Arc::new(Store {
                    config: cfg,
                    backend,
                    serving: Serving::Lookup(lookup),
                    _feed: feed,
                }))
            }
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Replica: the index is current within `max_staleness`. Lookup: the store answers.
    pub fn ready(&self) -> bool {
        match &self.serving {
            Serving::Replica(r) => r.is_fresh(),
            Serving::Lookup(_) => self.backend.ping().is_ok(),
        }
    }

    pub fn status(&self) -> StoreStatus {
        let (keys, age_ms) = match &self.serving {
            Serving::Replica(r) => (
                Some(r.len()),
                r.age()
                    .map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX)),
            ),
            Serving::Lookup(_) => (None, None),
        };
        StoreStatus {
            backend: self.backend.name(),
            mode: self
                .config
                .describe()
                .rsplit("mode=")
                .next()
                .unwrap_or("")
                .to_string(),
            ready: self.ready(),
            keys,
            age_ms,
        }
    }

    /// Replica: full resyncs so far.
    pub fn resyncs(&self) -> Option<u64> {
        match &self.serving {
            Serving::Replica(r) => Some(r.resyncs()),
            Serving::Lookup(_) => None,
        }
    }

    /// Makes a change visible to this instance at once (other instances
    /// hear it through the feed).
    fn applied(&self, rec: &StoredRecord) {
        match &self.serving {
            Serving::Replica(r) => r.apply(rec),
            Serving::Lookup(l) => l.clear(),
        }
    }

    /// Creates a key record with a fresh key; the key is in the answer and nowhere else.
    pub fn create(&self, new: NewKey) -> Result<Issued, OpError> {
        new.validate()?;
        let key = generate(&new.prefix).map_err(|e| OpError::Invalid(e.to_string()))?;
        let now = now_unix();
        let id = model::new_id()?;
        let fp = fingerprint(&key);
        let rec = StoredRecord {
            record: Arc::new(KeyRecord {
                id: Arc::from(id.as_str()),
                consumer: Arc::from(new.consumer.as_str()),
                scopes: Arc::from(new.scopes.clone()),
                created_at: now,
                expires_at: new.expires_at,
                not_before: new.not_before,
                revoked_at: None,
                allowed_cidrs: new.allowed_cidrs,
                metadata: new.metadata,
                rate_limit: new.rate_limit,
            }),
            versions: vec![VersionRow {
                digest: KeyDigest::of(&key),
                prefix: new.prefix.clone(),
                fingerprint: fp.clone(),
                created_at: now,
                expires_at: None,
            }],
            rev: 1,
        };
        self.backend.insert(&rec)?;
        self.applied(&rec);
        tracing::info!(id = %id, consumer = %new.consumer, fingerprint = %fp, "key created");
        Ok(Issued {
            id,
            key,
            fingerprint: fp,
            consumer: new.consumer,
            scopes: new.scopes,
            expires_at: new.expires_at.map(rfc3339),
            previous_keys_expire_at: None,
        })
    }

    pub fn list(
        &self,
        consumer: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<KeyInfo>, OpError> {
        let now = now_unix();
        Ok(self
            .backend
            .list(consumer, after, limit)?
            .iter()
            .map(|r| KeyInfo::of(r, now))
            .collect())
    }

    pub fn show(&self, id: &str) -> Result<KeyInfo, OpError> {
        self.backend
            .load_record(id)?
            .map(|r| KeyInfo::of(&r, now_unix()))
            .ok_or_else(|| OpError::NotFound(id.to_string()))
    }

    /// Revokes a record (all its keys) now; revoking twice keeps the first time.
    pub fn revoke(&self, id: &str) -> Result<KeyInfo, OpError> {
        let now = now_unix();
        let rec = self.backend.revoke(id, now)?;
        self.applied(&rec);
        tracing::info!(id = %id, "key revoked");
        Ok(KeyInfo::of(&rec, now))
    }

    /// Issues a new key for the record; the current keys stop working after `overlap`.
    pub fn rotate(
        &self,
        id: &str,
        prefix: Option<&str>,
        overlap: Duration,
    ) -> Result<Issued, OpError> {
        let now = now_unix();
        let current = self
            .backend
            .load_record(id)?
            .ok_or_else(|| OpError::NotFound(id.to_string()))?;
        // The new key keeps the prefix of the newest current key unless told otherwise.
        let prefix = match prefix {
            Some(p) => p.to_string(),
            None => current
                .versions
                .iter()
                .max_by_key(|v| v.created_at)
                .map(|v| v.prefix.clone())
                .ok_or_else(|| OpError::Corrupt(format!("key `{id}` has no key versions")))?,
        };
        let key = generate(&prefix).map_err(|e| OpError::Invalid(e.to_string()))?;
        let fp = fingerprint(&key);
        let old_until = now.saturating_add(secs(overlap));
        let new = VersionRow {
            digest: KeyDigest::of(&key),
            prefix: prefix.clone(),
            fingerprint: fp.clone(),
            created_at: now,
            expires_at: None,
        };
        let rec = self.backend.rotate(id, &new, old_until)?;
        self.applied(&rec);
        tracing::info!(id = %id, fingerprint = %fp, overlap_s = secs(overlap), "key rotated");
        Ok(Issued {
            id: id.to_string(),
            key,
            fingerprint: fp,
            consumer: rec.record.consumer.to_string(),
            scopes: rec.record.scopes.to_vec(),
            expires_at: rec.record.expires_at.map(rfc3339),
            previous_keys_expire_at: Some(rfc3339(old_until)),
        })
    }

    /// Bulk import of prepared records (migrations from another system,
    /// benchmarks): one batched write, visible here at once.
    pub fn import(&self, records: &[StoredRecord]) -> Result<(), OpError> {
        self.backend.insert_batch(records)?;
        for r in records {
            self.applied(r);
        }
        Ok(())
    }

    /// Denies a token id until `until` (unix seconds), fleet-wide.
    pub fn deny_jti(&self, jti: &str, until: i64) -> Result<(), OpError> {
        if jti.is_empty() || jti.len() > 1024 {
            return Err(OpError::Invalid("jti must be 1 to 1024 bytes".into()));
        }
        self.backend.deny_jti(jti, until)?;
        if let Serving::Replica(r) = &self.serving {
            r.set_jti(jti, Some(until));
        }
        Ok(())
    }

    /// Is this token id denied now? Fails closed: `true` when the store cannot tell.
    pub fn jti_denied(&self, jti: &str) -> bool {
        let now = now_unix();
        match &self.serving {
            Serving::Replica(r) => r.jti_denied(jti, now).unwrap_or(true),
            Serving::Lookup(_) => match self.backend.jti_until(jti) {
                Ok(until) => until.is_some_and(|u| u > now),
                Err(_) => true,
            },
        }
    }

    /// Drops denylist entries that ended; how many.
    pub fn purge_jti(&self) -> Result<u64, OpError> {
        self.backend.purge_jti(now_unix())
    }

    pub fn consumers(&self) -> Result<Vec<String>, OpError> {
        self.backend.consumers()
    }
}

/// Revoked JWT ids from the store: JWT verifiers ask this (set process-wide
/// by `serve`). Fails closed like the engine's contract asks: `true` when
/// the store cannot tell.
impl portcullis_engine::credential::jwt::JtiDenylist for Store {
    fn is_denied(&self, jti: &str) -> bool {
        self.jti_denied(jti)
    }
}

impl KeyStore for Store {
    fn lookup(&self, digest: &KeyDigest) -> Result<Option<KeyEntry>, StoreError> {
        match &self.serving {
            Serving::Replica(r) => r.lookup(digest),
            Serving::Lookup(l) => l.lookup(digest),
        }
    }

    fn inspect(
        &self,
        digest: &KeyDigest,
        f: &mut dyn FnMut(&KeyEntry),
    ) -> Result<bool, StoreError> {
        match &self.serving {
            Serving::Replica(r) => r.inspect(digest, f),
            Serving::Lookup(l) => l.inspect(digest, f),
        }
    }
}
