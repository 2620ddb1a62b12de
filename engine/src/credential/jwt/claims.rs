//! The claims set, read after the signature verified, and checked against
//! the credential's rules. Read with a map visitor that refuses duplicate
//! members and keeps only the members a rule looks at, each read once into
//! a [`Claim`] that records its JSON type; the rules then check the type
//! they need (a configured claim name may coincide with a registered one).

use std::fmt;
use std::sync::Arc;

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use super::json::{OneOrMany, SeenNames, Str};

/// What the rules need from a credential definition, prepared at load.
#[derive(Debug, Clone)]
pub struct Rules {
    pub issuer: Option<String>,
    pub audience: Vec<String>,
    pub leeway: f64,
    pub max_lifetime: Option<f64>,
    /// Claims that must be present (not null); at most 64.
    pub require: Vec<String>,
    pub principal: String,
    pub scopes: Option<String>,
}

/// One claim's value, typed in the same pass that parses it (strings
/// borrowed from the payload). Shapes no rule accepts collapse to `Other`.
#[derive(Debug, Clone, PartialEq)]
enum Claim<'a> {
    Null,
    Num(f64),
    Str(Str<'a>),
    /// An array of strings only (`aud`, a scopes claim).
    Strs(Vec<Str<'a>>),
    /// A boolean, an object, or an array holding anything but strings.
    Other,
}

impl<'de> Deserialize<'de> for Claim<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ClaimVisitor)
    }
}

struct ClaimVisitor;

impl<'de> Visitor<'de> for ClaimVisitor {
    type Value = Claim<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a json value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Claim::Null)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Claim::Other)
    }
    // Integers convert with rounding to nearest, as parsing their text would.
    #[allow(clippy::cast_precision_loss)]
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Claim::Num(v as f64))
    }
    #[allow(clippy::cast_precision_loss)]
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Claim::Num(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(if v.is_finite() {
            Claim::Num(v)
        } else {
            Claim::Other
        })
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Claim::Str(Str(std::borrow::Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Claim::Str(Str(std::borrow::Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Claim::Str(Str(std::borrow::Cow::Owned(v))))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(e) = seq.next_element::<Element<'de>>()? {
            match e {
                Element(Some(s)) => out.push(s),
                Element(None) => {
                    // Not all strings: read the rest only to check the syntax.
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    return Ok(Claim::Other);
                }
            }
        }
        Ok(Claim::Strs(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Claim::Other)
    }
}

/// An array element: a string, or `None` for anything else (read through).
struct Element<'a>(Option<Str<'a>>);

impl<'de> Deserialize<'de> for Element<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(ClaimVisitor)? {
            Claim::Str(s) => Ok(Element(Some(s))),
            _ => Ok(Element(None)),
        }
    }
}

/// The members of interest, typed, borrowed from the decoded payload.
#[derive(Default)]
struct Raw<'a> {
    exp: Option<Claim<'a>>,
    nbf: Option<Claim<'a>>,
    iat: Option<Claim<'a>>,
    iss: Option<Claim<'a>>,
    aud: Option<Claim<'a>>,
    jti: Option<Claim<'a>>,
    principal: Option<Claim<'a>>,
    scopes: Option<Claim<'a>>,
    /// Bit i set: `require[i]` is present and not null.
    required: u64,
}

/// A verified token's facts, once the rules passed their type checks.
#[derive(Debug, Clone)]
pub struct Claims {
    pub exp: Option<f64>,
    pub nbf: Option<f64>,
    pub iat: Option<f64>,
    pub principal: Arc<str>,
    pub scopes: Option<Arc<[String]>>,
    pub jti: Option<Arc<str>>,
}

/// Why a claims set was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimsError {
    /// Expired (`exp` + leeway is past): `credential_expired`.
    Expired,
    /// Not yet valid (`nbf` - leeway is ahead): `credential_expired` too.
    NotYetValid,
    /// Anything else: `credential_invalid`, with a detail for traces.
    Invalid(&'static str),
}

fn invalid(msg: &'static str) -> ClaimsError {
    ClaimsError::Invalid(msg)
}

struct RawSeed<'r>(&'r Rules);

impl<'de> DeserializeSeed<'de> for RawSeed<'_> {
    type Value = Raw<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(RawVisitor(self.0))
    }
}

struct RawVisitor<'r>(&'r Rules);

const DUPLICATE: &str = "duplicate member";

