//! Lookup mode: one store query per decision, optionally behind a bounded
//! cache that keeps positive and negative answers for a TTL. A change feed,
//! when running, empties the cache on every change, so revocations through
//! any instance reach cached answers at once; the TTL bounds how long a
//! missed notification can matter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_engine::credential::apikey::{KeyDigest, KeyEntry, KeyStore, StoreError};
use quick_cache::sync::Cache;

use super::backend::{Backend, FeedEvent};

type Cached = (Instant, Option<KeyEntry>);

pub struct LookupStore {
    backend: Arc<dyn Backend>,
    /// quick_cache bounds the size; the TTL is checked on read.
    cache: Option<(Cache<[u8; 32], Cached>, Duration)>,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Bumped on every clear: an answer read before a clear is not cached after it.
    generation: AtomicU64,
}

impl LookupStore {
    pub fn new(backend: Arc<dyn Backend>, cache: Option<(Duration, usize)>) -> Self {
        Self {
            backend,
            cache: cache.map(|(ttl, size)| (Cache::new(size), ttl)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }
    }

    pub fn has_cache(&self) -> bool {
        self.cache.is_some()
    }

    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some((c, _)) = &self.cache {
            c.clear();
        }
    }

    /// (hits, misses) of the cache.
    pub fn cache_stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

impl KeyStore for LookupStore {
    fn lookup(&self, digest: &KeyDigest) -> Result<Option<KeyEntry>, StoreError> {
        if let Some((cache, ttl)) = &self.cache {
            if let Some((at, e)) = cache.get(&digest.0) {
                if at.elapsed() < *ttl {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(e);
                }
            }
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        // Stamped before the query: an answer is never kept past TTL from when it was asked.
        let asked = Instant::now();
        let generation = self.generation.load(Ordering::SeqCst);
        let found = self
            .backend
            .lookup(digest)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        if let Some((cache, _)) = &self.cache {
            cache.insert(digest.0, (asked, found.clone()));
            // A change landed while we asked: what we read may predate it.
            if self.generation.load(Ordering::SeqCst) != generation {
                cache.remove(&digest.0);
            }
        }
        Ok(found)
    }
}

/// Empties the cache on every change the feed reports (and on a resync:
/// changes may have been missed).
pub fn run_invalidator(store: Arc<LookupStore>, events: Receiver<FeedEvent>) {
    while let Ok(ev) = events.recv() {
        match ev {
            FeedEvent::Resync | FeedEvent::Record(_) => store.clear(),
            FeedEvent::Jti(_) | FeedEvent::Alive => {}
        }
    }
}
