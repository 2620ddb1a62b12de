//! A short-lived memory of successful Basic verifications, so bcrypt's cost
//! is not paid on every request of a client that sends the same credentials.
//!
//! Keyed by HMAC-SHA256(per-process random key, `user:password`): the map
//! holds no password and no unkeyed digest of one, so a memory dump gives
//! nothing to brute-force offline, and map lookups leak nothing useful by
//! timing. Only successes are stored; a wrong password is never remembered.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use ring::hmac;

/// Most entries kept; beyond it, expired entries and then the oldest go.
pub const MAX_ENTRIES: usize = 4096;

pub type CacheKey = [u8; 32];

pub struct SuccessCache {
    key: hmac::Key,
    ttl: Duration,
    max: usize,
    entries: Mutex<HashMap<CacheKey, Entry>>,
}

#[derive(Clone, Copy)]
struct Entry {
    user: usize,
    at: SystemTime,
}

impl SuccessCache {
    pub fn new(ttl: Duration, max: usize) -> Result<Self, String> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .map_err(|_| "os random number generator failed".to_string())?;
        Ok(Self {
            key,
            ttl,
            max,
            entries: Mutex::new(HashMap::new()),
        })
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.max > 0
    }

    /// The cache key of one `user:password` pair (user names hold no `:`).
    /// `None` (never in practice) means "do not cache": no fallback key that could collide.
    pub fn key(&self, user: &str, password: &str) -> Option<CacheKey> {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(user.as_bytes());
        ctx.update(b":");
        ctx.update(password.as_bytes());
        CacheKey::try_from(ctx.sign().as_ref()).ok()
    }

    /// The user index remembered for `key`, if stored less than `ttl` before `now`.
    pub fn get(&self, key: &CacheKey, now: SystemTime) -> Option<usize> {
        if !self.enabled() {
            return None;
        }
        let mut map = self.entries.lock();
        let e = *map.get(key)?;
        if fresh(e.at, now, self.ttl) {
            Some(e.user)
        } else {
            map.remove(key);
            None
        }
    }

    pub fn insert(&self, key: CacheKey, user: usize, now: SystemTime) {
        if !self.enabled() {
            return;
        }
        let mut map = self.entries.lock();
        if map.len() >= self.max && !map.contains_key(&key) {
            let ttl = self.ttl;
            map.retain(|_, e| fresh(e.at, now, ttl));
            if map.len() >= self.max {
                if let Some(oldest) = map.iter().min_by_key(|(_, e)| e.at).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        map.insert(key, Entry { user, at: now });
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Stored at `at`, still fresh at `now`: a clock that went backwards is not fresh.
fn fresh(at: SystemTime, now: SystemTime, ttl: Duration) -> bool {
    now.duration_since(at).is_ok_and(|age| age < ttl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn entries_expire_and_are_bounded() {
        let c = SuccessCache::new(Duration::from_secs(10), 2).unwrap();
        let a = c.key("a", "pw").unwrap();
        assert_ne!(a, c.key("a", "pw2").unwrap());
        assert_ne!(a, c.key("b", "pw").unwrap());
        c.insert(a, 7, t(100));
        assert_eq!(c.get(&a, t(105)), Some(7));
        assert_eq!(c.get(&a, t(110)), None);
        assert_eq!(c.get(&a, t(99)), None);
        let k = |u: &str| c.key(u, "").unwrap();
        let (k1, k2, k3) = (k("1"), k("2"), k("3"));
        c.insert(k1, 1, t(200));
        c.insert(k2, 2, t(201));
        c.insert(k3, 3, t(202));
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&k1, t(203)), None);
        assert_eq!(c.get(&k3, t(203)), Some(3));
    }

    #[test]
    fn zero_ttl_disables() {
        let c = SuccessCache::new(Duration::ZERO, 16).unwrap();
        let k = c.key("a", "b").unwrap();
        c.insert(k, 0, t(1));
        assert!(c.is_empty());
        assert_eq!(c.get(&k, t(1)), None);
    }

    #[test]
    fn keys_differ_per_process_key() {
        let a = SuccessCache::new(Duration::from_secs(1), 1).unwrap();
        let b = SuccessCache::new(Duration::from_secs(1), 1).unwrap();
        assert_ne!(a.key("u", "p"), b.key("u", "p"));
        assert!(a.key("u", "p").is_some());
    }
}
