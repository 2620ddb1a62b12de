//! One pass over a gateway subrequest's headers, picking out what a
//! decision needs: the original request's method and target, host and
//! client forwarding headers, and the policy's credential headers.
//!
//! A single walk with a string match costs less than a hash lookup per
//! header name, and it is on every gateway request.

use hyper::header::{HeaderMap, HeaderValue};
use portcullis_engine::Headers;
use smallvec::SmallVec;

/// A header that may be given at most once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Slot<'a> {
    #[default]
    Absent,
    One(&'a HeaderValue),
    /// Given more than once: ambiguous.
    Repeated,
}

impl<'a> Slot<'a> {
    fn put(&mut self, v: &'a HeaderValue) {
        *self = match self {
            Slot::Absent => Slot::One(v),
            _ => Slot::Repeated,
        };
    }
}

/// What one pass found.
#[derive(Debug, Default)]
pub struct Scan<'a> {
    pub original_method: Slot<'a>,
    pub original_uri: Slot<'a>,
    pub forwarded_method: Slot<'a>,
    pub forwarded_uri: Slot<'a>,
    pub forwarded_host: Slot<'a>,
    pub host: Slot<'a>,
    pub real_ip: Slot<'a>,
    /// Every `X-Forwarded-For` value, in order (one or two without an allocation).
    pub forwarded_for: SmallVec<[&'a HeaderValue; 2]>,
    /// The credential headers the policy reads, every value, in order;
    /// values that are not UTF-8 are marked so a credential read from them
    /// is refused.
    pub credentials: Headers,
}

impl<'a> Scan<'a> {
    /// Scans `headers`; `credential_names` (lowercase) are the headers the
    /// policy that will decide reads credentials from.
    pub fn of(headers: &'a HeaderMap, credential_names: &[String]) -> Self {
        let mut s = Scan::default();
        for (name, value) in headers {
            let n = name.as_str();
            match n {
                "host" => s.host.put(value),
                "x-original-method" => s.original_method.put(value),
                "x-original-uri" => s.original_uri.put(value),
                "x-forwarded-method" => s.forwarded_method.put(value),
                "x-forwarded-uri" => s.forwarded_uri.put(value),
                "x-forwarded-host" => s.forwarded_host.put(value),
                "x-forwarded-for" => s.forwarded_for.push(value),
                "x-real-ip" => s.real_ip.put(value),
                _ => {}
            }
            if credential_names.iter().any(|c| c == n) {
                match std::str::from_utf8(value.as_bytes()) {
                    Ok(text) => s.credentials.append(n, text),
                    Err(_) => s.credentials.append_invalid(n),
                }
            }
        }
        s
    }
}

/// A header value as text, as `std::str::from_utf8` reads it.
///
/// `HeaderValue::to_str` first: for the short values of a gateway's
/// headers (a method, a path, a host, an address) its byte loop costs half
/// of `from_utf8`. It accepts only visible ASCII and tabs, which
/// `from_utf8` reads the same; anything else goes through `from_utf8`.
pub fn text(v: &HeaderValue) -> Result<&str, std::str::Utf8Error> {
    match v.to_str() {
        Ok(s) => Ok(s),
        Err(_) => std::str::from_utf8(v.as_bytes()),
    }
}

/// `s.trim()`, without its search when there is nothing to trim: the
/// common case, a value with no whitespace around it. Bytes from `!` to
/// `~` are never whitespace, so when both ends are such bytes the value
/// is returned as is; anything else goes through `str::trim`.
pub fn trim(s: &str) -> &str {
    let plain = |b: &u8| (b'!'..=b'~').contains(b);
    match s.as_bytes() {
        [first, .., last] if plain(first) && plain(last) => s,
        [only] if plain(only) => s,
        _ => s.trim(),
    }
}

/// The part of `s` before its first `,` (all of it if there is none); a
/// byte loop, cheaper than a searcher for the short values of headers.
pub fn before_comma(s: &str) -> &str {
    match s.bytes().position(|b| b == b',') {
        // `,` is ASCII: `i` is a character boundary.
        Some(i) => s.get(..i).unwrap_or(""),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_engine::request::HeaderLookup;

    #[test]
    fn picks_out_what_a_decision_needs() {
        let mut h = HeaderMap::new();
        h.append("host", HeaderValue::from_static("a"));
        h.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("2.2.2.2"));
        h.append("x-original-uri", HeaderValue::from_static("/x"));
        h.append("x-original-uri", HeaderValue::from_static("/y"));
        h.append("x-api-key", HeaderValue::from_bytes(b"pk_\xff").unwrap());
        h.append("x-other", HeaderValue::from_static("ignored"));
        let s = Scan::of(&h, &["x-api-key".to_string()]);
        assert!(matches!(s.host, Slot::One(_)));
        assert_eq!(s.original_uri, Slot::Repeated);
        assert_eq!(s.forwarded_for.len(), 2);
        assert_eq!(s.credentials.len(), 1);
        assert_eq!(s.credentials.get_one("x-api-key"), HeaderLookup::NotUtf8);
    }

    #[test]
    fn text_reads_as_from_utf8() {
        for bytes in [
            &b""[..],
            b"GET",
            b"a\tb",
            b"caf\xc3\xa9",
            b"pk_\xff",
            b"\x80",
            b" x ",
        ] {
            let v = HeaderValue::from_bytes(bytes).unwrap();
            assert_eq!(text(&v).ok(), std::str::from_utf8(bytes).ok(), "{bytes:?}");
        }
    }

    #[test]
    fn trim_and_before_comma_match_std() {
        for s in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\ta\t",
            "a b",
            "\u{a0}a",
            "a\u{2003}",
            "é",
            "x,y",
            ",",
            "a,",
            " a , b",
            "\u{b}a",
        ] {
            assert_eq!(trim(s), s.trim(), "{s:?}");
            assert_eq!(before_comma(s), s.split(',').next().unwrap_or(""), "{s:?}");
        }
    }
}
