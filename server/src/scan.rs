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
}
