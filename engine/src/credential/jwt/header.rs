//! The JOSE header, read before the signature is checked and so treated as
//! hostile: every member name is checked for duplicates, trailing bytes are
//! refused, and members that would make a verifier fetch or trust key
//! material from the token itself deny the token.
//!
//! Decisions (docs/jwt.md):
//! - `crit` present in any form, `[]` included: deny (we implement no extension).
//! - `jku`, `x5u`, `jwk`, `x5c`: deny on presence. They are never dereferenced;
//!   a token that carries them was not made by an issuer we configured keys for.
//! - `b64`, `zip`, `enc`: deny (unencoded payloads, compression, JWE).
//! - `cty`: `JWT` (nested token) denies; other values are ignored.
//! - every other member is ignored, as RFC 7515 asks.

use super::json::{known, Str};
use super::reader::{ObjectReader, ReadError, Value};

/// The members the verifier acts on.
#[derive(Debug, Default)]
pub struct Header<'a> {
    pub alg: Option<Str<'a>>,
    pub kid: Option<Str<'a>>,
    pub typ: Option<Str<'a>>,
    /// A member that denies the token by its mere presence, if any.
    pub forbidden: Option<&'static str>,
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Not a JSON object, bad UTF-8, trailing bytes, or a member of the wrong type.
    #[error("jwt header is not a valid json object")]
    Malformed,
    /// The same member name appears twice.
    #[error("jwt header has a duplicate member")]
    Duplicate,
    /// No `alg` member.
    #[error("jwt header has no `alg`")]
    NoAlg,
}

/// Parses the decoded header bytes.
pub fn parse(bytes: &[u8]) -> Result<Header<'_>, HeaderError> {
    // UTF-8 checked once over the whole header (RFC 8259 asks for UTF-8
    // JSON text, ignored members included); the reader then slices strings
    // out of it without checking each again.
    let text = std::str::from_utf8(bytes).map_err(|_| HeaderError::Malformed)?;
    let malformed = |e: ReadError| match e {
        ReadError::Duplicate => HeaderError::Duplicate,
        _ => HeaderError::Malformed,
    };
    let mut obj = ObjectReader::new(text).map_err(malformed)?;
    let mut h = Header::default();
    while let Some(name) = obj.next_member().map_err(malformed)? {
        // Every name the header acts on is short: matched by its packing.
        let Some(p) = name.packed else {
            obj.skip_value().map_err(malformed)?;
            continue;
        };
        match p {
            ALG => h.alg = Some(string(obj.value().map_err(malformed)?)?),
            KID => h.kid = Some(string(obj.value().map_err(malformed)?)?),
            TYP => h.typ = Some(string(obj.value().map_err(malformed)?)?),
            CTY => {
                let cty = string(obj.value().map_err(malformed)?)?;
                if cty.as_str().eq_ignore_ascii_case("jwt") {
                    h.forbidden.get_or_insert("cty");
                }
            }
            _ => {
                obj.skip_value().map_err(malformed)?;
                if let Some(member) = forbidden(p) {
                    h.forbidden.get_or_insert(member);
                }
            }
        }
    }
    obj.finish().map_err(malformed)?;
    if h.alg.is_none() {
        return Err(HeaderError::NoAlg);
    }
    Ok(h)
}

