//! The claims set, read after the signature verified, and checked against
//! the credential's rules. Read with the strict [`super::reader`], which
//! refuses duplicate members; only the members a rule looks at are kept,
//! each read once into a [`Claim`] that records its JSON type; the rules
//! then check the type they need (a configured claim name may coincide
//! with a registered one).

use std::sync::Arc;

use smallvec::SmallVec;

use super::json::{known, packed, OneOrMany, Str};
use super::reader::{Name, ObjectReader, ReadError, Value};

/// What the rules need from a credential definition, prepared at load.
#[derive(Debug, Clone)]
pub struct Rules {
    pub issuer: Option<String>,
    pub audience: Vec<String>,
    pub leeway: f64,
    pub max_lifetime: Option<f64>,
    /// Claims that must be present (not null); at most 64. Private: the
    /// index below is built from it by [`Rules::new`].
    require: Vec<String>,
    /// The principal and scopes claims' names, matched as [`Wanted`].
    principal: Wanted,
    scopes: Option<Wanted>,
    /// `require` by member name, worked out once.
    index: RequireIndex,
}

/// A configured claim name, matched against a member's [`Name`]: by its
/// packing when it is short enough to have one (exact), else by its text.
#[derive(Debug, Clone)]
struct Wanted {
    packed: Option<u64>,
    text: String,
}

impl Wanted {
    fn new(text: String) -> Self {
        Self {
            packed: packed(text.as_bytes()),
            text,
        }
    }

    fn matches(&self, name: &Name<'_>) -> bool {
        match self.packed {
            Some(p) => name.packed == Some(p),
            None => name.packed.is_none() && name.text == self.text,
        }
    }
}

/// Which bits of `require` a member name sets: for the registered claims
/// by slot (no string comparison per member), for other names by name.
#[derive(Debug, Clone, Default)]
struct RequireIndex {
    registered: [u64; REGISTERED.len()],
    other: Vec<(Wanted, u64)>,
}

/// The registered claims the rules read, in slot order.
const REGISTERED: [&str; 6] = ["exp", "nbf", "iat", "iss", "aud", "jti"];

/// The slot of a registered claim, from the member name's packing.
fn registered_slot(packed: Option<u64>) -> Option<usize> {
    const EXP: u64 = known("exp");
    const NBF: u64 = known("nbf");
    const IAT: u64 = known("iat");
    const ISS: u64 = known("iss");
    const AUD: u64 = known("aud");
    const JTI: u64 = known("jti");
    match packed? {
        EXP => Some(0),
        NBF => Some(1),
        IAT => Some(2),
        ISS => Some(3),
        AUD => Some(4),
        JTI => Some(5),
        _ => None,
    }
}

impl Rules {
    pub fn new(
        issuer: Option<String>,
        audience: Vec<String>,
        leeway: f64,
        max_lifetime: Option<f64>,
        require: Vec<String>,
        principal: String,
        scopes: Option<String>,
    ) -> Self {
        let mut index = RequireIndex::default();
        for (i, name) in require.iter().enumerate().take(64) {
            let bit = 1u64 << i;
            match registered_slot(packed(name.as_bytes())) {
                Some(slot) => {
                    if let Some(b) = index.registered.get_mut(slot) {
                        *b |= bit;
                    }
                }
                None => match index.other.iter_mut().find(|(n, _)| n.text == *name) {
                    Some((_, b)) => *b |= bit,
                    None => index.other.push((Wanted::new(name.clone()), bit)),
                },
            }
        }
        Self {
            issuer,
            audience,
            leeway,
            max_lifetime,
            require,
            principal: Wanted::new(principal),
            scopes: scopes.map(Wanted::new),
            index,
        }
    }
}

/// One claim's value, typed in the same pass that reads it (strings
/// borrowed from the payload). Shapes no rule accepts are `Other`.
type Claim<'a> = Value<'a>;

/// The members of interest, typed, borrowed from the decoded payload.
#[derive(Default)]
struct Raw<'a> {
    /// By slot, as in [`REGISTERED`].
    registered: [Option<Claim<'a>>; REGISTERED.len()],
    principal: Option<Claim<'a>>,
    scopes: Option<Claim<'a>>,
    /// Bit i set: `require[i]` is present and not null.
    required: u64,
}

