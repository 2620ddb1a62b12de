//! Envoy's `x-forwarded-client-cert` grammar, parsed strictly.
//!
//! Written by hand: the one XFCC crate on crates.io (`xfcc-parser` 0.1.1)
//! has had no release since March 2023 and builds on nom 7. The grammar is
//! small; what matters is strictness we control (control characters, stray
//! quotes, repeated and unknown keys all refuse), so no input is read two ways.
//!
//! ```text
//! header  = element *( "," *SP element )         ; one element per proxy, newest last
//! element = pair *( ";" pair )
//! pair    = key "=" ( quoted / token )
//! quoted  = DQUOTE *( qdtext / "\" CHAR ) DQUOTE ; `\x` stands for `x`
//! token   = *( any char but `,` `;` `=` `"` )
//! ```

/// Bytes of XFCC accepted before any parsing (a leaf plus a chain fits easily).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Why an XFCC header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XfccError {
    /// The header is longer than [`MAX_HEADER_BYTES`].
    #[error("xfcc header is too long")]
    TooLong,
    /// CR, LF, NUL, TAB or another control character appears in the header.
    #[error("xfcc header holds a control character")]
    ControlChar,
    /// A quoted value is not closed.
    #[error("xfcc header has an unbalanced quote")]
    UnbalancedQuote,
    /// A `"` appears inside an unquoted value, or text follows a closing quote.
    #[error("xfcc header has a stray quote")]
    StrayQuote,
    /// An element is empty (`a,,b`, a leading or trailing comma).
    #[error("xfcc header has an empty element")]
    EmptyElement,
    /// A pair has no `=`, or an empty or non-alphabetic key.
    #[error("xfcc header has a malformed key=value pair")]
    BadPair,
    /// An unquoted value holds `=` (Envoy quotes such values).
    #[error("xfcc header has an unquoted value containing `=`")]
    UnquotedEquals,
    /// `Hash`, `Cert`, `Chain` or `Subject` appears twice in the trusted element.
    #[error("xfcc element repeats a key that may appear once")]
    RepeatedKey,
    /// The trusted element has a key other than By, Hash, Cert, Chain, Subject, URI, DNS.
    #[error("xfcc element has an unknown key")]
    UnknownKey,
}

/// The fields of one XFCC element. Empty values (`URI=`) count as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub by: Vec<String>,
    pub hash: Option<String>,
    /// Still URL-encoded PEM, as sent.
    pub cert: Option<String>,
    /// Still URL-encoded PEM, as sent.
    pub chain: Option<String>,
    pub subject: Option<String>,
    pub uris: Vec<String>,
    pub dns: Vec<String>,
}

/// Parses the whole header (so quoting cannot hide an element boundary) and
/// returns the last element: the one the trusted proxy appended.
pub fn parse_last(header: &str) -> Result<Element, XfccError> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(XfccError::TooLong);
    }
    if header.bytes().any(|b| b.is_ascii_control()) {
        return Err(XfccError::ControlChar);
    }
    let elements = split(header)?;
    let last = elements.into_iter().last().ok_or(XfccError::EmptyElement)?;
    element(last)
}

type Pairs<'a> = Vec<(&'a str, String)>;

