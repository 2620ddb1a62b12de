//! htpasswd files, bcrypt and argon2 only, checked line by line at load.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD, STANDARD_NO_PAD};
use base64::{alphabet, Engine as _};

/// bcrypt reads at most this many password bytes; longer passwords are
/// refused rather than silently truncated.
pub const BCRYPT_MAX_PASSWORD: usize = 72;

/// bcrypt's own base64 alphabet (`./A-Za-z0-9`), unpadded.
const BCRYPT_B64: GeneralPurpose = GeneralPurpose::new(&alphabet::BCRYPT, NO_PAD);

/// A stored password hash. Its `Debug` never shows the hash.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredHash {
    text: String,
    kind: HashKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    Bcrypt,
    Argon2,
}

impl fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredHash({:?}, <redacted>)", self.kind)
    }
}

impl StoredHash {
    pub fn kind(&self) -> HashKind {
        self.kind
    }

    /// The cost-bearing part of the hash: `bcrypt/12` or `$argon2id$v=19$m=...,t=..,p=..`
    /// plus the output length, so hashes of the same shape cost the same to verify.
    pub fn shape(&self) -> String {
        match self.kind {
            // `$2a$`, `$2b$` and `$2y$` cost the same: only the cost counts.
            HashKind::Bcrypt => format!("bcrypt/{}", self.text.get(4..6).unwrap_or_default()),
            HashKind::Argon2 => {
                let parts: Vec<&str> = self.text.rsplitn(3, '$').collect();
                match parts.as_slice() {
                    [hash, _salt, prefix] => format!("{prefix}/{}", hash.len()),
                    _ => self.text.clone(),
                }
            }
        }
    }

    /// Checks a password in the time the hash's parameters demand; `false` on
    /// mismatch or any error. A bcrypt password over 72 bytes is still hashed
    /// (so its refusal costs the same) and then refused.
    pub fn verify(&self, password: &str) -> bool {
        match self.kind {
            HashKind::Bcrypt => {
                let ok = bcrypt::verify(password, &self.text).unwrap_or(false);
                ok && password.len() <= BCRYPT_MAX_PASSWORD
            }
            HashKind::Argon2 => match PasswordHash::new(&self.text) {
                Ok(h) => Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok(),
                Err(_) => false,
            },
        }
    }

    /// A hash of the same kind and parameters with random salt and output,
    /// which no password matches: what an unknown user is checked against.
    pub fn dummy_like(&self) -> Result<Self, String> {
        let rng = ring::rand::SystemRandom::new();
        let random = |n: usize| -> Result<Vec<u8>, String> {
            let mut b = vec![0u8; n];
            ring::rand::SecureRandom::fill(&rng, &mut b)
                .map_err(|_| "os random number generator failed".to_string())?;
            Ok(b)
        };
        let text = match self.kind {
            HashKind::Bcrypt => {
                let head = self.text.get(..7).unwrap_or_default();
                format!(
                    "{head}{}{}",
                    BCRYPT_B64.encode(random(16)?),
                    BCRYPT_B64.encode(random(23)?)
                )
            }
            HashKind::Argon2 => {
                let h = PasswordHash::new(&self.text).map_err(|e| e.to_string())?;
                let salt_len = h.salt.map_or(16, |s| s.as_str().len() * 3 / 4);
                let out_len = h.hash.map_or(32, |o| o.len());
                let prefix = self
                    .text
                    .rsplitn(3, '$')
                    .nth(2)
                    .ok_or("argon2 hash has no salt")?;
                format!(
                    "{prefix}${}${}",
                    STANDARD_NO_PAD.encode(random(salt_len)?),
                    STANDARD_NO_PAD.encode(random(out_len)?)
                )
            }
        };
        let dummy = classify(&text).map_err(|k| format!("dummy hash is {k}"))?;
        Ok(dummy)
    }
}

/// Classifies and checks a hash; the error names the refused kind.
fn classify(hash: &str) -> Result<StoredHash, &'static str> {
    let kind = if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
        let parts = bcrypt::HashParts::from_str(hash).map_err(|_| "a malformed bcrypt")?;
        if !(4..=31).contains(&parts.get_cost()) {
            return Err("a bcrypt (cost outside 4..=31)");
        }
        HashKind::Bcrypt
    } else if ["$argon2id$", "$argon2i$", "$argon2d$"]
        .iter()
        .any(|p| hash.starts_with(p))
    {
        let h = PasswordHash::new(hash).map_err(|_| "a malformed argon2")?;
        if h.salt.is_none() || h.hash.is_none() {
            return Err("a malformed argon2 (no salt or output)");
        }
        argon2::Params::try_from(&h).map_err(|_| "an argon2 (bad parameters)")?;
        if let Some(v) = h.version {
            argon2::Version::try_from(v).map_err(|_| "an argon2 (unknown version)")?;
        }
        HashKind::Argon2
    } else {
        return Err(refused_kind(hash));
    };
    Ok(StoredHash {
        text: hash.to_string(),
        kind,
    })
}

