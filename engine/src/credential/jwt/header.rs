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

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::json::{SeenNames, Str};

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
    // JSON text, ignored members included); the string reader then skips
    // its per-string check.
    let text = std::str::from_utf8(bytes).map_err(|_| HeaderError::Malformed)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let header = HeaderSeed.deserialize(&mut de).map_err(|e| classify(&e))?;
    de.end().map_err(|_| HeaderError::Malformed)?;
    if header.alg.is_none() {
        return Err(HeaderError::NoAlg);
    }
    Ok(header)
}

const DUPLICATE: &str = "duplicate member";

/// Tells a duplicate member from other malformations (the error text is ours).
pub(crate) fn is_duplicate(e: &serde_json::Error) -> bool {
    e.is_data() && e.to_string().starts_with(DUPLICATE)
}

fn classify(e: &serde_json::Error) -> HeaderError {
    if is_duplicate(e) {
        HeaderError::Duplicate
    } else {
        HeaderError::Malformed
    }
}

struct HeaderSeed;

impl<'de> DeserializeSeed<'de> for HeaderSeed {
    type Value = Header<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(HeaderVisitor)
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Header<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a jose header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut h = Header::default();
        let mut seen = SeenNames::default();
        while let Some(Str(name)) = map.next_key::<Str<'de>>()? {
            let field = name.clone();
            if !seen.insert(name) {
                return Err(de::Error::custom(DUPLICATE));
            }
            match field.as_ref() {
                "alg" => h.alg = Some(map.next_value()?),
                "kid" => h.kid = Some(map.next_value()?),
                "typ" => h.typ = Some(map.next_value()?),
                "cty" => {
                    let cty: Str<'de> = map.next_value()?;
                    if cty.as_str().eq_ignore_ascii_case("jwt") {
                        h.forbidden.get_or_insert("cty");
                    }
                }
                name @ ("crit" | "jku" | "x5u" | "jwk" | "x5c" | "b64" | "zip" | "enc") => {
                    map.next_value::<IgnoredAny>()?;
                    h.forbidden.get_or_insert(static_name(name));
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(h)
    }
}

fn static_name(name: &str) -> &'static str {
    match name {
        "crit" => "crit",
        "jku" => "jku",
        "x5u" => "x5u",
        "jwk" => "jwk",
        "x5c" => "x5c",
        "b64" => "b64",
        "zip" => "zip",
        _ => "enc",
    }
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