fn string(v: Value<'_>) -> Result<Str<'_>, HeaderError> {
    match v {
        Value::Str(s) => Ok(s),
        _ => Err(HeaderError::Malformed),
    }
}

const ALG: u64 = known("alg");
const KID: u64 = known("kid");
const TYP: u64 = known("typ");
const CTY: u64 = known("cty");

/// The members that deny a token by their presence, packed.
const FORBIDDEN: [(u64, &str); 8] = [
    (known("crit"), "crit"),
    (known("jku"), "jku"),
    (known("x5u"), "x5u"),
    (known("jwk"), "jwk"),
    (known("x5c"), "x5c"),
    (known("b64"), "b64"),
    (known("zip"), "zip"),
    (known("enc"), "enc"),
];

fn forbidden(packed: u64) -> Option<&'static str> {
    FORBIDDEN
        .iter()
        .find(|(p, _)| *p == packed)
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_members() {
        let h = parse(br#"{"alg":"ES256","kid":"k1","typ":"at+jwt","x":1}"#).unwrap();
        assert_eq!(h.alg.unwrap().as_str(), "ES256");
        assert_eq!(h.kid.unwrap().as_str(), "k1");
        assert_eq!(h.typ.unwrap().as_str(), "at+jwt");
        assert!(h.forbidden.is_none());
    }

    #[test]
    fn forbidden_members_by_name() {
        for name in ["crit", "jku", "x5u", "jwk", "x5c", "b64", "zip", "enc"] {
            let doc = format!(r#"{{"alg":"ES256","{name}":1}}"#);
            assert_eq!(parse(doc.as_bytes()).unwrap().forbidden, Some(name));
            // Escaped, the name is the same member.
            let escaped = format!(
                r#"{{"alg":"ES256","\u{:04x}{}":1}}"#,
                name.as_bytes()[0],
                &name[1..]
            );
            assert_eq!(
                parse(escaped.as_bytes()).unwrap().forbidden,
                Some(name),
                "{escaped}"
            );
        }
        for name in ["cri", "critt", "JKU", "x5c ", "a-long-member-name"] {
            let doc = format!(r#"{{"alg":"ES256","{name}":1}}"#);
            assert_eq!(parse(doc.as_bytes()).unwrap().forbidden, None, "{name}");
        }
        let h = parse(br#"{"alg":"ES256","cty":"JWT"}"#).unwrap();
        assert_eq!(h.forbidden, Some("cty"));
        let h = parse(br#"{"\u0061lg":"ES256","t\u0079p":"JWT"}"#).unwrap();
        assert_eq!(h.alg.unwrap().as_str(), "ES256");
        assert_eq!(h.typ.unwrap().as_str(), "JWT");
    }

    #[test]
    fn duplicates_even_escaped_or_unknown() {
        for j in [
            r#"{"alg":"ES256","alg":"HS256"}"#,
            r#"{"alg":"ES256","\u0061lg":"HS256"}"#,
            r#"{"alg":"ES256","x":1,"x":2}"#,
        ] {
            assert_eq!(
                parse(j.as_bytes()).unwrap_err(),
                HeaderError::Duplicate,
                "{j}"
            );
        }
    }

    #[test]
    fn malformed_shapes() {
        for j in [
            r#"{"alg":"ES256"}x"#,
            r#"{"alg":"ES256"}{}"#,
            r#"["alg"]"#,
            r#"{"alg":1}"#,
            r#"{"alg":"ES256","kid":5}"#,
            "",
        ] {
            assert_eq!(
                parse(j.as_bytes()).unwrap_err(),
                HeaderError::Malformed,
                "{j}"
            );
        }
        assert_eq!(parse(b"{}").unwrap_err(), HeaderError::NoAlg);
        assert_eq!(parse(b"\xff").unwrap_err(), HeaderError::Malformed);
        // Bad UTF-8 inside a member the verifier ignores still refuses.
        assert_eq!(
            parse(b"{\"alg\":\"ES256\",\"x\":\"\xff\"}").unwrap_err(),
            HeaderError::Malformed
        );
    }

    #[test]
    fn key_bearing_members_are_flagged() {
        for (j, name) in [
            (r#"{"alg":"ES256","crit":[]}"#, "crit"),
            (r#"{"alg":"ES256","crit":["exp"]}"#, "crit"),
            (r#"{"alg":"ES256","jku":"https://evil/"}"#, "jku"),
            (r#"{"alg":"ES256","x5u":"https://evil/"}"#, "x5u"),
            (r#"{"alg":"ES256","jwk":{"kty":"EC"}}"#, "jwk"),
            (r#"{"alg":"ES256","x5c":["MII"]}"#, "x5c"),
            (r#"{"alg":"ES256","cty":"JWT"}"#, "cty"),
        ] {
            assert_eq!(parse(j.as_bytes()).unwrap().forbidden, Some(name), "{j}");
        }
    }
}