/// Names a refused hash kind for the load error (never shows the hash).
fn refused_kind(hash: &str) -> &'static str {
    let crypt_chars = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    };
    match hash {
        h if h.starts_with("$apr1$") => "an apr1-md5",
        h if h.starts_with("{SHA}") => "a sha-1",
        h if h.starts_with("$1$") => "an md5-crypt",
        h if h.starts_with("$5$") => "a sha256-crypt",
        h if h.starts_with("$6$") => "a sha512-crypt",
        h if h.starts_with("$2x$") => "a legacy bcrypt `$2x$`",
        h if h.starts_with("$argon2") => "an unknown argon2 variant",
        h if h.starts_with('$') => "an unknown `$...$`",
        "" => "an empty",
        h if h.len() == 13 && crypt_chars(h) => "a des-crypt (or plain text)",
        _ => "a plain-text (or unknown)",
    }
}

/// One user of the file.
#[derive(Debug, Clone)]
pub struct Entry {
    pub user: String,
    pub hash: StoredHash,
}

/// Every user, in file order, and a name index.
#[derive(Debug)]
pub struct Htpasswd {
    pub entries: Vec<Entry>,
    pub index: HashMap<String, usize>,
}

impl Htpasswd {
    /// Reads and checks the whole file; errors name `file:line`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read htpasswd file `{shown}`: {e}"))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("htpasswd file `{shown}` is not utf-8"))?;
        Self::parse(&text, &shown.to_string())
    }

    pub fn parse(text: &str, shown: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut lines_of: Vec<usize> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim_end_matches([' ', '\t', '\r']);
            if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("`{shown}:{n}`: expected `user:hash`"));
            };
            if user.is_empty() || user.trim() != user || user.chars().any(char::is_control) {
                return Err(format!(
                    "`{shown}:{n}`: the user name is empty, padded or holds a control character"
                ));
            }
            let hash = classify(hash).map_err(|kind| {
                format!(
                    "`{shown}:{n}`: user `{user}` has {kind} password hash; only bcrypt \
                     (`$2a$`, `$2b$`, `$2y$`) and argon2 (`$argon2id$`, `$argon2i$`, \
                     `$argon2d$`) are accepted"
                )
            })?;
            if let Some(&first) = index.get(user) {
                let first_line = lines_of.get(first).copied().unwrap_or_default();
                return Err(format!(
                    "`{shown}:{n}`: user `{user}` is already defined on line {first_line}"
                ));
            }
            index.insert(user.to_string(), entries.len());
            lines_of.push(n);
            entries.push(Entry {
                user: user.to_string(),
                hash,
            });
        }
        if entries.is_empty() {
            return Err(format!("htpasswd file `{shown}` defines no user"));
        }
        Ok(Self { entries, index })
    }

    /// The hash shape most users share (first in file order on a tie): the
    /// dummy an unknown user is checked against is built like it.
    pub fn typical(&self) -> Option<&StoredHash> {
        let mut counts: Vec<(String, usize, &StoredHash)> = Vec::new();
        for e in &self.entries {
            let shape = e.hash.shape();
            match counts.iter_mut().find(|(s, _, _)| *s == shape) {
                Some((_, c, _)) => *c += 1,
                None => counts.push((shape, 1, &e.hash)),
            }
        }
        let mut best: Option<(usize, &StoredHash)> = None;
        for (_, c, h) in counts {
            if best.is_none_or(|(bc, _)| c > bc) {
                best = Some((c, h));
            }
        }
        best.map(|(_, h)| h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BCRYPT4: &str = "$2b$04$abcdefghijklmnopqrstuu5Ro2fVr9lRnTrRKoHXGytmaDYaR8oNO";

    #[test]
    fn dummy_has_the_same_shape_and_runs_a_real_verification() {
        let real = bcrypt::hash("pw", 4).unwrap();
        let stored = classify(&real).unwrap();
        let dummy = stored.dummy_like().unwrap();
        assert_eq!(dummy.kind(), HashKind::Bcrypt);
        assert_eq!(dummy.shape(), stored.shape());
        assert_ne!(dummy.text, stored.text);
        // Well-formed, so bcrypt does the full work and answers "no" (not an early error).
        assert!(matches!(bcrypt::verify("pw", &dummy.text), Ok(false)));

        let argon = "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$\
                     Vzs6cyoY8Nq2C0hE1ITXOl6ZfrKpfK9aDGd4CflRyQY";
        let stored = classify(argon).unwrap();
        let dummy = stored.dummy_like().unwrap();
        assert_eq!(dummy.kind(), HashKind::Argon2);
        assert_eq!(dummy.shape(), stored.shape());
        let parsed = PasswordHash::new(&dummy.text).unwrap();
        assert_eq!(
            Argon2::default().verify_password(b"pw", &parsed),
            Err(argon2::password_hash::Error::Password)
        );
    }

    #[test]
    fn typical_shape_is_the_most_common() {
        let h = Htpasswd::parse(
            &format!(
                "a:{BCRYPT4}\nb:{}\nc:{}\n",
                BCRYPT4.replace("$04$", "$05$"),
                BCRYPT4.replace("$04$", "$05$")
            ),
            "f",
        )
        .unwrap();
        assert_eq!(h.typical().unwrap().shape(), "bcrypt/05");
    }

    #[test]
    fn debug_never_shows_the_hash() {
        let s = format!("{:?}", classify(BCRYPT4).unwrap());
        assert!(!s.contains("abcdefghijkl"), "{s}");
    }
}
