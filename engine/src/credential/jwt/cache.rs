//! Verified-token cache: a token → the identity it proved.
//!
//! Keyed by SHA-256 of the token's signing input (`header.payload`), and
//! an entry also holds the token's signature segment, which a hit must
//! match byte for byte. Split at its last dot, a token is exactly its
//! signing input and its signature, so a hit is exactly a token verified
//! before, as with a digest of the whole token; hashing only the signing
//! input spares every hit hashing the signature (342 characters for
//! RS256, most of the token). The signature is stored beside the entry,
//! not in it, so a hit clones the entry without copying the signature.
//!
//! Sharded (a mutex per shard, picked by digest bytes) so concurrent
//! decisions rarely meet on a lock and none is global. Bounded: each shard
//! holds `capacity / SHARDS` entries; a full shard first drops expired
//! entries, then an arbitrary one. An entry never outlives the token's
//! `exp` (tokens without `exp` are not cached), remembers the key-set
//! generation that verified it (a rotated set makes it a miss), and a hit
//! re-checks `exp`, `nbf` and the `jti` denylist.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use aws_lc_rs::digest;
use parking_lot::Mutex;

use crate::credential::Identity;

const SHARDS: usize = 32;

/// SHA-256 of a token's signing input.
pub type Digest = [u8; 32];

/// What a token is looked up and stored by (see the module's comment).
#[derive(Debug, Clone, Copy)]
pub struct Key<'t> {
    pub digest: Digest,
    /// The token after its last dot.
    pub signature: &'t str,
}

/// The key of `token`; `None` for a value without a dot (never a JWS).
pub fn key_of(token: &str) -> Option<Key<'_>> {
    let (signing_input, signature) = token.rsplit_once('.')?;
    let d = digest::digest(&digest::SHA256, signing_input.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    Some(Key {
        digest: out,
        signature,
    })
}

/// A cached verification.
#[derive(Debug, Clone)]
pub struct Entry {
    pub identity: Identity,
    /// `exp` in seconds since the epoch (always present: no exp, no caching).
    pub exp: f64,
    pub nbf: Option<f64>,
    pub jti: Option<Arc<str>>,
    pub generation: u64,
}

// The key is already a uniformly distributed digest: use its first bytes.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 |= u64::from(*b) << (8 * i);
        }
    }
}

/// Per digest: the verified token's signature segment (a hit must match
/// it) and the entry.
type Shard = HashMap<Digest, (Box<str>, Entry), BuildHasherDefault<DigestHasher>>;

pub struct TokenCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("per_shard", &self.per_shard)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache of about `capacity` entries; `None` for 0 (caching off).
    pub fn new(capacity: usize) -> Option<Self> {
        if capacity == 0 {
            return None;
        }
        let shards = SHARDS.min(capacity);
        let per_shard = capacity.div_ceil(shards);
        Some(Self {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard,
        })
    }

    fn shard(&self, key: &Digest) -> Option<&Mutex<Shard>> {
        // Byte 31: independent of the bytes the in-shard hash uses.
        let i = usize::from(key[31]) % self.shards.len();
        self.shards.get(i)
    }

    /// The entry for `key`, if present and made from the same signature.
    pub fn get(&self, key: &Key<'_>) -> Option<Entry> {
        self.shard(&key.digest)?
            .lock()
            .get(&key.digest)
            .filter(|(signature, _)| **signature == *key.signature)
            .map(|(_, e)| e.clone())
    }

    pub fn remove(&self, key: &Digest) {
        if let Some(s) = self.shard(key) {
            s.lock().remove(key);
        }
    }

    /// Stores an entry, evicting if the shard is full.
    pub fn insert(&self, key: &Key<'_>, entry: Entry, now: f64) {
        let Some(shard) = self.shard(&key.digest) else {
            return;
        };
        let mut s = shard.lock();
        if s.len() >= self.per_shard && !s.contains_key(&key.digest) {
            s.retain(|_, (_, e)| e.exp > now);
            if s.len() >= self.per_shard {
                if let Some(victim) = s.keys().next().copied() {
                    s.remove(&victim);
                }
            }
        }
        s.insert(key.digest, (key.signature.into(), entry));
    }

    /// Number of entries (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
