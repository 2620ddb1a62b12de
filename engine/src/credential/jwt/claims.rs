//! The claims set, read after the signature verified, and checked against
//! the credential's rules. Read with a map visitor that refuses duplicate
//! members and keeps only the members a rule looks at (as raw JSON, typed
//! afterwards, since a configured claim name may coincide with a registered one).

use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

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

/// Raw members of interest, borrowed from the decoded payload.
#[derive(Default)]
struct Raw<'a> {
    exp: Option<&'a RawValue>,
    nbf: Option<&'a RawValue>,
    iat: Option<&'a RawValue>,
    iss: Option<&'a RawValue>,
    aud: Option<&'a RawValue>,
    jti: Option<&'a RawValue>,
    principal: Option<&'a RawValue>,
    scopes: Option<&'a RawValue>,
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
            let v: &'de RawValue = map.next_value()?;
            if v.get() != "null" {
                raw.required |= bits;
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
            if is_principal {
                raw.principal = Some(v);
            }
            if is_scopes {
                raw.scopes = Some(v);
            }
        }
        Ok(raw)
    }
}

// Typed readers over the captured raw JSON. The text is already valid JSON
// (serde_json checked it while capturing), so its first byte tells the type
// and the common shapes (a number, a string without escapes) are read
// without a second parser; anything else goes through serde_json.

fn raw_text(v: &RawValue) -> &str {
    v.get().trim_matches([' ', '\t', '\n', '\r'])
}

fn date(v: Option<&RawValue>, msg: &'static str) -> Result<Option<f64>, ClaimsError> {
    let Some(v) = v else { return Ok(None) };
    let s = raw_text(v);
    match s.as_bytes().first() {
        // A JSON number is also valid Rust float syntax.
        Some(b'-' | b'0'..=b'9') => s
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or(invalid(msg)),
        _ => Err(invalid(msg)),
    }
}

fn string<'a>(v: Option<&'a RawValue>, msg: &'static str) -> Result<Option<Str<'a>>, ClaimsError> {
    let Some(v) = v else { return Ok(None) };
    let s = raw_text(v);
    if !s.starts_with('"') {
        return Err(invalid(msg));
    }
    match s.get(1..s.len() - 1) {
        Some(inner) if !inner.contains('\\') => Ok(Some(Str(std::borrow::Cow::Borrowed(inner)))),
        _ => serde_json::from_str::<Str<'a>>(s)
            .map(Some)
            .map_err(|_| invalid(msg)),
    }
}

fn strings<'a>(
    v: Option<&'a RawValue>,
    msg: &'static str,
) -> Result<Option<OneOrMany<'a>>, ClaimsError> {
    let Some(raw) = v else { return Ok(None) };
    if raw_text(raw).starts_with('"') {
        return Ok(string(v, msg)?.map(OneOrMany::One));
    }
    serde_json::from_str::<OneOrMany<'a>>(raw.get())
        .map(Some)
        .map_err(|_| invalid(msg))
}

/// Reads and checks a claims set. `now` is seconds since the epoch.
pub fn check(payload: &[u8], rules: &Rules, now: f64) -> Result<Claims, ClaimsError> {
    let mut de = serde_json::Deserializer::from_slice(payload);
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
        let raw = |t: &str| serde_json::from_str::<Box<RawValue>>(t).unwrap();
        for ok in ["1", "-1", "1.5", "1e3", "18446744073709551616"] {
            assert!(date(Some(&raw(ok)), "x").unwrap().is_some(), "{ok}");
        }
        for bad in [r#""1""#, "true", "null", "[1]", "{}", "1e999"] {
            assert_eq!(date(Some(&raw(bad)), "x"), Err(invalid("x")), "{bad}");
        }
        assert_eq!(
            string(Some(&raw(r#""a\u0062c""#)), "x")
                .unwrap()
                .unwrap()
                .as_str(),
            "abc"
        );
        assert_eq!(string(Some(&raw("5")), "x"), Err(invalid("x")));
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
