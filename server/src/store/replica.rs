//! Replica mode: the whole key index in memory (the engine's sharded
//! `MemoryIndex`), kept current by the backend's change feed, so a
//! decision makes no round trip. A worker thread applies feed events;
//! a periodic full reload heals anything a notification missed.
//!
//! Freshness: the index counts as current while the feed proves its
//! connection alive (`Alive`) after a successful sync. Once the store is
//! lost, the last index keeps serving for `max_staleness`, then lookups
//! answer `StoreError::Stale` (503) until the feed is back and resynced.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use portcullis_engine::credential::apikey::{
    KeyDigest, KeyEntry, KeyStore, MemoryIndex, StoreError,
};

use super::backend::{Backend, FeedEvent};
use super::model::{now_unix, OpError, StoredRecord};

/// Record id → (revision held, its digests).
type RecordMap = HashMap<Arc<str>, (i64, Vec<KeyDigest>)>;

/// The in-memory side of replica mode.
pub struct Replica {
    index: MemoryIndex,
    /// Record id → (revision held, its digests), to replace a record's keys as a unit.
    records: Mutex<RecordMap>,
    jti: RwLock<HashMap<Box<str>, i64>>,
    base: Instant,
    /// Milliseconds after `base` when the index was last known current; 0 = never.
    fresh_ms: AtomicU64,
    synced: AtomicBool,
    max_staleness: Duration,
    resyncs: AtomicU64,
}

impl Replica {
    pub fn new(max_staleness: Duration) -> Self {
        Self {
            index: MemoryIndex::new(),
            records: Mutex::new(HashMap::new()),
            jti: RwLock::new(HashMap::new()),
            base: Instant::now(),
            fresh_ms: AtomicU64::new(0),
            synced: AtomicBool::new(false),
            max_staleness,
            resyncs: AtomicU64::new(0),
        }
    }

    fn mark_fresh(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.fresh_ms.store(ms.max(1), Ordering::SeqCst);
    }

    /// How long since the index was last known current (`None`: never synced).
    pub fn age(&self) -> Option<Duration> {
        match self.fresh_ms.load(Ordering::SeqCst) {
            0 => None,
            ms => Some(
                self.base
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms)),
            ),
        }
    }

    /// Current enough to answer from.
    pub fn is_fresh(&self) -> bool {
        self.age().is_some_and(|a| a <= self.max_staleness)
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Full resyncs done so far (for tests and metrics).
    pub fn resyncs(&self) -> u64 {
        self.resyncs.load(Ordering::SeqCst)
    }

    /// Applies one record as read from the store, unless a newer revision is held.
    pub fn apply(&self, rec: &StoredRecord) {
        let mut records = self.records.lock();
        let id = Arc::clone(&rec.record.id);
        if let Some((rev, old)) = records.get(&id) {
            if *rev > rec.rev {
                return;
            }
            for d in old
                .iter()
                .filter(|d| !rec.versions.iter().any(|v| v.digest == **d))
            {
                self.index.remove(d);
            }
        }
        for (d, e) in rec.entries() {
            self.index.insert(d, e);
        }
        records.insert(
            id,
            (rec.rev, rec.versions.iter().map(|v| v.digest).collect()),
        );
    }

    /// Replaces everything with a full load, keeping any record held at a
    /// newer revision than the load saw (applied while the load ran).
    pub fn replace(&self, all: &[StoredRecord], denylist: Vec<(String, i64)>) {
        let mut records = self.records.lock();
        let mut fresh: RecordMap = HashMap::with_capacity(all.len());
        let mut entries: Vec<(KeyDigest, KeyEntry)> = Vec::with_capacity(all.len());
        for rec in all {
            let id = Arc::clone(&rec.record.id);
            match records.get(&id) {
                Some((rev, digests)) if *rev > rec.rev => {
                    entries.extend(
                        digests
                            .iter()
                            .filter_map(|d| self.index.get(d).map(|e| (*d, e))),
                    );
                    fresh.insert(id, (*rev, digests.clone()));
                }
                _ => {
                    entries.extend(rec.entries());
                    fresh.insert(
                        id,
                        (rec.rev, rec.versions.iter().map(|v| v.digest).collect()),
                    );
                }
            }
        }
        self.index.replace_all(entries);
        *records = fresh;
        *self.jti.write() = denylist
            .into_iter()
            .map(|(j, u)| (j.into_boxed_str(), u))
            .collect();
        self.synced.store(true, Ordering::SeqCst);
        self.resyncs.fetch_add(1, Ordering::SeqCst);
        self.mark_fresh();
    }

    pub fn set_jti(&self, jti: &str, until: Option<i64>) {
        let mut map = self.jti.write();
        match until {
            Some(u) => {
                map.insert(jti.into(), u);
            }
            None => {
                map.remove(jti);
            }
        }
    }

    /// Denylist answer from memory; `None` when the replica cannot tell (stale).
    pub fn jti_denied(&self, jti: &str, now: i64) -> Option<bool> {
        if !self.is_fresh() {
            return None;
        }
        Some(self.jti.read().get(jti).is_some_and(|u| *u > now))
    }

    fn full_sync(&self, backend: &dyn Backend) -> Result<(), OpError> {
        let all = backend.load_all()?;
        let deny = backend.load_denylist(now_unix())?;
        self.replace(&all, deny);
        Ok(())
    }

    fn refresh(&self, backend: &dyn Backend, id: &str) -> Result<(), OpError> {
        if let Some(rec) = backend.load_record(id)? {
            self.apply(&rec);
        }
        Ok(())
    }
}

