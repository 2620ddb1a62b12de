//! From the HTTP request a gateway sent to the engine's [`Request`]: which
//! original method and target it names, its headers, client and host.

use hyper::header::HeaderMap;
use portcullis_engine::Headers;

use crate::scan::{Scan, Slot};

/// Why a forward-auth subrequest does not say what to decide on (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// Neither `X-Original-Method` nor `X-Forwarded-Method` was sent.
    #[error("missing `X-Original-Method` or `X-Forwarded-Method` header")]
    MissingMethod,
    /// Neither `X-Original-URI` nor `X-Forwarded-Uri` was sent.
    #[error("missing `X-Original-URI` or `X-Forwarded-Uri` header")]
    MissingUri,
    /// A header naming the original request was repeated or is not text.
    #[error("`{0}` header is repeated or not text")]
    Unreadable(&'static str),
    /// The `X-Original-*` and `X-Forwarded-*` headers name different requests.
    #[error("`{0}` and `{1}` disagree")]
    Conflict(&'static str, &'static str),
    /// The method is not an HTTP token.
    #[error("the original method is not a valid HTTP method")]
    BadMethod,
    /// The URI is not a path (origin form, starting with `/`).
    #[error("the original URI must be a path starting with `/`")]
    BadUri,
}

/// The original request a forward-auth subrequest is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Uppercase method.
    pub method: String,
    /// Path and query as the client sent them.
    pub uri: String,
}

fn one<'a>(slot: Slot<'a>, shown: &'static str) -> Result<Option<&'a str>, TargetError> {
    match slot {
        Slot::Absent => Ok(None),
        Slot::One(v) => crate::scan::text(v)
            .map(|s| Some(crate::scan::trim(s)))
            .map_err(|_| TargetError::Unreadable(shown)),
        Slot::Repeated => Err(TargetError::Unreadable(shown)),
    }
}

/// Picks the pair of headers naming the original request: nginx's
/// `X-Original-*` or Traefik/Caddy's `X-Forwarded-*`.
///
/// A gateway passes the client's own headers on to the subrequest, so a
/// client behind Traefik can send `X-Original-URI: /public` to make the
/// decision about another path. When both families are present they must
/// name the same request, or the subrequest is refused.
pub fn target(h: &Scan<'_>) -> Result<Target, TargetError> {
    let mut t = Target {
        method: String::new(),
        uri: String::new(),
    };
    target_into(h, &mut t.method, &mut t.uri)?;
    Ok(t)
}

/// [`target`], written into `method` and `uri` (cleared first) so that a
/// caller can reuse their memory from one request to the next.
pub fn target_into(h: &Scan<'_>, method: &mut String, uri: &mut String) -> Result<(), TargetError> {
    let om = one(h.original_method, "x-original-method")?;
    let ou = one(h.original_uri, "x-original-uri")?;
    let fm = one(h.forwarded_method, "x-forwarded-method")?;
    let fu = one(h.forwarded_uri, "x-forwarded-uri")?;
    let m = pick(om, fm, ("x-original-method", "x-forwarded-method"))?
        .ok_or(TargetError::MissingMethod)?;
    let u = pick(ou, fu, ("x-original-uri", "x-forwarded-uri"))?.ok_or(TargetError::MissingUri)?;
    if m.is_empty() || !m.bytes().all(is_tchar) {
        return Err(TargetError::BadMethod);
    }
    if !u.starts_with('/') {
        return Err(TargetError::BadUri);
    }
    method.clear();
    method.push_str(m);
    method.make_ascii_uppercase();
    uri.clear();
    uri.push_str(u);
    Ok(())
}

fn pick<'a>(
    a: Option<&'a str>,
    b: Option<&'a str>,
    names: (&'static str, &'static str),
) -> Result<Option<&'a str>, TargetError> {
    match (a, b) {
        (Some(x), Some(y)) if x != y => Err(TargetError::Conflict(names.0, names.1)),
        (Some(x), _) | (None, Some(x)) => Ok(Some(x)),
        (None, None) => Ok(None),
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Every header, every value, in order; values that are not UTF-8 are
/// marked so that a credential read from them is refused.
pub fn headers(h: &HeaderMap) -> Headers {
    let mut out = Headers::new();
    for (name, value) in h {
        match std::str::from_utf8(value.as_bytes()) {
            Ok(s) => out.append(name.as_str(), s),
            Err(_) => out.append_invalid(name.as_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{HeaderName, HeaderValue};
    use portcullis_engine::request::HeaderLookup;

    fn target(h: &HeaderMap) -> Result<Target, TargetError> {
        super::target(&Scan::of(h, &[]))
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn nginx_and_traefik_shapes() {
        let t = target(&map(&[
            ("x-original-method", "get"),
            ("x-original-uri", "/v1/a?b=c"),
        ]))
        .unwrap();
        assert_eq!(
            t,
            Target {
                method: "GET".into(),
                uri: "/v1/a?b=c".into()
            }
        );
        let t = target(&map(&[
            ("x-forwarded-method", "POST"),
            ("x-forwarded-uri", "/x"),
        ]))
        .unwrap();
        assert_eq!(t.method, "POST");
    }

    #[test]
    fn missing_conflicting_and_bad_targets() {
        assert_eq!(
            target(&map(&[("x-original-uri", "/")])),
            Err(TargetError::MissingMethod)
        );
        assert_eq!(
            target(&map(&[("x-forwarded-method", "GET")])),
            Err(TargetError::MissingUri)
        );
        assert!(matches!(
            target(&map(&[
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "/admin"),
                ("x-original-uri", "/public"),
            ])),
            Err(TargetError::Conflict(..))
        ));
        assert!(target(&map(&[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/same"),
            ("x-original-uri", "/same"),
        ]))
        .is_ok());
        assert_eq!(
            target(&map(&[
                ("x-original-method", "GET"),
                ("x-original-uri", "http://evil/x")
            ])),
            Err(TargetError::BadUri)
        );
        assert_eq!(
            target(&map(&[
                ("x-original-method", "G T"),
                ("x-original-uri", "/")
            ])),
            Err(TargetError::BadMethod)
        );
        assert!(matches!(
            target(&map(&[
                ("x-original-method", "GET"),
                ("x-original-uri", "/a"),
                ("x-original-uri", "/b"),
            ])),
            Err(TargetError::Unreadable(_))
        ));
    }

    #[test]
    fn non_utf8_values_are_marked() {
        let mut h = HeaderMap::new();
        h.append("x-api-key", HeaderValue::from_bytes(b"pk_\xff").unwrap());
        h.append(
            "x-other",
            HeaderValue::from_bytes("caf\u{e9}".as_bytes()).unwrap(),
        );
        let out = headers(&h);
        assert_eq!(out.get_one("x-api-key"), HeaderLookup::NotUtf8);
        assert_eq!(out.get_one("x-other"), HeaderLookup::One("caf\u{e9}"));
    }
}
