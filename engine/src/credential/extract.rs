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
        HeaderLookup::One(v) => bearer_value(v),
    }
}

/// The bearer token in one `Authorization` value. Every scan is a memchr
/// (a token is hundreds of bytes, read on every request), and the token
/// bytes are scanned once: the comma and whitespace checks share a pass.
fn bearer_value(v: &str) -> Found<'_> {
    // Leading and trailing blanks only: these stop at the first other byte.
    let v = v.trim_matches(|c| c == ' ' || c == '\t');
    let Some(i) = memchr::memchr2(b' ', b'\t', v.as_bytes()) else {
        if memchr::memchr(b',', v.as_bytes()).is_some() {
            return Found::Ambiguous;
        }
        // `Bearer` with no token is a malformed bearer, not another scheme.
        return if v.eq_ignore_ascii_case("bearer") {
            Found::Ambiguous
        } else {
            Found::Absent
        };
    };
    let (scheme, rest) = v.split_at(i);
    // A comma anywhere in the value is ambiguous, whatever the scheme: the
    // scheme holds no blank, the blanks after it no comma, and the token's
    // own scan below looks for commas and blanks together.
    if memchr::memchr(b',', scheme.as_bytes()).is_some() {
        return Found::Ambiguous;
    }
    let token = rest.trim_start_matches([' ', '\t']);
    let is_bearer = scheme.eq_ignore_ascii_case("bearer");
    if let Some(j) = memchr::memchr3(b',', b' ', b'\t', token.as_bytes()) {
        // A blank inside a bearer token is ambiguous; in another scheme's
        // value it is that scheme's business, but a comma still is ours.
        let comma = token
            .as_bytes()
            .get(j..)
            .is_some_and(|t| memchr::memchr(b',', t).is_some());
        return if is_bearer || comma {
            Found::Ambiguous
        } else {
            Found::Absent
        };
    }
    if !is_bearer {
        return Found::Absent;
    }
    if token.is_empty() {
        return Found::Ambiguous;
    }
    Found::Value(token)
}

/// The value of a header that must appear once.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Found<'a> {
    match headers.get_one(name) {
        HeaderLookup::Absent => Found::Absent,
        HeaderLookup::Repeated | HeaderLookup::NotUtf8 => Found::Ambiguous,
        HeaderLookup::One(v) => {
            let v = trim_blanks(v);
            if v.is_empty() {
                Found::Absent
            } else if has_comma(v.as_bytes()) {
                Found::Ambiguous
            } else {
                Found::Value(v)
            }
        }
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `v` without leading and trailing blanks; a value that neither starts nor
/// ends with one (nearly all) is returned without running the trimmer.
fn trim_blanks(v: &str) -> &str {
    let b = v.as_bytes();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) if !is_blank(f) && !is_blank(l) => v,
        _ => v.trim_matches(|c| c == ' ' || c == '\t'),
    }
}

/// Is there a comma in `v`? Eight bytes per step (a word compared against
/// eight commas): an API key is ~44 bytes, short enough that `memchr`'s
/// setup costs more than the scan.
fn has_comma(v: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const COMMAS: u64 = ONES * b',' as u64;
    let word_has_comma = |w: &[u8]| {
        <[u8; 8]>::try_from(w).map_or(true, |b| {
            let x = u64::from_le_bytes(b) ^ COMMAS;
            // Exactly "some byte of x is zero" (no false answers either way).
            x.wrapping_sub(ONES) & !x & HIGHS != 0
        })
    };
    if v.len() < 8 {
        return v.contains(&b',');
    }
    // Whole words, then the last eight bytes (overlapping the previous
    // word) rather than a byte loop over the remainder.
    v.chunks_exact(8).any(word_has_comma) || v.get(v.len() - 8..).is_some_and(word_has_comma)
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

    /// The extraction as first written (byte loops), kept as the reference
    /// the memchr version must agree with.
    fn bearer_reference(v: &str) -> Found<'_> {
        if v.contains(',') {
            return Found::Ambiguous;
        }
        let v = v.trim_matches(|c| c == ' ' || c == '\t');
        let Some((scheme, rest)) = v
            .bytes()
            .position(|b| b == b' ' || b == b'\t')
            .map(|i| v.split_at(i))
        else {
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

    #[test]
    fn bearer_edges_agree_with_the_reference() {
        for v in [
            "Basic a b",
            "Basic a,b",
            "Basic a, b",
            "Bea,rer abc",
            ",Bearer abc",
            "Bearer abc,",
            "Bearer a\tb",
            " \tBearer abc \t",
            "Bearer",
            "bearer,",
            "Basic",
            "",
            " ",
            "Bearer  ",
            "Bearer \t abc",
            "Basic dXNlcjpwdw==",
        ] {
            assert_eq!(bearer_value(v), bearer_reference(v), "{v:?}");
        }
        assert_eq!(bearer_value("Basic a b"), Found::Absent);
        assert_eq!(bearer_value("Basic a,b"), Found::Ambiguous);
        assert_eq!(bearer_value("Bea,rer abc"), Found::Ambiguous);
    }

    proptest::proptest! {
        #[test]
        fn bearer_matches_the_reference(v in "[BbEeAaRr ,\t.xy]{0,24}") {
            proptest::prop_assert_eq!(bearer_value(&v), bearer_reference(&v));
        }

        #[test]
        fn bearer_prefixed_matches_the_reference(t in "[a-z ,\t.]{0,16}", s in "(Bearer|bearer|Basic|)[ \t,]{0,3}") {
            let v = format!("{s}{t}");
            proptest::prop_assert_eq!(bearer_value(&v), bearer_reference(&v));
        }
    }

    #[test]
    fn the_word_comma_scan_agrees_with_a_byte_scan() {
        for len in 0..40 {
            for at in 0..=len {
                let mut v = vec![b'a'; len];
                if at < len {
                    v[at] = b',';
                }
                assert_eq!(has_comma(&v), v.contains(&b','), "{len} {at}");
            }
        }
        for b in 0..=255u8 {
            let v = [b; 9];
            assert_eq!(has_comma(&v), b == b',', "{b}");
            let w = [b'a', b, b'+', b'-', b',' ^ 1, b'.', 0x2d, 0xac, b];
            assert_eq!(has_comma(&w), w.contains(&b','), "{b}");
        }
        for v in ["a", " a", "a ", "\ta\t", " ", "", "  a b  "] {
            assert_eq!(trim_blanks(v), v.trim_matches(|c| c == ' ' || c == '\t'));
        }
    }

    proptest::proptest! {
        #[test]
        fn header_comma_scan_matches_contains(v in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            proptest::prop_assert_eq!(has_comma(&v), v.contains(&b','));
        }
    }

    #[test]
    fn found_in_two_places_is_ambiguous() {
        let hs = h(&[("x-api-key", "pk_a"), ("authorization", "Bearer pk_b")]);
        let srcs = [Source::Header("x-api-key".into()), Source::Bearer];
        assert_eq!(single(&hs, &srcs, |_| true), Found::Ambiguous);
        assert_eq!(single(&hs, &srcs, |v| v == "pk_a"), Found::Value("pk_a"));
    }
}
