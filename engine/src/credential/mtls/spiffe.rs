//! SPIFFE IDs, validated strictly (SECURITY.md, "SPIFFE IDs"), and the
//! allowlist patterns they are matched against.
//!
//! Written here rather than taken from a crate: the SPIFFE crates on
//! crates.io pull in a Workload API client (gRPC, tokio) for what is a
//! character-class check, and their wildcard matching is not ours.

use std::fmt;

/// Longest SPIFFE ID accepted, in bytes (SPIFFE ID spec, section 2.3).
pub const MAX_ID_BYTES: usize = 2048;
/// Longest trust domain accepted, in bytes (SPIFFE ID spec, section 2.1).
pub const MAX_TRUST_DOMAIN_BYTES: usize = 255;

const SCHEME: &str = "spiffe://";

/// Why a string is not a SPIFFE ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeError {
    /// The string does not start with `spiffe://` (lowercase).
    #[error("does not start with `spiffe://`")]
    Scheme,
    /// Longer than 2048 bytes.
    #[error("is longer than 2048 bytes")]
    TooLong,
    /// The trust domain is empty.
    #[error("has an empty trust domain")]
    EmptyTrustDomain,
    /// The trust domain is longer than 255 bytes.
    #[error("has a trust domain longer than 255 bytes")]
    TrustDomainTooLong,
    /// The trust domain has a character outside `[a-z0-9._-]` (uppercase, port, userinfo, ...).
    #[error("has a trust domain character outside `[a-z0-9._-]`")]
    TrustDomainChar,
    /// A path segment is empty (`//` or a trailing slash).
    #[error("has an empty path segment or a trailing slash")]
    EmptySegment,
    /// A path segment is `.` or `..`.
    #[error("has a `.` or `..` path segment")]
    DotSegment,
    /// A path segment has a character outside `[a-zA-Z0-9._-]` (query, fragment, percent-encoding, ...).
    #[error("has a path character outside `[a-zA-Z0-9._-]`")]
    SegmentChar,
}

/// A syntactically valid SPIFFE ID.
#[derive(Clone, PartialEq, Eq)]
pub struct SpiffeId {
    raw: String,
    /// Byte length of the trust domain, which starts right after `spiffe://`.
    td_len: usize,
}

impl SpiffeId {
    /// Parses a SPIFFE ID, refusing every shape the SPIFFE spec refuses.
    pub fn parse(s: &str) -> Result<Self, SpiffeError> {
        let rest = s.strip_prefix(SCHEME).ok_or(SpiffeError::Scheme)?;
        if s.len() > MAX_ID_BYTES {
            return Err(SpiffeError::TooLong);
        }
        let (td, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        check_trust_domain(td)?;
        if let Some(path) = path.strip_prefix('/') {
            for seg in path.split('/') {
                check_segment(seg)?;
            }
        }
        Ok(Self {
            raw: s.to_string(),
            td_len: td.len(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn trust_domain(&self) -> &str {
        self.raw
            .get(SCHEME.len()..SCHEME.len() + self.td_len)
            .unwrap_or_default()
    }

    /// The path segments (none for a trust-domain-only ID).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        let path = self
            .raw
            .get(SCHEME.len() + self.td_len..)
            .unwrap_or_default();
        path.strip_prefix('/')
            .into_iter()
            .flat_map(|p| p.split('/'))
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({})", self.raw)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn check_trust_domain(td: &str) -> Result<(), SpiffeError> {
    if td.is_empty() {
        return Err(SpiffeError::EmptyTrustDomain);
    }
    if td.len() > MAX_TRUST_DOMAIN_BYTES {
        return Err(SpiffeError::TrustDomainTooLong);
    }
    // `:` (port), `@` (userinfo), `%`, `?`, `#` and uppercase all fall outside this class.
    if !td
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err(SpiffeError::TrustDomainChar);
    }
    Ok(())
}

fn check_segment(seg: &str) -> Result<(), SpiffeError> {
    if seg.is_empty() {
        return Err(SpiffeError::EmptySegment);
    }
    if seg == "." || seg == ".." {
        return Err(SpiffeError::DotSegment);
    }
    if !seg
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(SpiffeError::SegmentChar);
    }
    Ok(())
}

/// An allowlist entry: an exact SPIFFE ID, or a prefix ending in a `*` segment
/// that stands for one or more further whole segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiffePattern {
    trust_domain: String,
    segments: Vec<String>,
    wildcard: bool,
}

impl SpiffePattern {
    /// Parses an allowlist entry. `*` is allowed only as the whole last segment,
    /// and an exact entry must name a workload (have a path).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (base, wildcard) = match s.strip_suffix("/*") {
            Some(base) => (base, true),
            None => (s, false),
        };
        if base.contains('*') {
            return Err(format!(
                "spiffe id pattern `{s}`: `*` is allowed only as the whole last segment"
            ));
        }
        let id = SpiffeId::parse(base).map_err(|e| format!("spiffe id pattern `{s}` {e}"))?;
        let segments: Vec<String> = id.segments().map(str::to_string).collect();
        if !wildcard && segments.is_empty() {
            return Err(format!(
                "spiffe id pattern `{s}` names a trust domain, not a workload; \
                 write `{s}/*` to allow every workload of it"
            ));
        }
        Ok(Self {
            trust_domain: id.trust_domain().to_string(),
            segments,
            wildcard,
        })
    }

