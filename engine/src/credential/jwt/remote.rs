//! Key sets fetched from a JWKS URL.
//!
//! The engine does no network I/O. A process-wide [`Registry`] holds one
//! [`RemoteKeys`] per (URL, configured algorithms); verifiers built at
//! compile time share it and read its current set through an `ArcSwap`.
//! The server's fetcher walks [`registry()`], fetches each URL and hands
//! the body to [`RemoteKeys::install_jwks`]. Until a set is installed every
//! token for that credential is denied with `store_unavailable` (503): the
//! token may well be good, we just cannot tell yet.
//!
//! An unknown `kid` is recorded with [`RemoteKeys::record_miss`] (and wakes
//! the fetcher through the waker it registered); the fetcher refetches at
//! most once per `refetch_min_interval`, so varying `kid`s cannot force a
//! fetch per request. Entries are never dropped: after a policy reload the
//! new verifiers find the set already loaded.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use parking_lot::{Mutex, RwLock};

use super::jwks::{self, Origin};
use super::keyset::KeySet;
use crate::policy::JwtAlgorithm;

/// One JWKS URL as one credential configuration sees it.
pub struct RemoteKeys {
    url: String,
    algorithms: Vec<JwtAlgorithm>,
    refresh_ms: AtomicU64,
    refetch_min_ms: AtomicU64,
    current: ArcSwapOption<KeySet>,
    miss: AtomicBool,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("url", &self.url)
            .field("keys", &self.current.load().as_ref().map(|k| k.len()))
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RemoteKeys {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How often the set should be refetched when nothing else says so.
    pub fn refresh(&self) -> Duration {
        Duration::from_millis(self.refresh_ms.load(Ordering::Relaxed))
    }

    /// The least time between two fetches caused by unknown `kid`s.
    pub fn refetch_min_interval(&self) -> Duration {
        Duration::from_millis(self.refetch_min_ms.load(Ordering::Relaxed))
    }

    /// The current key set, if one was ever installed.
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        self.current.load_full()
    }

    pub fn has_keys(&self) -> bool {
        self.current.load().is_some()
    }

    /// Parses a fetched JWKS body and makes it current. On error the last
    /// good set stays in place. Returns the number of usable keys.
    pub fn install_jwks(&self, body: &[u8]) -> Result<usize, String> {
        let parsed = jwks::parse(body, &self.algorithms, Origin::Remote)?;
        if parsed.keys.is_empty() {
            return Err("jwk set holds no key usable with the configured algorithms".into());
        }
        let n = parsed.keys.len();
        self.current.store(Some(Arc::new(KeySet::new(parsed.keys))));
        Ok(n)
    }

    /// A token named a `kid` the current set lacks: ask for a refetch.
    pub fn record_miss(&self) {
        if !self.miss.swap(true, Ordering::AcqRel) {
            registry().wake();
        }
    }

    /// Whether a miss was recorded since the last call (the fetcher clears it).
    pub fn take_miss(&self) -> bool {
        self.miss.swap(false, Ordering::AcqRel)
    }

    /// Whether a miss is pending, without clearing it.
    pub fn miss_pending(&self) -> bool {
        self.miss.load(Ordering::Acquire)
    }
}

type Waker = Arc<dyn Fn() + Send + Sync>;

/// Every JWKS URL the loaded policies use.
#[derive(Default)]
pub struct Registry {
    entries: Mutex<Vec<Arc<RemoteKeys>>>,
    waker: RwLock<Option<Waker>>,
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// The process-wide registry.
pub fn registry() -> &'static Registry {
    REGISTRY.get_or_init(Registry::default)
}

impl Registry {
    /// The entry for this URL and algorithm list, created if new. With two
    /// credentials on one URL the shorter intervals win.
    pub fn entry(
        &self,
        url: &str,
        algorithms: &[JwtAlgorithm],
        refresh: Duration,
        refetch_min_interval: Duration,
    ) -> Arc<RemoteKeys> {
        let mut algs = algorithms.to_vec();
        algs.sort_by_key(|a| a.name());
        algs.dedup();
        let mut entries = self.entries.lock();
        if let Some(e) = entries
            .iter()
            .find(|e| e.url == url && e.algorithms == algs)
        {
            e.refresh_ms.fetch_min(ms(refresh), Ordering::Relaxed);
            e.refetch_min_ms
                .fetch_min(ms(refetch_min_interval), Ordering::Relaxed);
            return Arc::clone(e);
        }
        let e = Arc::new(RemoteKeys {
            url: url.to_string(),
            algorithms: algs,
            refresh_ms: AtomicU64::new(ms(refresh)),
            refetch_min_ms: AtomicU64::new(ms(refetch_min_interval)),
            current: ArcSwapOption::empty(),
            miss: AtomicBool::new(false),
        });
        entries.push(Arc::clone(&e));
        drop(entries);
        self.wake();
        e
    }

    /// A snapshot of every entry.
    pub fn entries(&self) -> Vec<Arc<RemoteKeys>> {
        self.entries.lock().clone()
    }

    /// Sets the function called when an entry needs a fetch (new URL, unknown kid).
    pub fn set_waker(&self, waker: impl Fn() + Send + Sync + 'static) {
        *self.waker.write() = Some(Arc::new(waker));
    }

    fn wake(&self) {
        let w = self.waker.read().clone();
        if let Some(w) = w {
            w();
        }
    }
}
