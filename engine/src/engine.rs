//! The engine: a compiled policy behind `ArcSwap`, the rate-limit state that
//! outlives reloads, and the key store.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::compile::{compile, CompiledPolicy};
use crate::credential::apikey::KeyStore;
use crate::decision::Decision;
use crate::policy::{self, Diagnostics, Policy};
use crate::ratelimit::{Limiter, RateLimiter};
use crate::request::Request;

pub use crate::decide::DecideOptions;

/// Decides requests against the current policy; reloads swap it atomically.
///
/// Cheap to share: wrap in an `Arc`. A decision loads the current policy
/// once and uses only it, so it never sees a mix of two policies.
pub struct Engine {
    current: ArcSwap<CompiledPolicy>,
    limiter: Arc<dyn Limiter>,
    keys: Arc<dyn KeyStore>,
    generation: AtomicU64,
}

impl Engine {
    /// Compiles a validated policy into a new engine.
    pub fn new(policy: &Policy, keys: Arc<dyn KeyStore>) -> Result<Self, Diagnostics> {
        let compiled = compile(policy)?;
        Ok(Self {
            current: ArcSwap::from_pointee(compiled),
            limiter: Arc::new(RateLimiter::new()),
            keys,
            generation: AtomicU64::new(1),
        })
    }

    /// Loads, validates and compiles a policy file or directory.
    pub fn from_path(path: &Path, keys: Arc<dyn KeyStore>) -> Result<Self, Diagnostics> {
        Self::new(&policy::load(path)?, keys)
    }

    pub fn decide(&self, req: &Request) -> Decision {
        self.decide_with(req, &DecideOptions::default())
    }

    pub fn decide_with(&self, req: &Request, opts: &DecideOptions) -> Decision {
        let policy = self.current.load();
        crate::decide::decide(
            &policy,
            self.limiter.as_ref(),
            self.keys.as_ref(),
            req,
            opts,
        )
    }

    /// Compiles `policy` and swaps it in only if that succeeds; returns the new generation.
    /// On error the old policy keeps serving.
    pub fn reload(&self, policy: &Policy) -> Result<u64, Diagnostics> {
        let compiled = compile(policy)?;
        self.current.store(Arc::new(compiled));
        Ok(self.generation.fetch_add(1, Ordering::SeqCst) + 1)
    }

    pub fn reload_path(&self, path: &Path) -> Result<u64, Diagnostics> {
        self.reload(&policy::load(path)?)
    }

    /// Increments on every successful reload; 1 for the first policy.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The policy serving now.
    pub fn policy(&self) -> Arc<CompiledPolicy> {
        self.current.load_full()
    }

    pub fn keys(&self) -> &Arc<dyn KeyStore> {
        &self.keys
    }

    pub fn limiter(&self) -> &Arc<dyn Limiter> {
        &self.limiter
    }

    /// Replaces where rate-limit state lives (a shared store for a fleet).
    /// Call before serving; state held by the previous limiter is not carried over.
    pub fn with_limiter(mut self, limiter: Arc<dyn Limiter>) -> Self {
        self.limiter = limiter;
        self
    }
}