/// Splits the header into elements of raw pairs, honouring quotes.
fn split(header: &str) -> Result<Vec<Pairs<'_>>, XfccError> {
    let mut elements = Vec::new();
    let mut pairs = Vec::new();
    let mut rest = skip_ows(header);
    loop {
        let eq = rest.find(['=', ',', ';', '"']).unwrap_or(rest.len());
        let (key, after) = rest.split_at(eq);
        if key.is_empty() {
            return Err(if pairs.is_empty() {
                XfccError::EmptyElement
            } else {
                XfccError::BadPair
            });
        }
        let after = after.strip_prefix('=').ok_or(XfccError::BadPair)?;
        if !key.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(XfccError::BadPair);
        }
        let (value, after) = match after.strip_prefix('"') {
            Some(q) => quoted(q)?,
            None => {
                let end = after.find([',', ';', '"']).unwrap_or(after.len());
                let (v, a) = after.split_at(end);
                if a.starts_with('"') {
                    return Err(XfccError::StrayQuote);
                }
                if v.contains('=') {
                    return Err(XfccError::UnquotedEquals);
                }
                (v.trim_end_matches(' ').to_string(), a)
            }
        };
        pairs.push((key, value));
        if let Some(next) = after.strip_prefix(';') {
            rest = next;
        } else if let Some(next) = after.strip_prefix(',') {
            elements.push(std::mem::take(&mut pairs));
            rest = skip_ows(next);
        } else {
            // `quoted` and the token scan stop only at a separator or the end.
            elements.push(pairs);
            return Ok(elements);
        }
    }
}

fn skip_ows(s: &str) -> &str {
    s.trim_start_matches(' ')
}

/// Reads a quoted value whose opening quote was consumed; returns the value
/// and what follows the closing quote (which must be a separator or the end).
fn quoted(s: &str) -> Result<(String, &str), XfccError> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, escaped)) => out.push(escaped),
                None => return Err(XfccError::UnbalancedQuote),
            },
            '"' => {
                let after = s.get(i + 1..).unwrap_or_default().trim_start_matches(' ');
                if !(after.is_empty() || after.starts_with([',', ';'])) {
                    return Err(XfccError::StrayQuote);
                }
                return Ok((out, after));
            }
            c => out.push(c),
        }
    }
    Err(XfccError::UnbalancedQuote)
}

fn element(pairs: Pairs<'_>) -> Result<Element, XfccError> {
    let mut el = Element::default();
    let mut seen = [false; 4];
    for (key, value) in pairs {
        let key = key.to_ascii_lowercase();
        let (slot, flag) = match key.as_str() {
            "by" => {
                push_nonempty(&mut el.by, value);
                continue;
            }
            "uri" => {
                push_nonempty(&mut el.uris, value);
                continue;
            }
            "dns" => {
                push_nonempty(&mut el.dns, value);
                continue;
            }
            "hash" => (&mut el.hash, &mut seen[0]),
            "cert" => (&mut el.cert, &mut seen[1]),
            "chain" => (&mut el.chain, &mut seen[2]),
            "subject" => (&mut el.subject, &mut seen[3]),
            _ => return Err(XfccError::UnknownKey),
        };
        if std::mem::replace(flag, true) {
            return Err(XfccError::RepeatedKey);
        }
        if !value.is_empty() {
            *slot = Some(value);
        }
    }
    Ok(el)
}

