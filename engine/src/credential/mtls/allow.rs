//! The allowlist of an mTLS credential, validated at load.

use super::spiffe::{SpiffeId, SpiffePattern};
use crate::policy::MtlsAllow;

/// Who a verified (or proxy-vouched) client certificate says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// The single URI SAN, when it is a valid SPIFFE ID.
    pub spiffe: Option<SpiffeId>,
    /// RFC 4514 subject; `None` when no certificate was forwarded (XFCC without `Cert`).
    pub subject: Option<String>,
    /// Lowercase hex SHA-256 of the certificate DER.
    pub fingerprint: String,
}

impl Presented {
    /// SPIFFE ID, else subject, else the fingerprint.
    pub fn principal(&self) -> String {
        match (&self.spiffe, &self.subject) {
            (Some(id), _) => id.as_str().to_string(),
            (None, Some(s)) if !s.is_empty() => s.clone(),
            _ => format!("sha256:{}", self.fingerprint),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Allowlist {
    spiffe: Vec<SpiffePattern>,
    subjects: Vec<String>,
    fingerprints: Vec<String>,
}

impl Allowlist {
    pub fn new(def: &MtlsAllow) -> Result<Self, String> {
        if def.spiffe_ids.is_empty()
            && def.subjects.is_empty()
            && def.fingerprints_sha256.is_empty()
        {
            return Err("mtls `allow` is empty: list spiffe_ids, subjects or \
                        fingerprints_sha256 (no certificate is allowed by default)"
                .to_string());
        }
        let spiffe = def
            .spiffe_ids
            .iter()
            .map(|s| SpiffePattern::parse(s))
            .collect::<Result<_, _>>()?;
        let mut subjects = Vec::with_capacity(def.subjects.len());
        for s in &def.subjects {
            if s.trim().is_empty() {
                return Err("mtls subject allowlist entry is empty".to_string());
            }
            subjects.push(s.clone());
        }
        let fingerprints = def
            .fingerprints_sha256
            .iter()
            .map(|f| normalize_fingerprint(f))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            spiffe,
            subjects,
            fingerprints,
        })
    }

    pub fn permits(&self, p: &Presented) -> bool {
        let by_spiffe = p
            .spiffe
            .as_ref()
            .is_some_and(|id| self.spiffe.iter().any(|pat| pat.matches(id)));
        let by_subject = p
            .subject
            .as_ref()
            .is_some_and(|s| self.subjects.iter().any(|want| want == s));
        let by_fingerprint = self.fingerprints.contains(&p.fingerprint);
        by_spiffe || by_subject || by_fingerprint
    }
}

/// `AB:CD:...` or `abcd...`, any case, to lowercase hex without colons.
pub fn normalize_fingerprint(f: &str) -> Result<String, String> {
    let hex: String = if f.contains(':') {
        let groups: Vec<&str> = f.split(':').collect();
        if !groups.iter().all(|g| g.len() == 2) {
            return Err(format!(
                "fingerprint `{f}`: colons must separate pairs of hex digits"
            ));
        }
        groups.concat()
    } else {
        f.to_string()
    };
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("fingerprint `{f}` is not hexadecimal"));
    }
    match hex.len() {
        64 => Ok(hex.to_ascii_lowercase()),
        40 => Err(format!(
            "fingerprint `{f}` is a sha-1 fingerprint (nginx `$ssl_client_fingerprint`); \
             pin the sha-256 of the certificate der instead"
        )),
        n => Err(format!(
            "fingerprint `{f}` has {n} hex digits; a sha-256 fingerprint has 64"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_normalize() {
        let lower = "ab".repeat(32);
        assert_eq!(normalize_fingerprint(&lower.to_uppercase()).unwrap(), lower);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(normalize_fingerprint(&colons).unwrap(), lower);
        assert!(normalize_fingerprint(&"ab".repeat(20))
            .unwrap_err()
            .contains("sha-1"));
        assert!(normalize_fingerprint(&"zz".repeat(32)).is_err());
        assert!(normalize_fingerprint("abc:def").is_err());
        assert!(normalize_fingerprint(&format!("{lower}:")).is_err());
    }
}
