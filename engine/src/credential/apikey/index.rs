//! The in-memory key index: digest → key entry.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use parking_lot::RwLock;

use super::format::KeyDigest;
use super::record::{KeyEntry, KeyStore, StoreError};

/// Digests are SHA-256 outputs, uniform already: hashing them again (SipHash)
/// would only add cost. Not a DoS risk: an attacker cannot choose digests
/// that collide without breaking SHA-256.
#[derive(Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as one write of 32 bytes; take 8 of them.
        let mut word = [0u8; 8];
        for (dst, src) in word.iter_mut().zip(bytes.iter().skip(8)) {
            *dst = *src;
        }
        self.0 ^= u64::from_le_bytes(word);
    }
}

type Map = HashMap<[u8; 32], KeyEntry, BuildHasherDefault<DigestHasher>>;

const SHARDS: usize = 64;

/// A sharded in-memory index: lookups take one uncontended read lock on one
/// of 64 shards, never a global lock, so replica updates do not stall decisions.
pub struct MemoryIndex {
    shards: Vec<RwLock<Map>>,
}

impl Default for MemoryIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryIndex {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(Map::default())).collect(),
        }
    }

    fn shard(&self, digest: &KeyDigest) -> Option<&RwLock<Map>> {
        self.shards.get(usize::from(digest.0[0]) % SHARDS)
    }

    pub fn insert(&self, digest: KeyDigest, entry: KeyEntry) {
        if let Some(s) = self.shard(&digest) {
            s.write().insert(digest.0, entry);
        }
    }

    pub fn remove(&self, digest: &KeyDigest) -> Option<KeyEntry> {
        self.shard(digest).and_then(|s| s.write().remove(&digest.0))
    }

    pub fn get(&self, digest: &KeyDigest) -> Option<KeyEntry> {
        self.shard(digest)
            .and_then(|s| s.read().get(&digest.0).cloned())
    }

    /// Replaces the whole content (a full resync), shard by shard.
    pub fn replace_all(&self, entries: impl IntoIterator<Item = (KeyDigest, KeyEntry)>) {
        let mut fresh: Vec<Map> = (0..SHARDS).map(|_| Map::default()).collect();
        for (d, e) in entries {
            if let Some(m) = fresh.get_mut(usize::from(d.0[0]) % SHARDS) {
                m.insert(d.0, e);
            }
        }
        for (slot, m) in self.shards.iter().zip(fresh) {
            *slot.write() = m;
        }
    }

    /// Applies `f` to every entry whose record has this id (revocation, updates).
    pub fn update_record(&self, id: &str, mut f: impl FnMut(&mut KeyEntry)) -> usize {
        let mut n = 0;
        for s in &self.shards {
            for e in s.write().values_mut().filter(|e| &*e.record.id == id) {
                f(e);
                n += 1;
            }
        }
        n
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl KeyStore for MemoryIndex {
    fn lookup(&self, digest: &KeyDigest) -> Result<Option<KeyEntry>, StoreError> {
        Ok(self.get(digest))
    }

    fn inspect(
        &self,
        digest: &KeyDigest,
        f: &mut dyn FnMut(&KeyEntry),
    ) -> Result<bool, StoreError> {
        // `f` runs under the shard's read lock: it only reads the entry and
        // builds an identity, so writers wait no longer than for a clone.
        let Some(shard) = self.shard(digest) else {
            return Ok(false);
        };
        Ok(match shard.read().get(&digest.0) {
            Some(e) => {
                f(e);
                true
            }
            None => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::apikey::record::KeyRecord;
    use std::sync::Arc;

    fn entry(id: &str) -> KeyEntry {
        KeyEntry {
            record: Arc::new(KeyRecord {
                id: Arc::from(id),
                consumer: "acme".into(),
                scopes: Arc::from(Vec::<String>::new()),
                created_at: 0,
                expires_at: None,
                not_before: None,
                revoked_at: None,
                allowed_cidrs: vec![],
                metadata: Default::default(),
                rate_limit: None,
            }),
            fingerprint: "fp".into(),
            key_expires_at: None,
        }
    }

    #[test]
    fn insert_lookup_remove() {
        let idx = MemoryIndex::new();
        let d = KeyDigest::of("k1");
        idx.insert(d, entry("a"));
        assert_eq!(&*idx.lookup(&d).unwrap().unwrap().record.id, "a");
        assert!(idx.lookup(&KeyDigest::of("k2")).unwrap().is_none());
        assert_eq!(idx.update_record("a", |e| e.key_expires_at = Some(5)), 1);
        assert_eq!(idx.get(&d).unwrap().key_expires_at, Some(5));
        let mut seen = None;
        assert!(idx
            .inspect(&d, &mut |e| seen = Some(e.key_expires_at))
            .unwrap());
        assert_eq!(seen, Some(Some(5)));
        assert!(!idx
            .inspect(&KeyDigest::of("k2"), &mut |_| panic!())
            .unwrap());
        idx.remove(&d);
        assert!(idx.is_empty());
    }
}