    /// Whole-segment match: the trust domain exactly, then every pattern segment
    /// exactly; a wildcard requires at least one more segment.
    pub fn matches(&self, id: &SpiffeId) -> bool {
        if id.trust_domain() != self.trust_domain {
            return false;
        }
        let mut segs = id.segments();
        for want in &self.segments {
            if segs.next() != Some(want.as_str()) {
                return false;
            }
        }
        let more = segs.next().is_some();
        more == self.wildcard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_parse() {
        for s in [
            "spiffe://example.org/ns/prod/sa/api",
            "spiffe://td",
            "spiffe://a-b_c.d9/A.b-C_d/x",
        ] {
            assert!(SpiffeId::parse(s).is_ok(), "{s}");
        }
        let id = SpiffeId::parse("spiffe://td/a/b").unwrap();
        assert_eq!(id.trust_domain(), "td");
        assert_eq!(id.segments().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            SpiffeId::parse("spiffe://td").unwrap().segments().count(),
            0
        );
    }

    #[test]
    fn malformed_ids_are_refused() {
        let long = format!("spiffe://td/{}", "a".repeat(MAX_ID_BYTES));
        let long_td = format!("spiffe://{}/a", "a".repeat(256));
        let cases: &[(&str, SpiffeError)] = &[
            ("SPIFFE://td/a", SpiffeError::Scheme),
            ("spiffe:/td/a", SpiffeError::Scheme),
            ("https://td/a", SpiffeError::Scheme),
            ("spiffe:///a", SpiffeError::EmptyTrustDomain),
            ("spiffe://TD/a", SpiffeError::TrustDomainChar),
            ("spiffe://td:443/a", SpiffeError::TrustDomainChar),
            ("spiffe://user@td/a", SpiffeError::TrustDomainChar),
            ("spiffe://td?x/a", SpiffeError::TrustDomainChar),
            ("spiffe://td/a/", SpiffeError::EmptySegment),
            ("spiffe://td/", SpiffeError::EmptySegment),
            ("spiffe://td//a", SpiffeError::EmptySegment),
            ("spiffe://td/./a", SpiffeError::DotSegment),
            ("spiffe://td/a/..", SpiffeError::DotSegment),
            ("spiffe://td/a?b=c", SpiffeError::SegmentChar),
            ("spiffe://td/a#b", SpiffeError::SegmentChar),
            ("spiffe://td/a%2Fb", SpiffeError::SegmentChar),
            ("spiffe://td/a b", SpiffeError::SegmentChar),
            ("spiffe://td/é", SpiffeError::SegmentChar),
            (&long, SpiffeError::TooLong),
            (&long_td, SpiffeError::TrustDomainTooLong),
        ];
        for (s, want) in cases {
            assert_eq!(SpiffeId::parse(s), Err(*want), "{s}");
        }
    }

    #[test]
    fn patterns_match_whole_segments() {
        let p = SpiffePattern::parse("spiffe://td/ns/prod/*").unwrap();
        let m = |s: &str| p.matches(&SpiffeId::parse(s).unwrap());
        assert!(m("spiffe://td/ns/prod/sa/api"));
        assert!(m("spiffe://td/ns/prod/x"));
        assert!(!m("spiffe://td/ns/prod"));
        assert!(!m("spiffe://td/ns/production/x"));
        assert!(!m("spiffe://td.evil.com/ns/prod/x"));
        assert!(!m("spiffe://evil.td/ns/prod/x"));
        let exact = SpiffePattern::parse("spiffe://td/ns/prod").unwrap();
        assert!(exact.matches(&SpiffeId::parse("spiffe://td/ns/prod").unwrap()));
        assert!(!exact.matches(&SpiffeId::parse("spiffe://td/ns/prod/x").unwrap()));
        assert!(!exact.matches(&SpiffeId::parse("spiffe://td/ns").unwrap()));
        let any = SpiffePattern::parse("spiffe://td/*").unwrap();
        assert!(any.matches(&SpiffeId::parse("spiffe://td/a").unwrap()));
        assert!(!any.matches(&SpiffeId::parse("spiffe://td").unwrap()));
    }

    #[test]
    fn wildcard_only_as_last_whole_segment() {
        for bad in [
            "spiffe://td/ns/*/sa",
            "spiffe://td/ns/prod*",
            "spiffe://td/ns/*x",
            "spiffe://*/ns",
            "spiffe://td/**",
            "spiffe://td/*/*",
            "spiffe://td",
            "spiffe://td/ns/",
        ] {
            assert!(SpiffePattern::parse(bad).is_err(), "{bad}");
        }
    }
}