impl KeyStore for Replica {
    fn lookup(&self, digest: &KeyDigest) -> Result<Option<KeyEntry>, StoreError> {
        match self.age() {
            Some(a) if a <= self.max_staleness => Ok(self.index.get(digest)),
            Some(a) => Err(StoreError::Stale(a)),
            None => Err(StoreError::Unavailable("key index not loaded yet".into())),
        }
    }

    /// The decision path: reads the entry in place instead of cloning it.
    fn inspect(
        &self,
        digest: &KeyDigest,
        f: &mut dyn FnMut(&KeyEntry),
    ) -> Result<bool, StoreError> {
        match self.age() {
            Some(a) if a <= self.max_staleness => self.index.inspect(digest, f),
            Some(a) => Err(StoreError::Stale(a)),
            None => Err(StoreError::Unavailable("key index not loaded yet".into())),
        }
    }
}

/// Applies feed events to `replica` until the feed is gone. Runs on its own
/// thread: backend calls block, and must not block the feed itself.
pub fn run_worker(
    replica: Arc<Replica>,
    backend: Arc<dyn Backend>,
    events: Receiver<FeedEvent>,
    resync_every: Duration,
    ready: std::sync::mpsc::Sender<Result<(), OpError>>,
) {
    let mut ready = Some(ready);
    let mut need_sync = true;
    let mut last_full = Instant::now();
    let retry = Duration::from_millis(200);
    loop {
        let wait = if need_sync {
            retry
        } else {
            resync_every.saturating_sub(last_full.elapsed())
        };
        let ev = match events.recv_timeout(wait.max(Duration::from_millis(1))) {
            Ok(ev) => Some(ev),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        match ev {
            Some(FeedEvent::Resync) => need_sync = true,
            Some(FeedEvent::Record(id)) if !need_sync => {
                if let Err(e) = replica.refresh(backend.as_ref(), &id) {
                    tracing::warn!(error = %e, "replica: cannot read a changed key; full resync");
                    need_sync = true;
                }
            }
            Some(FeedEvent::Jti(jti)) if !need_sync => match backend.jti_until(&jti) {
                Ok(until) => replica.set_jti(&jti, until),
                Err(_) => need_sync = true,
            },
            Some(FeedEvent::Alive) if !need_sync => replica.mark_fresh(),
            // Covered by the resync to come.
            Some(_) => {}
            None if !need_sync => need_sync = true, // periodic full reload
            None => {}
        }
        if need_sync || last_full.elapsed() >= resync_every {
            let started = Instant::now();
            match replica.full_sync(backend.as_ref()) {
                Ok(()) => {
                    need_sync = false;
                    last_full = Instant::now();
                    tracing::debug!(
                        keys = replica.len(),
                        took_ms = started.elapsed().as_millis() as u64,
                        "replica synced"
                    );
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(()));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, backend = backend.name(), "replica: full sync failed; serving the last index");
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(e));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::VersionRow;
    use portcullis_engine::credential::apikey::KeyRecord;

    fn rec(id: &str, rev: i64, keys: &[&str], revoked: bool) -> StoredRecord {
        StoredRecord {
            record: Arc::new(KeyRecord {
                id: id.into(),
                consumer: "c".into(),
                scopes: Arc::from(Vec::<String>::new()),
                created_at: 0,
                expires_at: None,
                not_before: None,
                revoked_at: revoked.then_some(1),
                allowed_cidrs: vec![],
                metadata: Default::default(),
                rate_limit: None,
            }),
            versions: keys
                .iter()
                .map(|k| VersionRow {
                    digest: KeyDigest::of(k),
                    prefix: "p_".into(),
                    fingerprint: "fp".into(),
                    created_at: 0,
                    expires_at: None,
                })
                .collect(),
            rev,
        }
    }

    #[test]
    fn newer_revisions_win_and_removed_keys_go() {
        let r = Replica::new(Duration::from_secs(30));
        assert!(matches!(
            r.lookup(&KeyDigest::of("a")),
            Err(StoreError::Unavailable(_))
        ));
        r.replace(&[rec("x", 1, &["a"], false)], vec![]);
        assert!(r.lookup(&KeyDigest::of("a")).unwrap().is_some());
        r.apply(&rec("x", 3, &["b"], true));
        assert!(r.lookup(&KeyDigest::of("a")).unwrap().is_none());
        assert!(r
            .lookup(&KeyDigest::of("b"))
            .unwrap()
            .unwrap()
            .record
            .revoked_at
            .is_some());
        // An older read arriving late changes nothing.
        r.apply(&rec("x", 2, &["a"], false));
        assert!(r.lookup(&KeyDigest::of("a")).unwrap().is_none());
        // Nor does a full load that ran before the newer change.
        r.replace(&[rec("x", 2, &["a"], false)], vec![]);
        assert!(r.lookup(&KeyDigest::of("a")).unwrap().is_none());
        assert!(r
            .lookup(&KeyDigest::of("b"))
            .unwrap()
            .unwrap()
            .record
            .revoked_at
            .is_some());
    }

    #[test]
    fn stale_index_refuses() {
        let r = Replica::new(Duration::from_millis(200));
        r.replace(&[rec("x", 1, &["a"], false)], vec![("j1".into(), i64::MAX)]);
        std::thread::sleep(Duration::from_millis(300));
        assert!(matches!(
            r.lookup(&KeyDigest::of("a")),
            Err(StoreError::Stale(_))
        ));
        assert_eq!(r.jti_denied("j1", 0), None);
        r.mark_fresh();
        assert!(r.lookup(&KeyDigest::of("a")).unwrap().is_some());
    }
}
