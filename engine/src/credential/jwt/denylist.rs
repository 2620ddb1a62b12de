//! Revoked token ids (`jti`), consulted after the signature is verified.
//!
//! A verifier asks its own denylist if one was given
//! ([`super::JwtVerifier::set_denylist`]), else the process-wide one
//! ([`set_global`]); with neither, no token is revoked. Cached verifications
//! ask again on every hit, so a `jti` denied after caching denies at once.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use parking_lot::RwLock;

/// A source of revoked token ids. Implementations backed by a store should
/// answer `true` when they cannot tell (fail closed).
pub trait JtiDenylist: Send + Sync {
    fn is_denied(&self, jti: &str) -> bool;
}

/// An in-memory denylist whose entries expire (typically at the token's `exp`,
/// after which the token is refused anyway).
#[derive(Default)]
pub struct MemoryDenylist {
    entries: RwLock<HashMap<Box<str>, SystemTime>>,
}

impl std::fmt::Debug for MemoryDenylist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryDenylist")
            .field("entries", &self.entries.read().len())
            .finish()
    }
}

impl MemoryDenylist {
    pub fn new() -> Self {
        Self::default()
    }

    /// Denies `jti` until `until`.
    pub fn deny(&self, jti: &str, until: SystemTime) {
        self.entries.write().insert(jti.into(), until);
    }

    /// Lifts a denial.
    pub fn allow(&self, jti: &str) {
        self.entries.write().remove(jti);
    }

    /// Drops entries that expired before `now`.
    pub fn purge_expired(&self, now: SystemTime) {
        self.entries.write().retain(|_, until| *until > now);
    }

    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.read().is_empty()
    }
}

impl JtiDenylist for MemoryDenylist {
    fn is_denied(&self, jti: &str) -> bool {
        self.entries
            .read()
            .get(jti)
            .is_some_and(|until| *until > SystemTime::now())
    }
}

// ArcSwap needs a sized pointee: the handle is wrapped once.
struct Handle(Arc<dyn JtiDenylist>);

static GLOBAL: OnceLock<ArcSwapOption<Handle>> = OnceLock::new();

fn global_slot() -> &'static ArcSwapOption<Handle> {
    GLOBAL.get_or_init(ArcSwapOption::empty)
}

/// Sets (or clears) the process-wide denylist.
pub fn set_global(list: Option<Arc<dyn JtiDenylist>>) {
    global_slot().store(list.map(|l| Arc::new(Handle(l))));
}

/// The process-wide denylist, if set.
pub fn global() -> Option<Arc<dyn JtiDenylist>> {
    global_slot().load().as_ref().map(|h| Arc::clone(&h.0))
}

/// Asks the process-wide denylist, without taking a reference count.
pub(crate) fn globally_denied(jti: &str) -> bool {
    global_slot()
        .load()
        .as_ref()
        .is_some_and(|h| h.0.is_denied(jti))
}