/// A verified token's facts, once the rules passed their type checks.
#[derive(Debug, Clone)]
pub struct Claims<'a> {
    pub exp: Option<f64>,
    pub nbf: Option<f64>,
    pub iat: Option<f64>,
    pub principal: Arc<str>,
    pub scopes: Option<Arc<[String]>>,
    /// Borrowed from the payload: copied only into a cache entry.
    pub jti: Option<Str<'a>>,
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

/// Reads the members the rules look at, each once, and skips the rest
/// (after checking their syntax). A duplicate member refuses the whole set.
fn read_raw<'a>(text: &'a str, rules: &Rules, raw: &mut Raw<'a>) -> Result<(), ClaimsError> {
    let malformed = |e: ReadError| match e {
        ReadError::Duplicate => invalid("jwt claims have a duplicate member"),
        _ => invalid("jwt claims are not a valid json object"),
    };
    let mut obj = ObjectReader::new(text).map_err(malformed)?;
    while let Some(name) = obj.next_member().map_err(malformed)? {
        let slot = registered_slot(name.packed);
        let bits = match slot {
            Some(i) => rules.index.registered.get(i).copied().unwrap_or(0),
            None => rules
                .index
                .other
                .iter()
                .filter(|(n, _)| n.matches(&name))
                .fold(0, |acc, (_, b)| acc | b),
        };
        let is_principal = rules.principal.matches(&name);
        let is_scopes = rules.scopes.as_ref().is_some_and(|w| w.matches(&name));
        if !(slot.is_some() || is_principal || is_scopes || bits != 0) {
            obj.skip_value().map_err(malformed)?;
            continue;
        }
        let v: Claim<'a> = obj.value().map_err(malformed)?;
        if v != Claim::Null {
            raw.required |= bits;
        }
        if is_principal {
            raw.principal = Some(v.clone());
        }
        if is_scopes {
            raw.scopes = Some(v.clone());
        }
        if let Some(r) = slot.and_then(|i| raw.registered.get_mut(i)) {
            *r = Some(v);
        }
    }
    obj.finish().map_err(malformed)
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

/// The words of a space-delimited scopes string (RFC 8693 `scope`), empty
/// ones dropped: `s.split(' ').filter(|w| !w.is_empty())`, by a byte loop
/// that costs a fraction of `split`'s searcher on strings this short.
fn scope_words(s: &str) -> SmallVec<[&str; 8]> {
    let mut out = SmallVec::new();
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        if b == b' ' {
            // Cut at ASCII spaces: always on char boundaries.
            if let Some(w) = s.get(start..i).filter(|w| !w.is_empty()) {
                out.push(w);
            }
            start = i + 1;
        }
    }
    if let Some(w) = s.get(start..).filter(|w| !w.is_empty()) {
        out.push(w);
    }
    out
}

