//! JSON pieces shared by the header and claims readers: strings that borrow
//! from the input when they can, and duplicate-member detection.
//!
//! RFC 7515 section 5.2 and RFC 8725 section 3.2 ask a verifier to reject
//! duplicate members (serde_json would keep the last), so the reader
//! ([`super::reader`]) remembers every (unescaped) member name.

use std::borrow::Cow;
use std::collections::HashSet;

use smallvec::SmallVec;

/// A JSON string, borrowed from the input unless it had escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Str<'a>(pub Cow<'a, str>);

impl Str<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A string or an array of strings (`aud`, a scopes claim), as the claims
/// rules accept them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneOrMany<'a> {
    One(Str<'a>),
    Many(Vec<Str<'a>>),
}

/// Remembers member names of one object and reports a repeat.
///
/// A linear scan while the object is small (headers and claims usually
/// have fewer than a dozen members), a hash set past that, so a token
/// stuffed with members costs linear time, not quadratic. The scan compares
/// a tag of each name (its length, first and last bytes) and the names
/// themselves only when tags agree. The small list lives inline (no
/// allocation per header or claims set).
#[derive(Default)]
pub struct SeenNames<'a> {
    small: SmallVec<[(u64, Cow<'a, str>); LINEAR_LIMIT]>,
    large: Option<HashSet<Cow<'a, str>>>,
}

const LINEAR_LIMIT: usize = 16;

fn tag(name: &str) -> u64 {
    let b = name.as_bytes();
    let first = b.first().copied().unwrap_or(0);
    let last = b.last().copied().unwrap_or(0);
    (b.len() as u64) << 16 | u64::from(first) << 8 | u64::from(last)
}

impl<'a> SeenNames<'a> {
    /// Records `name`; false if it was already seen.
    pub fn insert(&mut self, name: Cow<'a, str>) -> bool {
        if let Some(set) = self.large.as_mut() {
            return set.insert(name);
        }
        let t = tag(&name);
        if self.small.iter().any(|(st, s)| *st == t && *s == name) {
            return false;
        }
        if self.small.len() == LINEAR_LIMIT {
            let mut set: HashSet<Cow<'a, str>> = self.small.drain(..).map(|(_, s)| s).collect();
            set.insert(name);
            self.large = Some(set);
            return true;
        }
        self.small.push((t, name));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_names_switches_to_a_set() {
        let mut s = SeenNames::default();
        for i in 0..40 {
            assert!(s.insert(Cow::Owned(format!("k{i}"))));
        }
        assert!(!s.insert(Cow::Borrowed("k3")));
        assert!(!s.insert(Cow::Borrowed("k39")));
    }
}
