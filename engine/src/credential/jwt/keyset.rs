//! A set of keys and how a token picks one.
//!
//! `kid` is attacker input: it is only ever compared for exact equality with
//! the `kid`s the set was loaded with (never used as a path, URL or query),
//! and a `kid` longer than [`MAX_KID`] is refused before any lookup.
//!
//! Selection, always restricted to keys bound to the token's `alg`:
//! - token has a `kid` that names a key: that key, if it is bound to the
//!   token's `alg` (else deny);
//! - token has a `kid` no key carries: the single key without a `kid` bound
//!   to the `alg` (PEM files and secrets carry no kid), else unknown-kid;
//! - token has no `kid`: the single key bound to the `alg`; with several,
//!   deny (we never try keys in turn: that multiplies the cost of a forged
//!   token and makes which key verified a token unclear).

use std::sync::atomic::{AtomicU64, Ordering};

use super::keys::VerifyingKey;
use crate::policy::JwtAlgorithm;

/// Longest `kid` looked up.
pub const MAX_KID: usize = 256;

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Keys of one credential (or one fetch of a JWKS URL).
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
    /// Unique per set built in this process: cached verifications remember it,
    /// so a rotated set never honours a token verified by a removed key.
    generation: u64,
}

/// The outcome of picking a key for a token.
#[derive(Debug)]
pub enum Selected<'a> {
    Key(&'a VerifyingKey),
    /// The `kid` is longer than [`MAX_KID`].
    KidTooLong,
    /// A `kid` no key carries, and no kid-less key to fall back to.
    UnknownKid,
    /// The `kid` names a key bound to another algorithm.
    KidForOtherAlg,
    /// No key is bound to this algorithm.
    NoKeyForAlg,
    /// No `kid`, and several keys are bound to this algorithm.
    NeedKid,
}

impl KeySet {
    pub fn new(keys: Vec<VerifyingKey>) -> Self {
        Self {
            keys,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Picks the key for a token with this `alg` and `kid` (rules above).
    pub fn select(&self, alg: JwtAlgorithm, kid: Option<&str>) -> Selected<'_> {
        if let Some(kid) = kid {
            if kid.len() > MAX_KID {
                return Selected::KidTooLong;
            }
            if let Some(k) = self.keys.iter().find(|k| k.kid() == Some(kid)) {
                return if k.alg() == alg {
                    Selected::Key(k)
                } else {
                    Selected::KidForOtherAlg
                };
            }
            let mut kidless = self
                .keys
                .iter()
                .filter(|k| k.kid().is_none() && k.alg() == alg);
            return match (kidless.next(), kidless.next()) {
                (Some(k), None) => Selected::Key(k),
                _ => Selected::UnknownKid,
            };
        }
        let mut bound = self.keys.iter().filter(|k| k.alg() == alg);
        match (bound.next(), bound.next()) {
            (Some(k), None) => Selected::Key(k),
            (None, _) => Selected::NoKeyForAlg,
            (Some(_), Some(_)) => Selected::NeedKid,
        }
    }
}
