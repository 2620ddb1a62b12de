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
/// Names of at most seven bytes (every registered claim and header
/// parameter) are packed with their length into a `u64`, which is exact:
/// two names collide only if they are equal, so a short name is one integer
/// compare per name seen. Longer names are compared by a tag (length, first
/// and last byte) and then by their bytes. Past [`LINEAR_LIMIT`] names the
/// lists move into hash sets, so a token stuffed with members costs linear
/// time, not quadratic. Up to the limit nothing is allocated.
#[derive(Default)]
pub struct SeenNames<'a> {
    short: [u64; LINEAR_LIMIT],
    shorts: usize,
    long: SmallVec<[(u64, Cow<'a, str>); 2]>,
    large: Option<Box<Large<'a>>>,
}

#[derive(Default)]
struct Large<'a> {
    short: HashSet<u64>,
    long: HashSet<Cow<'a, str>>,
}

const LINEAR_LIMIT: usize = 16;

/// A name of at most seven bytes, packed with its length into a `u64`;
/// `None` if longer. Injective: the length is the top byte and the bytes
/// fill the rest in order, so equal packings mean equal names. `const`, so
/// the names the verifier knows are packed at compile time and matched
/// with one integer compare.
pub const fn packed(b: &[u8]) -> Option<u64> {
    if b.len() > 7 {
        return None;
    }
    let mut acc = (b.len() as u64) << 56;
    let (mut rest, mut shift) = (b, 0);
    while let [first, tail @ ..] = rest {
        acc |= (*first as u64) << shift;
        (rest, shift) = (tail, shift + 8);
    }
    Some(acc)
}

/// [`packed`] of a name the code knows to be at most seven bytes. Used
/// only to build constants, where a longer name stops the build: a silent
/// never-matching value would let, say, a forbidden header member through.
#[allow(clippy::panic)]
pub const fn known(name: &str) -> u64 {
    match packed(name.as_bytes()) {
        Some(p) => p,
        None => panic!("a known member name must be at most seven bytes"),
    }
}

fn tag(name: &str) -> u64 {
    let b = name.as_bytes();
    let first = b.first().copied().unwrap_or(0);
    let last = b.last().copied().unwrap_or(0);
    (b.len() as u64) << 16 | u64::from(first) << 8 | u64::from(last)
}

impl<'a> SeenNames<'a> {
    /// Records `name`; false if it was already seen.
    pub fn insert(&mut self, name: Cow<'a, str>) -> bool {
        let short = packed(name.as_bytes());
        self.insert_packed(&name, short)
    }

    /// [`Self::insert`] with `short` already worked out (`packed(name)`);
    /// `name` is copied only if it has no packing (a borrowed name is a
    /// reference, an unescaped one is cloned).
    // `&Cow`, not `&str`: cloning it keeps a borrowed name borrowed for `'a`.
    #[allow(clippy::ptr_arg)]
    #[inline]
    pub fn insert_packed(&mut self, name: &Cow<'a, str>, short: Option<u64>) -> bool {
        if let Some(large) = self.large.as_mut() {
            return match short {
                Some(p) => large.short.insert(p),
                None => large.long.insert(name.clone()),
            };
        }
        let seen = match short {
            Some(p) => self
                .short
                .get(..self.shorts)
                .unwrap_or_default()
                .contains(&p),
            None => {
                let t = tag(name);
                self.long.iter().any(|(lt, l)| *lt == t && l == name)
            }
        };
        if seen {
            return false;
        }
        if self.shorts + self.long.len() == LINEAR_LIMIT {
            let mut large = Large {
                short: self
                    .short
                    .get(..self.shorts)
                    .unwrap_or_default()
                    .iter()
                    .copied()
                    .collect(),
                long: self.long.drain(..).map(|(_, l)| l).collect(),
            };
            match short {
                Some(p) => large.short.insert(p),
                None => large.long.insert(name.clone()),
            };
            self.large = Some(Box::new(large));
            return true;
        }
        match (short, self.short.get_mut(self.shorts)) {
            (Some(p), Some(slot)) => {
                *slot = p;
                self.shorts += 1;
            }
            _ => self.long.push((tag(name), name.clone())),
        }
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
        assert!(s.insert(Cow::Borrowed("a-long-member-name")));
        assert!(!s.insert(Cow::Borrowed("a-long-member-name")));
    }

    /// Short (packed) and long names, in every order, against a plain set.
    #[test]
    fn agrees_with_a_set() {
        let names = [
            "",
            "a",
            "ab",
            "abc",
            "exp",
            "exq",
            "abcdefg",
            "abcdefgh",
            "abcdefgi",
            "é",
            "éé",
            "a\u{0}",
            "\u{0}",
            "a-long-member-name",
            "a-long-member-namf",
            "x9",
        ];
        for n in [1usize, 5, 16, 17, 40] {
            let mut s = SeenNames::default();
            let mut reference = HashSet::new();
            for i in 0..n * 3 {
                let name = match names.get(i % names.len()) {
                    Some(base) if i < names.len() || i % 2 == 0 => (*base).to_string(),
                    _ => format!("n{}", i % (n + 1)),
                };
                assert_eq!(
                    s.insert(Cow::Owned(name.clone())),
                    reference.insert(name.clone()),
                    "{n} {i} {name:?}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "at most seven bytes")]
    fn a_long_known_name_is_refused() {
        let _ = std::hint::black_box(known(std::hint::black_box("abcdefgh")));
    }

    #[test]
    fn packing_is_exact() {
        let p = |s: &str| packed(s.as_bytes());
        assert_ne!(p("a"), p("a\u{0}"));
        assert_ne!(p(""), p("\u{0}"));
        assert_eq!(p("abcdefgh"), None);
        assert_ne!(p("abc"), p("abd"));
        assert_eq!(p("abc"), Some(known("abc")));
    }
}