/// Reads and checks a claims set. `now` is seconds since the epoch.
pub fn check<'a>(payload: &'a [u8], rules: &Rules, now: f64) -> Result<Claims<'a>, ClaimsError> {
    // UTF-8 checked once for the whole claims set, ignored members included
    // (a string reader over bytes checks only the strings it returns).
    let text = std::str::from_utf8(payload)
        .map_err(|_| invalid("jwt claims are not a valid json object"))?;
    // Filled in place: a `Raw` is a few hundred bytes, not worth moving.
    let mut raw = Raw::default();
    read_raw(text, rules, &mut raw)?;

    // Types first: a claim of the wrong type denies whatever its value says.
    let [exp, nbf, iat, iss, aud, jti] = raw.registered;
    let exp = date(exp, "`exp` is not a number")?;
    let nbf = date(nbf, "`nbf` is not a number")?;
    let iat = date(iat, "`iat` is not a number")?;
    let iss = string(iss, "`iss` is not a string")?;
    let aud = strings(aud, "`aud` is not a string or array of strings")?;
    let jti = string(jti, "`jti` is not a string")?;
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
            Some(OneOrMany::One(s)) => {
                // Collected first, so the shared slice is allocated once at
                // its size (a slice iterator has an exact length; `split` has not).
                scope_words(s.as_str())
                    .iter()
                    .map(|p| (*p).to_owned())
                    .collect()
            }
            Some(OneOrMany::Many(list)) => list.iter().map(|s| s.as_str().to_owned()).collect(),
        }
    });
    Ok(Claims {
        exp,
        nbf,
        iat,
        principal,
        scopes,
        jti,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules::new(
            Some("https://iss/".into()),
            vec!["api".into()],
            30.0,
            None,
            vec!["sub".into(), "exp".into()],
            "sub".into(),
            Some("scope".into()),
        )
    }

    fn ok(j: &str) -> Claims<'static> {
        let c = check(j.as_bytes(), &rules(), 1000.0).unwrap();
        Claims {
            exp: c.exp,
            nbf: c.nbf,
            iat: c.iat,
            principal: c.principal,
            scopes: c.scopes,
            jti: c.jti.map(|s| Str(s.as_str().to_owned().into())),
        }
    }

    fn err(j: &str) -> ClaimsError {
        check(j.as_bytes(), &rules(), 1000.0).unwrap_err()
    }

    /// `t` read as a claim value (as the member of a one-member object).
    fn claim(t: &str) -> Claim<'static> {
        try_claim(t).unwrap()
    }

    fn try_claim(t: &str) -> Result<Claim<'static>, ReadError> {
        let doc = format!(r#"{{"x":{t}}}"#);
        let mut r = ObjectReader::new(&doc)?;
        r.next_name()?;
        let v = match r.value()? {
            Value::Str(s) => Value::Str(Str(s.as_str().to_owned().into())),
            Value::Strs(l) => Value::Strs(
                l.iter()
                    .map(|s| Str(s.as_str().to_owned().into()))
                    .collect(),
            ),
            Value::Null => Value::Null,
            Value::Num(n) => Value::Num(n),
            _ => Value::Other,
        };
        r.next_name()?;
        r.finish()?;
        Ok(v)
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
        // Out of f64 range: the reader refuses the number, so the whole
        // claims set is refused (not valid json), never read as infinity.
        assert!(try_claim("1e999").is_err());
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
        assert!(try_claim(r#"["a",1,{]"#).is_err());
        // A configured principal that is also a registered claim is read once
        // and checked by both rules.
        let mut r = rules();
        r.principal = Wanted::new("jti".into());
        let doc = format!(r#"{{{BASE},"jti":"id-1"}}"#);
        let c = check(doc.as_bytes(), &r, 1000.0).unwrap();
        assert_eq!(&*c.principal, "id-1");
        assert_eq!(c.jti.as_ref().map(Str::as_str), Some("id-1"));
    }

    /// Configured names longer than a packing (and short ones) are matched
    /// by text, never by a prefix or a packing of another name.
    #[test]
    fn long_and_short_configured_names() {
        let r = Rules::new(
            None,
            Vec::new(),
            0.0,
            None,
            vec!["client_id".into(), "tenant".into()],
            "preferred_username".into(),
            Some("scp".into()),
        );
        let doc = r#"{"preferred_username":"ann","client_id":"c","tenant":"t","scp":["a"]}"#;
        let c = check(doc.as_bytes(), &r, 1000.0).unwrap();
        assert_eq!(&*c.principal, "ann");
        assert_eq!(c.scopes.unwrap().to_vec(), vec!["a"]);
        for missing in [
            r#"{"preferred_username":"ann","client_i":"c","tenant":"t"}"#,
            r#"{"preferred_username":"ann","client_idx":"c","tenant":"t"}"#,
            r#"{"preferred_username":"ann","client_id":"c","tenan":"t"}"#,
            r#"{"preferred_username":"ann","client_id":"c","tenant":null}"#,
        ] {
            assert_eq!(
                check(missing.as_bytes(), &r, 1000.0).unwrap_err(),
                invalid("a required claim is missing"),
                "{missing}"
            );
        }
        let no_principal = r#"{"preferred_usernam":"ann","client_id":"c","tenant":"t"}"#;
        assert_eq!(
            check(no_principal.as_bytes(), &r, 1000.0).unwrap_err(),
            invalid("principal claim is missing")
        );
        // An escaped name is the same member as its plain spelling.
        let escaped = r#"{"preferred_usernam\u0065":"ann","client_id":"c","t\u0065nant":"t"}"#;
        assert_eq!(
            &*check(escaped.as_bytes(), &r, 1000.0).unwrap().principal,
            "ann"
        );
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

    proptest::proptest! {
        #[test]
        fn scope_words_split_as_str_split_does(s in "[ a:é\\t]{0,24}") {
            let want: Vec<&str> = s.split(' ').filter(|w| !w.is_empty()).collect();
            proptest::prop_assert_eq!(scope_words(&s).to_vec(), want);
        }
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
