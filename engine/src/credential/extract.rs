//! Reading credentials out of request headers, strictly: a value is taken
//! only when it is unambiguous (SECURITY.md, "Bearer and key extraction").

use crate::policy::Source;
use crate::request::{HeaderLookup, Headers};

/// What a credential found in one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found<'a> {
    Absent,
    Value(&'a str),
    /// Given twice, comma-merged, or not UTF-8 where the scheme cannot be read.
    Ambiguous,
}

/// The bearer token of the request's `Authorization` header.
///
/// The scheme is case-insensitive and may be followed by one or more spaces.
/// A repeated header, or a value with a comma (proxies merge repeated headers
/// with commas), is ambiguous. A non-Bearer scheme is absent for bearer.
pub fn bearer(headers: &Headers) -> Found<'_> {
    match headers.get_one("authorization") {
        HeaderLookup::Absent => Found::Absent,
        HeaderLookup::Repeated | HeaderLookup::NotUtf8 => Found::Ambiguous,
        HeaderLookup::One(v) => {
            if v.contains(',') {
                return Found::Ambiguous;
            }
            let v = v.trim_matches(|c| c == ' ' || c == '\t');
            let Some((scheme, rest)) = v
                .bytes()
                .position(|b| b == b' ' || b == b'\t')
                .map(|i| v.split_at(i))
            else {
                // `Bearer` with no token is a malformed bearer, not another scheme.
                return if v.eq_ignore_ascii_case("bearer") {
                    Found::Ambiguous
                } else {
                    Found::Absent
                };
            };
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Found::Absent;
            }
            let token = rest.trim_start_matches([' ', '\t']);
            if token.is_empty() || token.bytes().any(|b| b == b' ' || b == b'\t') {
                return Found::Ambiguous;
            }
            Found::Value(token)
        }
    }
}

/// The value of a header that must appear once.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Found<'a> {
    match headers.get_one(name) {
        HeaderLookup::Absent => Found::Absent,
        HeaderLookup::Repeated | HeaderLookup::NotUtf8 => Found::Ambiguous,
        HeaderLookup::One(v) => {
            let v = v.trim_matches(|c| c == ' ' || c == '\t');
            if v.is_empty() {
                Found::Absent
            } else if v.contains(',') {
                Found::Ambiguous
            } else {
                Found::Value(v)
            }
        }
    }
}

pub fn from_source<'a>(headers: &'a Headers, source: &Source) -> Found<'a> {
    match source {
        Source::Bearer => bearer(headers),
        Source::Header(name) => header(headers, name),
    }
}

/// The one value of a credential over all its sources, after `accept` filters
/// values not meant for it (an API key prefix, say). Found in two places is ambiguous.
pub fn single<'a>(
    headers: &'a Headers,
    sources: &[Source],
    accept: impl Fn(&str) -> bool,
) -> Found<'a> {
    let mut out = Found::Absent;
    for s in sources {
        match from_source(headers, s) {
            Found::Absent => {}
            Found::Ambiguous => return Found::Ambiguous,
            Found::Value(v) if !accept(v) => {}
            Found::Value(v) => {
                if matches!(out, Found::Value(_)) {
                    return Found::Ambiguous;
                }
                out = Found::Value(v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (k, v) in pairs {
            h.append(k, *v);
        }
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_with_spaces() {
        for v in ["Bearer abc", "bearer abc", "BEARER   abc", "BeArEr\tabc"] {
            assert_eq!(
                bearer(&h(&[("Authorization", v)])),
                Found::Value("abc"),
                "{v}"
            );
        }
    }

    #[test]
    fn bearer_ambiguities_deny() {
        assert_eq!(
            bearer(&h(&[
                ("authorization", "Bearer a"),
                ("Authorization", "Bearer b")
            ])),
            Found::Ambiguous
        );
        assert_eq!(
            bearer(&h(&[("authorization", "Bearer a,Bearer b")])),
            Found::Ambiguous
        );
        assert_eq!(
            bearer(&h(&[("authorization", "Bearer a b")])),
            Found::Ambiguous
        );
        assert_eq!(bearer(&h(&[("authorization", "Bearer")])), Found::Ambiguous);
        let mut bad = Headers::new();
        bad.append_invalid("authorization");
        assert_eq!(bearer(&bad), Found::Ambiguous);
    }

    #[test]
    fn other_schemes_are_absent_for_bearer() {
        assert_eq!(
            bearer(&h(&[("authorization", "Basic dXNlcjpwdw==")])),
            Found::Absent
        );
        assert_eq!(bearer(&h(&[])), Found::Absent);
    }

    #[test]
    fn found_in_two_places_is_ambiguous() {
        let hs = h(&[("x-api-key", "pk_a"), ("authorization", "Bearer pk_b")]);
        let srcs = [Source::Header("x-api-key".into()), Source::Bearer];
        assert_eq!(single(&hs, &srcs, |_| true), Found::Ambiguous);
        assert_eq!(single(&hs, &srcs, |v| v == "pk_a"), Found::Value("pk_a"));
    }
}