impl<'de> Visitor<'de> for RawVisitor<'_> {
    type Value = Raw<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a jwt claims object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let rules = self.0;
        let mut raw = Raw::default();
        let mut seen = SeenNames::default();
        while let Some(Str(name)) = map.next_key::<Str<'de>>()? {
            let key = name.clone();
            if !seen.insert(name) {
                return Err(de::Error::custom(DUPLICATE));
            }
            let key = key.as_ref();
            let mut bits = 0u64;
            for (i, r) in rules.require.iter().enumerate() {
                if r == key {
                    bits |= 1 << i;
                }
            }
            let registered = matches!(key, "exp" | "nbf" | "iat" | "iss" | "aud" | "jti");
            let is_principal = key == rules.principal;
            let is_scopes = rules.scopes.as_deref() == Some(key);
            if !(registered || is_principal || is_scopes || bits != 0) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let v: Claim<'de> = map.next_value()?;
            if v != Claim::Null {
                raw.required |= bits;
            }
            if is_principal {
                raw.principal = Some(v.clone());
            }
            if is_scopes {
                raw.scopes = Some(v.clone());
            }
            match key {
                "exp" => raw.exp = Some(v),
                "nbf" => raw.nbf = Some(v),
                "iat" => raw.iat = Some(v),
                "iss" => raw.iss = Some(v),
                "aud" => raw.aud = Some(v),
                "jti" => raw.jti = Some(v),
                _ => {}
            }
        }
        Ok(raw)
    }
}

// Typed readers over the parsed claims: the wrong type is refused with
// the claim's own message.

fn date(v: Option<Claim<'_>>, msg: &'static str) -> Result<Option<f64>, ClaimsError> {
    match v {
        None => Ok(None),
        Some(Claim::Num(f)) if f.is_finite() => Ok(Some(f)),
        Some(_) => Err(invalid(msg)),
    }
}

fn string<'a>(v: Option<Claim<'a>>, msg: &'static str) -> Result<Option<Str<'a>>, ClaimsError> {
    match v {
        None => Ok(None),
        Some(Claim::Str(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(msg)),
    }
}

fn strings<'a>(
    v: Option<Claim<'a>>,
    msg: &'static str,
) -> Result<Option<OneOrMany<'a>>, ClaimsError> {
    match v {
        None => Ok(None),
        Some(Claim::Str(s)) => Ok(Some(OneOrMany::One(s))),
        Some(Claim::Strs(list)) => Ok(Some(OneOrMany::Many(list))),
        Some(_) => Err(invalid(msg)),
    }
}

