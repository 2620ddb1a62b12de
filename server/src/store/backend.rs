//! The interface every backend (SQLite, PostgreSQL, Redis) implements, and
//! the change feed through which a backend tells replicas what changed.
//!
//! Synchronous on purpose, like the engine's `KeyStore`: decisions run on
//! threads that must not await. Networked backends run their I/O on their
//! own small runtime ([`NetRuntime`]) and block only the calling thread.

use std::future::Future;
use std::sync::mpsc::Sender;

use portcullis_engine::credential::apikey::{KeyDigest, KeyEntry};
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

use super::model::{OpError, StoredRecord, VersionRow};

/// What a change feed reports, in the order it learnt it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// The feed (re)connected or may have missed changes: reload everything.
    Resync,
    /// This record (or one of its keys) changed.
    Record(String),
    /// This token id was added to the denylist.
    Jti(String),
    /// The feed's connection was proven alive just now: nothing was missed so far.
    Alive,
}

/// Keeps a change feed running; dropping it stops the feed.
pub trait FeedGuard: Send + Sync {}

/// A key store backend.
pub trait Backend: Send + Sync + 'static {
    /// `sqlite`, `postgres` or `redis`.
    fn name(&self) -> &'static str;
    /// One cheap round trip.
    fn ping(&self) -> Result<(), OpError>;
    /// The entry for one digest (lookup mode).
    fn lookup(&self, digest: &KeyDigest) -> Result<Option<KeyEntry>, OpError>;
    /// Every record with its key versions (replica sync).
    fn load_all(&self) -> Result<Vec<StoredRecord>, OpError>;
    /// One record with its key versions.
    fn load_record(&self, id: &str) -> Result<Option<StoredRecord>, OpError>;
    /// Stores a new record with its first key version.
    fn insert(&self, rec: &StoredRecord) -> Result<(), OpError>;
    /// Stores many new records (bulk import); backends batch the writes.
    fn insert_batch(&self, recs: &[StoredRecord]) -> Result<(), OpError> {
        recs.iter().try_for_each(|r| self.insert(r))
    }
    /// Records ordered by id, after `after`, at most `limit`, optionally of one consumer.
    fn list(
        &self,
        consumer: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, OpError>;
    /// Sets `revoked_at` unless already set; the record after, `NotFound` when absent.
    fn revoke(&self, id: &str, at: i64) -> Result<StoredRecord, OpError>;
    /// Adds `new` to the record and makes every other version expire by
    /// `old_expire_at`; `Conflict` when the record is revoked.
    fn rotate(
        &self,
        id: &str,
        new: &VersionRow,
        old_expire_at: i64,
    ) -> Result<StoredRecord, OpError>;
    /// Adds a token id to the denylist until `until` (unix seconds).
    fn deny_jti(&self, jti: &str, until: i64) -> Result<(), OpError>;
    /// Until when a token id is denied, if it is.
    fn jti_until(&self, jti: &str) -> Result<Option<i64>, OpError>;
    /// Every denied token id still in force at `now`.
    fn load_denylist(&self, now: i64) -> Result<Vec<(String, i64)>, OpError>;
    /// Drops denylist entries that ended before `now`; how many.
    fn purge_jti(&self, now: i64) -> Result<u64, OpError>;
    /// Consumer names known to the store.
    fn consumers(&self) -> Result<Vec<String>, OpError>;
    /// Starts the change feed: events go to `tx` until the guard is dropped.
    fn watch(&self, tx: Sender<FeedEvent>) -> Result<Box<dyn FeedGuard>, OpError>;
}

/// A runtime owned by a networked backend: its connections, pools and
/// feeds live here, independent of whoever calls (the server's runtime, a
/// CLI without one, a test).
pub struct NetRuntime {
    rt: Option<Runtime>,
    handle: Handle,
}

impl NetRuntime {
    pub fn new(name: &str) -> Result<Self, OpError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
            .map_err(|e| OpError::Unavailable(format!("cannot start the store runtime: {e}")))?;
        let handle = rt.handle().clone();
        Ok(Self {
            rt: Some(rt),
            handle,
        })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `fut` to completion on this runtime, blocking the calling thread
    /// whatever it is: a plain thread, a multi-thread runtime's worker (the
    /// server: `block_in_place` hands its other tasks away first), or a
    /// current-thread runtime (tests: a scoped thread waits).
    pub fn block<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        match Handle::try_current() {
            Err(_) => self.handle.block_on(fut),
            Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.handle.block_on(fut))
            }
            Ok(_) => std::thread::scope(|s| {
                let handle = &self.handle;
                match s.spawn(move || handle.block_on(fut)).join() {
                    Ok(v) => v,
                    Err(p) => std::panic::resume_unwind(p),
                }
            }),
        }
    }
}

impl Drop for NetRuntime {
    fn drop(&mut self) {
        // A runtime may be dropped from async code (a store dropped in a
        // test or at shutdown): never block there.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Applies `timeout` to a store future and maps its error.
pub async fn bounded<T, E: std::fmt::Display>(
    timeout: std::time::Duration,
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, OpError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(OpError::Unavailable(format!("{what}: {e}"))),
        Err(_) => Err(OpError::Unavailable(format!(
            "{what}: no answer within {}",
            humantime::format_duration(timeout)
        ))),
    }
}

/// Applies `timeout` to a future whose errors are already [`OpError`]s.
pub async fn within<T>(
    timeout: std::time::Duration,
    what: &str,
    fut: impl Future<Output = Result<T, OpError>>,
) -> Result<T, OpError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(OpError::Unavailable(format!(
            "{what}: no answer within {}",
            humantime::format_duration(timeout)
        ))),
    }
}
