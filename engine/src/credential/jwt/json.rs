//! JSON pieces shared by the header and claims readers: strings that borrow
//! from the input when they can, and duplicate-member detection.
//!
//! serde_json keeps the last of two members with the same name and derive
//! only notices duplicates of fields it knows; RFC 7515 section 5.2 and RFC
//! 8725 section 3.2 ask a verifier to reject them, so both objects are read
//! with a map visitor that remembers every (unescaped) member name.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use smallvec::SmallVec;

/// A JSON string, borrowed from the input unless it had escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Str<'a>(pub Cow<'a, str>);

impl Str<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A string or an array of strings (`aud`, a scopes claim). Any other shape,
/// including an array holding a non-string, is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneOrMany<'a> {
    One(Str<'a>),
    Many(Vec<Str<'a>>),
}

impl<'de> Deserialize<'de> for OneOrMany<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(OneOrMany::One(Str(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(OneOrMany::One(Str(Cow::Owned(v.to_owned()))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<Str<'de>>()? {
                    out.push(s);
                }
                Ok(OneOrMany::Many(out))
            }
        }
        d.deserialize_any(V)
    }
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
    fn strings_borrow_without_escapes() {
        let s: Str<'_> = serde_json::from_str(r#""abc""#).unwrap();
        assert!(matches!(s.0, Cow::Borrowed("abc")));
        let s: Str<'_> = serde_json::from_str(r#""a\u0062c""#).unwrap();
        assert_eq!(s.as_str(), "abc");
        assert!(serde_json::from_str::<Str<'_>>("1").is_err());
    }

    #[test]
    fn one_or_many_rejects_mixed_arrays() {
        assert!(serde_json::from_str::<OneOrMany<'_>>(r#"["a",1]"#).is_err());
        assert!(serde_json::from_str::<OneOrMany<'_>>("1").is_err());
        assert!(serde_json::from_str::<OneOrMany<'_>>("null").is_err());
        assert_eq!(
            serde_json::from_str::<OneOrMany<'_>>(r#"["a"]"#).unwrap(),
            OneOrMany::Many(vec![Str(Cow::Borrowed("a"))])
        );
    }

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