fn push_nonempty(v: &mut Vec<String>, value: String) {
    if !value.is_empty() {
        v.push(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_element_parses() {
        let h = "By=spiffe://td/gw;Hash=abcd;Cert=\"-----BEGIN%20CERTIFICATE-----%0AMII%2B\";\
                 Subject=\"CN=client,O=Acme\\, Inc.\";URI=spiffe://td/ns/a;DNS=a.test;DNS=b.test";
        let el = parse_last(h).unwrap();
        assert_eq!(el.by, ["spiffe://td/gw"]);
        assert_eq!(el.hash.as_deref(), Some("abcd"));
        assert_eq!(
            el.cert.as_deref(),
            Some("-----BEGIN%20CERTIFICATE-----%0AMII%2B")
        );
        assert_eq!(el.subject.as_deref(), Some("CN=client,O=Acme, Inc."));
        assert_eq!(el.uris, ["spiffe://td/ns/a"]);
        assert_eq!(el.dns, ["a.test", "b.test"]);
    }

    #[test]
    fn last_element_wins_and_keys_ignore_case() {
        let el =
            parse_last("uri=spiffe://td/evil;hash=11, BY=x;HASH=22;uRi=spiffe://td/good").unwrap();
        assert_eq!(el.uris, ["spiffe://td/good"]);
        assert_eq!(el.hash.as_deref(), Some("22"));
        assert_eq!(el.by, ["x"]);
    }

    #[test]
    fn quoted_separators_stay_inside_the_value() {
        let el = parse_last("Hash=1;Subject=\"CN=x;URI=spiffe://td/admin,By=y\";URI=").unwrap();
        assert!(el.uris.is_empty());
        assert_eq!(
            el.subject.as_deref(),
            Some("CN=x;URI=spiffe://td/admin,By=y")
        );
        let el = parse_last("Subject=\"a,b\",Hash=2;Subject=\"c\\\"d\"").unwrap();
        assert_eq!(el.hash.as_deref(), Some("2"));
        assert_eq!(el.subject.as_deref(), Some("c\"d"));
        // A backslash escapes the next character, so `\\` does not escape the quote.
        let el = parse_last("Subject=\"CN=x\\\\\";URI=spiffe://td/a").unwrap();
        assert_eq!(el.subject.as_deref(), Some("CN=x\\"));
        assert_eq!(el.uris, ["spiffe://td/a"]);
    }

    #[test]
    fn empty_values_are_absent() {
        let el = parse_last("Hash=;Subject=\"\";URI=;Cert=\"\"").unwrap();
        assert_eq!(el, Element::default());
    }

    #[test]
    fn malformed_headers_are_refused() {
        let cases: &[(&str, XfccError)] = &[
            (
                "Subject=\"CN=x;URI=spiffe://td/a",
                XfccError::UnbalancedQuote,
            ),
            ("Subject=\"CN=x\\\"", XfccError::UnbalancedQuote),
            ("Subject=\"a\"b;URI=x", XfccError::StrayQuote),
            ("URI=a\"b", XfccError::StrayQuote),
            ("Hash=1\r\n", XfccError::ControlChar),
            ("Hash=1\n;URI=spiffe://td/a", XfccError::ControlChar),
            ("Hash=1\0", XfccError::ControlChar),
            ("Hash=1\t", XfccError::ControlChar),
            ("Subject=\"a\rb\"", XfccError::ControlChar),
            ("Hash=1,,Hash=2", XfccError::EmptyElement),
            (",Hash=2", XfccError::EmptyElement),
            ("Hash=2,", XfccError::EmptyElement),
            ("Hash=2;", XfccError::BadPair),
            ("Hash=2;;URI=x", XfccError::BadPair),
            ("Hash", XfccError::BadPair),
            ("Ha sh=1", XfccError::BadPair),
            ("Hash=1; URI=x", XfccError::BadPair),
            ("By=a=b", XfccError::UnquotedEquals),
            ("Hash=1;Hash=2", XfccError::RepeatedKey),
            ("Cert=\"a\";cert=\"b\"", XfccError::RepeatedKey),
            ("Subject=\"a\";Subject=\"\"", XfccError::RepeatedKey),
            ("Hash=1;Foo=bar", XfccError::UnknownKey),
            ("", XfccError::EmptyElement),
        ];
        for (h, want) in cases {
            assert_eq!(parse_last(h), Err(*want), "{h:?}");
        }
        let long = format!("Hash={}", "a".repeat(MAX_HEADER_BYTES));
        assert_eq!(parse_last(&long), Err(XfccError::TooLong));
    }

    #[test]
    fn an_earlier_malformed_element_refuses_the_header() {
        // A client-supplied element with an open quote would otherwise swallow the proxy's.
        assert_eq!(
            parse_last("Subject=\"x,Hash=1;URI=spiffe://td/a"),
            Err(XfccError::UnbalancedQuote)
        );
        assert_eq!(
            parse_last("Foo=bar,Hash=1").map(|e| e.hash),
            Ok(Some("1".into()))
        );
    }
}