/// Reads and checks a claims set. `now` is seconds since the epoch.
pub fn check(payload: &[u8], rules: &Rules, now: f64) -> Result<Claims, ClaimsError> {
    // UTF-8 checked once for the whole claims set, ignored members included
    // (a string reader over bytes checks only the strings it returns).
    let text = std::str::from_utf8(payload)
        .map_err(|_| invalid("jwt claims are not a valid json object"))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let raw = RawSeed(rules).deserialize(&mut de).map_err(|e| {
        if super::header::is_duplicate(&e) {
            invalid("jwt claims have a duplicate member")
        } else {
            invalid("jwt claims are not a valid json object")
        }
    })?;
    de.end()
        .map_err(|_| invalid("jwt claims are not a valid json object"))?;

    // Types first: a claim of the wrong type denies whatever its value says.
    let exp = date(raw.exp, "`exp` is not a number")?;
    let nbf = date(raw.nbf, "`nbf` is not a number")?;
    let iat = date(raw.iat, "`iat` is not a number")?;
    let iss = string(raw.iss, "`iss` is not a string")?;
    let aud = strings(raw.aud, "`aud` is not a string or array of strings")?;
    let jti = string(raw.jti, "`jti` is not a string")?;
    let principal = string(raw.principal, "principal claim is not a string")?;
    let scopes = strings(
        raw.scopes,
        "scopes claim is not a string or array of strings",
    )?;

    let want = if rules.require.len() >= 64 {
        u64::MAX
    } else {
        (1u64 << rules.require.len()) - 1
    };
    if raw.required & want != want {
        return Err(invalid("a required claim is missing"));
    }

    let leeway = rules.leeway;
    if let Some(exp) = exp {
        // RFC 7519 4.1.4: the current time must be before `exp`.
        if now >= exp + leeway {
            return Err(ClaimsError::Expired);
        }
    }
    if let Some(nbf) = nbf {
        if now + leeway < nbf {
            return Err(ClaimsError::NotYetValid);
        }
    }
    if let Some(iat) = iat {
        if iat > now + leeway {
            return Err(invalid("`iat` is in the future"));
        }
    }
    if let Some(max) = rules.max_lifetime {
        match (iat, exp) {
            (Some(iat), Some(exp)) if exp - iat <= max => {}
            (Some(_), Some(_)) => return Err(invalid("token lifetime exceeds `max_lifetime`")),
            _ => return Err(invalid("`max_lifetime` needs both `iat` and `exp`")),
        }
    }
    if let Some(want) = &rules.issuer {
        match &iss {
            Some(s) if s.as_str() == want => {}
            Some(_) => return Err(invalid("`iss` is not the configured issuer")),
            None => return Err(invalid("`iss` is missing")),
        }
    }
    if !rules.audience.is_empty() {
        let ok = match &aud {
            None => return Err(invalid("`aud` is missing")),
            Some(OneOrMany::One(a)) => rules.audience.iter().any(|w| w == a.as_str()),
            Some(OneOrMany::Many(list)) => list
                .iter()
                .any(|a| rules.audience.iter().any(|w| w == a.as_str())),
        };
        if !ok {
            return Err(invalid("`aud` does not name this audience"));
        }
    }
    let principal = match principal {
        Some(p) if !p.as_str().is_empty() => Arc::<str>::from(p.as_str()),
        Some(_) => return Err(invalid("principal claim is empty")),
        None => return Err(invalid("principal claim is missing")),
    };
    let scopes = rules.scopes.as_ref().map(|_| -> Arc<[String]> {
        match &scopes {
            None => Arc::from(Vec::new()),
            Some(OneOrMany::One(s)) => s
                .as_str()
                .split(' ')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            Some(OneOrMany::Many(list)) => list.iter().map(|s| s.as_str().to_owned()).collect(),
        }
    });
    Ok(Claims {
        exp,
        nbf,
        iat,
        principal,
        scopes,
        jti: jti.map(|j| Arc::from(j.as_str())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            issuer: Some("https://iss/".into()),
            audience: vec!["api".into()],
            leeway: 30.0,
            max_lifetime: None,
            require: vec!["sub".into(), "exp".into()],
            principal: "sub".into(),
            scopes: Some("scope".into()),
        }
    }

    fn ok(j: &str) -> Claims {
        check(j.as_bytes(), &rules(), 1000.0).unwrap()
    }

    fn err(j: &str) -> ClaimsError {
        check(j.as_bytes(), &rules(), 1000.0).unwrap_err()
    }

    fn claim(t: &str) -> Claim<'_> {
        serde_json::from_str::<Claim<'_>>(t).unwrap()
    }

    const BASE: &str = r#""iss":"https://iss/","aud":"api","sub":"u1","exp":2000"#;

    #[test]
    fn accepts_and_reads_scopes() {
        let c = ok(&format!(r#"{{{BASE},"scope":"a  b"}}"#));
        assert_eq!(&*c.principal, "u1");
        assert_eq!(c.scopes.unwrap().to_vec(), vec!["a", "b"]);
        let c = ok(&format!(r#"{{{BASE},"scope":["a","b c"]}}"#));
        assert_eq!(c.scopes.unwrap().to_vec(), vec!["a", "b c"]);
        let c = ok(&format!("{{{BASE}}}"));
        assert!(c.scopes.unwrap().is_empty());
    }

    #[test]
    fn refuses_wrong_types_and_values() {
        assert_eq!(
            err(&format!(r#"{{{BASE},"scope":1}}"#)),
            invalid("scopes claim is not a string or array of strings")
        );
        assert!(matches!(
            err(r#"{"iss":"https://iss/","aud":"api","sub":"u1","exp":"2000"}"#),
            ClaimsError::Invalid(_)
        ));
        assert!(matches!(
            err(r#"{"iss":["https://iss/"],"aud":"api","sub":"u1","exp":2000}"#),
            ClaimsError::Invalid(_)
        ));
        assert!(matches!(
            err(r#"{"iss":"https://ISS/","aud":"api","sub":"u1","exp":2000}"#),
            ClaimsError::Invalid(_)
        ));
        assert!(matches!(
            err(r#"{"iss":"https://iss/","aud":["x",1],"sub":"u1","exp":2000}"#),
            ClaimsError::Invalid(_)
        ));
        assert!(matches!(
            err(r#"{"iss":"https://iss/","aud":[],"sub":"u1","exp":2000}"#),
            ClaimsError::Invalid(_)
        ));
        assert!(matches!(
            err(r#"{"iss":"https://iss/","aud":"api","sub":"","exp":2000}"#),
            ClaimsError::Invalid(_)
        ));
        assert!(matches!(
            err(r#"{"iss":"https://iss/","aud":"api","sub":null,"exp":2000}"#),
            ClaimsError::Invalid(_)
        ));
        assert!(matches!(
            err(&format!(r#"{{{BASE},"sub":"u2"}}"#)),
            ClaimsError::Invalid(_)
        ));
    }

    #[test]
    fn dates_are_finite_json_numbers() {
        for ok in ["1", "-1", "1.5", "1e3", "18446744073709551616"] {
            assert!(date(Some(claim(ok)), "x").unwrap().is_some(), "{ok}");
        }
        assert_eq!(date(Some(claim("1e3")), "x"), Ok(Some(1000.0)));
        assert_eq!(
            date(Some(claim("18446744073709551616")), "x"),
            Ok(Some(18_446_744_073_709_551_616.0))
        );
        for bad in [r#""1""#, "true", "null", "[1]", "[]", r#"["1"]"#, "{}"] {
            assert_eq!(date(Some(claim(bad)), "x"), Err(invalid("x")), "{bad}");
        }
        // Out of f64 range: serde_json refuses the number, so the whole
        // claims set is refused (not valid json), never read as infinity.
        assert!(serde_json::from_str::<Claim<'_>>("1e999").is_err());
        assert_eq!(
            err(r#"{"iss":"https://iss/","aud":"api","sub":"u","exp":1e999}"#),
            invalid("jwt claims are not a valid json object")
        );
        assert_eq!(
            string(Some(claim(r#""a\u0062c""#)), "x")
                .unwrap()
                .unwrap()
                .as_str(),
            "abc"
        );
        assert_eq!(string(Some(claim("5")), "x"), Err(invalid("x")));
    }

    #[test]
    fn claim_shapes() {
        assert_eq!(claim("null"), Claim::Null);
        assert_eq!(claim("false"), Claim::Other);
        assert_eq!(claim(r#"{"a":[1,{"b":null}]}"#), Claim::Other);
        assert_eq!(claim(r#"["a",1,"b",[2]]"#), Claim::Other);
        assert_eq!(claim(r#"[1,"a"]"#), Claim::Other);
        assert_eq!(
            claim(r#"["a","b"]"#),
            Claim::Strs(vec![
                Str(std::borrow::Cow::Borrowed("a")),
                Str(std::borrow::Cow::Borrowed("b"))
            ])
        );
        assert_eq!(claim("[]"), Claim::Strs(Vec::new()));
        // Malformed inside an array that is read through still fails.
        assert!(serde_json::from_str::<Claim<'_>>(r#"["a",1,{]"#).is_err());
        // A configured principal that is also a registered claim is read once
        // and checked by both rules.
        let mut r = rules();
        r.principal = "jti".into();
        let c = check(format!(r#"{{{BASE},"jti":"id-1"}}"#).as_bytes(), &r, 1000.0).unwrap();
        assert_eq!(&*c.principal, "id-1");
        assert_eq!(c.jti.as_deref(), Some("id-1"));
    }

    #[test]
    fn bad_utf8_anywhere_refuses() {
        let mut j = format!(r#"{{{BASE},"note":"x"}}"#).into_bytes();
        let at = j.iter().rposition(|b| *b == b'x').unwrap();
        j[at] = 0xff;
        assert_eq!(
            check(&j, &rules(), 1000.0).unwrap_err(),
            invalid("jwt claims are not a valid json object")
        );
    }

    #[test]
    fn time_rules() {
        assert_eq!(
            err(r#"{"iss":"https://iss/","aud":"api","sub":"u","exp":970}"#),
            ClaimsError::Expired
        );
        // Within leeway.
        let _ = ok(r#"{"iss":"https://iss/","aud":"api","sub":"u","exp":971}"#);
        assert_eq!(
            err(&format!(r#"{{{BASE},"nbf":1031}}"#)),
            ClaimsError::NotYetValid
        );
        let _ = ok(&format!(r#"{{{BASE},"nbf":1030}}"#));
        assert!(matches!(
            err(&format!(r#"{{{BASE},"nbf":"0"}}"#)),
            ClaimsError::Invalid(_)
        ));
    }
}
