//! HTTP Basic (RFC 7617) against an htpasswd file of bcrypt or argon2 hashes.
//!
//! - The file is read and every line checked at load ([`htpasswd`]): other
//!   hash kinds (MD5 `$apr1$`, `{SHA}`, crypt, plain) and duplicate users are
//!   refused with `file:line`.
//! - The header is read strictly ([`header`]): scheme case-insensitive,
//!   strict base64, split at the first `:`; repeated or comma-merged is
//!   ambiguous; other schemes are absent.
//! - An unknown user is checked against a dummy hash shaped like the file's
//!   typical one, so it costs what a wrong password costs.
//! - Successes are remembered for `cache_ttl` ([`cache`]), keyed by an HMAC
//!   of `user:password`; failures never are.

pub mod cache;
pub mod header;
pub mod htpasswd;

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use self::cache::SuccessCache;
use self::header::Basic;
use self::htpasswd::{Htpasswd, StoredHash};
use crate::credential::{CredentialType, Identity, Outcome};
use crate::decision::Reason;
use crate::policy::BasicDef;
use crate::request::Request;

pub struct BasicVerifier {
    realm: String,
    users: Htpasswd,
    /// What an unknown user's password is checked against.
    dummy: StoredHash,
    /// Boxed: the HMAC key state is large, and verifiers live in one enum.
    cache: Box<SuccessCache>,
    grants: Arc<[String]>,
    /// Password hashes computed so far (tests and metrics; never a secret).
    hash_runs: AtomicU64,
}

impl fmt::Debug for BasicVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicVerifier")
            .field("realm", &self.realm)
            .field("users", &self.users.entries.len())
            .field("cache_entries", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl BasicVerifier {
    /// Reads and checks `htpasswd_file` (relative to `base_dir`).
    pub fn new(def: &BasicDef, base_dir: &Path) -> Result<Self, String> {
        let users = Htpasswd::load(&base_dir.join(&def.htpasswd_file.value))?;
        let dummy = users
            .typical()
            .ok_or("htpasswd file defines no user")?
            .dummy_like()?;
        Ok(Self {
            realm: def.realm.clone(),
            dummy,
            users,
            cache: Box::new(SuccessCache::new(def.cache_ttl, cache::MAX_ENTRIES)?),
            grants: def.grants.clone().into(),
            hash_runs: AtomicU64::new(0),
        })
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// How many password hashes this verifier has computed.
    pub fn hash_verifications(&self) -> u64 {
        self.hash_runs.load(Ordering::Relaxed)
    }

    /// How many successes are remembered right now.
    pub fn cached_successes(&self) -> usize {
        self.cache.len()
    }

    pub fn verify(&self, req: &Request, now: SystemTime) -> Outcome {
        let (user, password) = match header::parse(&req.headers) {
            Basic::Absent => return Outcome::Absent,
            Basic::Ambiguous => {
                return Outcome::Invalid(
                    Reason::AmbiguousCredential,
                    "authorization header given more than once",
                )
            }
            Basic::Malformed(why) => return Outcome::Invalid(Reason::CredentialInvalid, why),
            Basic::Credentials { user, password } => (user, password),
        };
        let key = self.cache.key(&user, &password);
        if let Some(i) = key.and_then(|k| self.cache.get(&k, now)) {
            return self.identity(i);
        }
        let found = self.users.index.get(&user).copied();
        let hash = found
            .and_then(|i| self.users.entries.get(i))
            .map_or(&self.dummy, |e| &e.hash);
        // Unknown users take the same path through a hash of the same cost.
        self.hash_runs.fetch_add(1, Ordering::Relaxed);
        let matched = hash.verify(&password);
        match found {
            Some(i) if matched => {
                if let Some(k) = key {
                    self.cache.insert(k, i, now);
                }
                self.identity(i)
            }
            _ => Outcome::Invalid(Reason::CredentialInvalid, "unknown user or wrong password"),
        }
    }

    fn identity(&self, i: usize) -> Outcome {
        match self.users.entries.get(i) {
            Some(e) => Outcome::Valid(Identity {
                kind: CredentialType::Basic,
                principal: e.user.as_str().into(),
                consumer: None,
                scopes: Some(Arc::clone(&self.grants)),
                fingerprint: None,
                rate_override: None,
            }),
            None => Outcome::Invalid(Reason::StoreUnavailable, "internal: unknown basic user"),
        }
    }
}
