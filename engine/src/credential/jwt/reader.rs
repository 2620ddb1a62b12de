//! A strict, allocation-free reader for the one JSON object a JOSE header
//! or a JWT claims set is: member by member, each value either read as a
//! [`Value`] or skipped after its syntax is checked.
//!
//! Written by hand because serde_json, driven by a map visitor that checks
//! duplicates, cost ~8,000 instructions for a 160-byte claims set: about
//! half of everything a JWT decision spends besides the signature (issue 4
//! asks for at most 2 µs over it). This reader does the same work in a
//! fraction of that (docs/jwt.md, "Measured cost"). It accepts exactly what
//! serde_json accepts (RFC 8259: no trailing commas, no comments, no
//! leading zeros, no control characters in strings, escapes checked,
//! nothing after the object but whitespace); `tests/jwt_reader.rs` checks
//! that on generated documents and `fuzz/` on arbitrary bytes. Two
//! deliberate differences, both refusals where serde_json would let a
//! value through: a lone UTF-16 surrogate escape is refused in skipped
//! members too, and a number whose value overflows `f64` is refused
//! wherever it is read as a value.

use std::borrow::Cow;

use smallvec::SmallVec;

use super::json::{packed, SeenNames, Str};

/// Why a document was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Not a JSON object, or not well-formed JSON.
    #[error("not a valid json object")]
    Syntax,
    /// The object has two members with the same (unescaped) name.
    #[error("duplicate member")]
    Duplicate,
}

use ReadError::Syntax;

/// One member's value, typed as the rules need it; strings borrow from the
/// document unless they hold escapes.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Num(f64),
    Str(Str<'a>),
    /// An array of strings only.
    Strs(Vec<Str<'a>>),
    /// A boolean, an object, or an array holding anything but strings.
    Other,
}

/// A member name (unescaped), and the same name packed when it is at most
/// seven bytes ([`packed`]): matched against known names with one integer
/// compare (`packed == Some(known("exp"))`).
#[derive(Debug, Clone)]
pub struct Name<'a> {
    pub text: Cow<'a, str>,
    pub packed: Option<u64>,
}

/// Reads the members of the object `text` holds.
pub struct ObjectReader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    first: bool,
    closed: bool,
    seen: SeenNames<'a>,
}

impl<'a> ObjectReader<'a> {
    /// Starts reading; the document must open with `{` (after whitespace).
    /// Inlined so the reader is built in its caller's frame, not copied there.
    #[inline(always)]
    pub fn new(text: &'a str) -> Result<Self, ReadError> {
        let mut r = Self {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            first: true,
            closed: false,
            seen: SeenNames::default(),
        };
        r.skip_ws();
        r.expect(b'{')?;
        Ok(r)
    }

    /// The next member's name, or `None` once the object is closed. A name
    /// seen before is [`ReadError::Duplicate`]. The caller must then read
    /// or skip the member's value.
    pub fn next_name(&mut self) -> Result<Option<Cow<'a, str>>, ReadError> {
        Ok(self.next_member()?.map(|n| n.text))
    }

    /// [`Self::next_name`], with the name also packed (see [`Name`]).
    pub fn next_member(&mut self) -> Result<Option<Name<'a>>, ReadError> {
        if self.closed {
            return Ok(None);
        }
        self.skip_ws();
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                self.closed = true;
                return Ok(None);
            }
            Some(b',') if !self.first => {
                self.pos += 1;
                self.skip_ws();
            }
            _ if self.first => {}
            _ => return Err(Syntax),
        }
        self.first = false;
        let text = self.string()?;
        let packed = packed(text.as_bytes());
        if !self.seen.insert_packed(&text, packed) {
            return Err(ReadError::Duplicate);
        }
        self.skip_ws();
        self.expect(b':')?;
        Ok(Some(Name { text, packed }))
    }

    /// Checks that the object was closed and nothing but whitespace follows.
    pub fn finish(mut self) -> Result<(), ReadError> {
        if !self.closed {
            return Err(Syntax);
        }
        self.skip_ws();
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(Syntax)
        }
    }

    /// Reads the current member's value.
    pub fn value(&mut self) -> Result<Value<'a>, ReadError> {
        self.skip_ws();
        match self.peek() {
            Some(b'"') => Ok(Value::Str(Str(self.string()?))),
            Some(b'n') => self.literal(b"null").map(|()| Value::Null),
            Some(b'-' | b'0'..=b'9') => {
                let (text, short) = self.number()?;
                // Correctly rounded; an integer converts exactly as its
                // `u64`/`i64` would. Infinity means out of range. Dates
                // (`exp`, `iat`) take the short integer path.
                let v: f64 = match short {
                    Some(v) => v,
                    None => text.parse().map_err(|_| Syntax)?,
                };
                if v.is_finite() {
                    Ok(Value::Num(v))
                } else {
                    Err(Syntax)
                }
            }
            Some(b'[') => self.string_array(),
            _ => self.skip_value().map(|()| Value::Other),
        }
    }

    /// An array: its strings, or `Other` (read through) if any element is not one.
    fn string_array(&mut self) -> Result<Value<'a>, ReadError> {
        self.pos += 1;
        let mut out = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Strs(out));
        }
        let mut all_strings = true;
        loop {
            self.skip_ws();
            if all_strings && self.peek() == Some(b'"') {
                out.push(Str(self.string()?));
            } else {
                all_strings = false;
                self.skip_value()?;
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(Syntax),
            }
        }
        Ok(if all_strings {
            Value::Strs(out)
        } else {
            Value::Other
        })
    }

    /// Skips the current value after checking its syntax. Iterative, with
    /// the open containers kept as a bit stack (1: object), so nesting
    /// depth costs no recursion.
    pub fn skip_value(&mut self) -> Result<(), ReadError> {
        let mut stack: SmallVec<[u64; 2]> = SmallVec::new();
        let mut depth = 0usize;
        loop {
            // A value.
            self.skip_ws();
            match self.peek() {
                Some(open @ (b'{' | b'[')) => {
                    self.pos += 1;
                    let is_object = open == b'{';
                    let (word, bit) = (depth / 64, depth % 64);
                    if stack.len() <= word {
                        stack.push(0);
                    }
                    if let Some(w) = stack.get_mut(word) {
                        if is_object {
                            *w |= 1 << bit;
                        } else {
                            *w &= !(1 << bit);
                        }
                    }
                    depth += 1;
                    self.skip_ws();
                    let close = if is_object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        depth -= 1;
                    } else {
                        if is_object {
                            self.member_name()?;
                        }
                        continue;
                    }
                }
                Some(b'"') => self.skip_string()?,
                Some(b'n') => self.literal(b"null")?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                _ => return Err(Syntax),
            }
            // After a value: a comma (next element or member) or closings.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let top = depth - 1;
                let in_object = stack
                    .get(top / 64)
                    .is_some_and(|w| w & (1 << (top % 64)) != 0);
                self.skip_ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if in_object {
                            self.skip_ws();
                            self.member_name()?;
                        }
                        break;
                    }
                    Some(b'}') if in_object => {
                        self.pos += 1;
                        depth -= 1;
                    }
                    Some(b']') if !in_object => {
                        self.pos += 1;
                        depth -= 1;
                    }
                    _ => return Err(Syntax),
                }
            }
        }
    }

    /// A member name inside a skipped object, and its colon.
    fn member_name(&mut self) -> Result<(), ReadError> {
        if self.peek() != Some(b'"') {
            return Err(Syntax);
        }
        self.skip_string()?;
        self.skip_ws();
        self.expect(b':')
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, b: u8) -> Result<(), ReadError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Syntax)
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), ReadError> {
        let end = self.pos + word.len();
        if self.bytes.get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(())
        } else {
            Err(Syntax)
        }
    }

    /// A number's text, checked against RFC 8259's grammar, and its value
    /// when it is an integer of at most 15 digits (below 2^53, so exact in
    /// `f64`): dates, worked out in the same pass instead of by the
    /// decimal parser or a second scan.
    fn number(&mut self) -> Result<(&'a str, Option<f64>), ReadError> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        let mut int = 0u64;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                // Over the digits as a slice: one bounds check, not one per digit.
                let rest = self.bytes.get(self.pos..).unwrap_or_default();
                let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                let digits = rest.get(..n).unwrap_or_default();
                // Wrapping: past 15 digits the value is not used.
                int = digits.iter().fold(0u64, |acc, d| {
                    acc.wrapping_mul(10)
                        .wrapping_add(u64::from(d.wrapping_sub(b'0')))
                });
                self.pos += n;
            }
            _ => return Err(Syntax),
        }
        let mut short = self.pos - int_start <= 15;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits1()?;
            short = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.digits1()?;
            short = false;
        }
        let text = self.text.get(start..self.pos).ok_or(Syntax)?;
        // At most 15 digits: below 2^53, so the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        let value = short.then(|| {
            let v = int as f64;
            if negative {
                -v
            } else {
                v
            }
        });
        Ok((text, value))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn digits1(&mut self) -> Result<(), ReadError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(Syntax);
        }
        self.digits();
        Ok(())
    }

    /// A string at `"`, unescaped: borrowed from the document when it has
    /// no escapes. Every position where the scan stops is an ASCII byte,
    /// so the slices are on char boundaries (the document is a `&str`).
    #[inline(always)]
    fn string(&mut self) -> Result<Cow<'a, str>, ReadError> {
        self.expect(b'"')?;
        let start = self.pos;
        let end = self.plain_run();
        if self.peek() == Some(b'"') {
            self.pos += 1;
            return self.text.get(start..end).map(Cow::Borrowed).ok_or(Syntax);
        }
        self.escaped(start, end, true).map(Cow::Owned)
    }

    /// A string at `"`, only checked.
    fn skip_string(&mut self) -> Result<(), ReadError> {
        self.expect(b'"')?;
        let start = self.pos;
        let end = self.plain_run();
        if self.peek() == Some(b'"') {
            self.pos += 1;
            return Ok(());
        }
        self.escaped(start, end, false).map(drop)
    }

    /// The rest of a string whose plain run `start..plain_end` stopped at
    /// an escape, a control character or the end; with `keep`, its value.
    #[cold]
    fn escaped(&mut self, start: usize, plain_end: usize, keep: bool) -> Result<String, ReadError> {
        let mut out = String::new();
        if keep {
            out.push_str(self.text.get(start..plain_end).ok_or(Syntax)?);
        }
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.escape()?;
                    if keep {
                        out.push(c);
                    }
                }
                _ => {
                    let run = self.pos;
                    let end = self.plain_run();
                    if end == run {
                        // A control character or the end of the document.
                        return Err(Syntax);
                    }
                    if keep {
                        out.push_str(self.text.get(run..end).ok_or(Syntax)?);
                    }
                }
            }
        }
    }

    /// Advances over bytes that need no attention inside a string and
    /// returns where they end: at `"`, `\`, a control character or the end.
    #[inline(always)]
    fn plain_run(&mut self) -> usize {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        // Eight bytes at a time (most of a claims set is string bytes): the
        // lowest flagged byte of a word is exactly the first one that needs
        // attention (see `attention`). A word that failed to convert would
        // read as zeros, a control byte: the string would be refused.
        let mut i = 0;
        while let Some(chunk) = rest.get(i..i + 8) {
            let mask = attention(u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])));
            if mask != 0 {
                self.pos += i + (mask.trailing_zeros() / 8) as usize;
                return self.pos;
            }
            i += 8;
        }
        let tail = rest.get(i..).unwrap_or_default();
        self.pos += i + tail
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .unwrap_or(tail.len());
        self.pos
    }

    /// The character an escape (after its `\`) stands for. A `\u` escape
    /// of a UTF-16 surrogate must be a high one followed by a low one.
    fn escape(&mut self) -> Result<char, ReadError> {
        let c = self.peek().ok_or(Syntax)?;
        self.pos += 1;
        Ok(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                match hi {
                    0xD800..=0xDBFF => {
                        self.literal(b"\\u")?;
                        let lo = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return Err(Syntax);
                        }
                        char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                            .ok_or(Syntax)?
                    }
                    _ => char::from_u32(hi).ok_or(Syntax)?,
                }
            }
            _ => return Err(Syntax),
        })
    }

    fn hex4(&mut self) -> Result<u32, ReadError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                _ => return Err(Syntax),
            };
            self.pos += 1;
            v = (v << 4) | u32::from(d);
        }
        Ok(v)
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Flags (high bit of the byte) the bytes of `word` (little-endian) that
/// end a string's plain run: `"`, `\\` and those below 0x20. The classic
/// "has a zero byte" and "has a byte below n" word tricks: a flag can be
/// wrong only above a byte that is rightly flagged (a borrow runs upward),
/// so the lowest flag is always exact, which is all the reader uses.
fn attention(word: u64) -> u64 {
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let quote = has_zero(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    quote | backslash | control
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every member as (name, value), or the error.
    fn read(doc: &str) -> Result<Vec<(String, Value<'_>)>, ReadError> {
        let mut r = ObjectReader::new(doc)?;
        let mut out = Vec::new();
        while let Some(name) = r.next_name()? {
            out.push((name.into_owned(), r.value()?));
        }
        r.finish()?;
        Ok(out)
    }

    fn s(v: &str) -> Value<'_> {
        Value::Str(Str(Cow::Borrowed(v)))
    }

    #[test]
    fn reads_members_and_types() {
        let got = read(
            r#" { "a" : "x", "b":1700000000, "c":-1.5e2, "d":null, "e":["p","q"], "f":[1], "g":{"h":[true,false,{}]}, "i":true } "#,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                ("a".into(), s("x")),
                ("b".into(), Value::Num(1_700_000_000.0)),
                ("c".into(), Value::Num(-150.0)),
                ("d".into(), Value::Null),
                (
                    "e".into(),
                    Value::Strs(vec![Str("p".into()), Str("q".into())])
                ),
                ("f".into(), Value::Other),
                ("g".into(), Value::Other),
                ("i".into(), Value::Other),
            ]
        );
        assert_eq!(read("{}").unwrap(), vec![]);
    }

    #[test]
    fn unescapes_names_and_values() {
        let got = read(r#"{"\u0061lg":"\ud83d\ude00\n\"\\\/","b":"x\u00e9y"}"#).unwrap();
        assert_eq!(got[0].0, "alg");
        assert_eq!(got[0].1, Value::Str(Str("\u{1F600}\n\"\\/".into())));
        assert_eq!(got[1].1, Value::Str(Str("xéy".into())));
    }

    /// A number as `value` reads it (the short-integer path or the parser).
    fn number_value(t: &str) -> Result<Value<'static>, ReadError> {
        let doc = format!(r#"{{"n":{t}}}"#);
        let mut r = ObjectReader::new(&doc)?;
        r.next_name()?;
        match r.value()? {
            Value::Num(v) => Ok(Value::Num(v)),
            _ => Ok(Value::Other),
        }
    }

    #[test]
    fn short_integers_read_as_the_decimal_parser_does() {
        for t in [
            "0",
            "-0",
            "7",
            "-12",
            "1700000000",
            "999999999999999",
            "-999999999999999",
            "1000000000000000",
            "-1000000000000000",
            "9007199254740993",
            "18446744073709551616",
            "123456789012345678901234567890",
            "1.5",
            "1e3",
            "-0.0",
            "10E+2",
        ] {
            let parsed: f64 = t.parse().unwrap();
            match number_value(t) {
                Ok(Value::Num(v)) => assert_eq!(v.to_bits(), parsed.to_bits(), "{t}"),
                other => panic!("{t}: {other:?}"),
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn integers_read_as_the_decimal_parser_does(n: i64, digits in "[0-9]{1,24}", neg: bool) {
            let t = n.to_string();
            let parsed: f64 = t.parse().unwrap();
            proptest::prop_assert_eq!(number_value(&t), Ok(Value::Num(parsed)));
            let t = format!("{}{}", if neg { "-" } else { "" }, digits.trim_start_matches('0'));
            if let Ok(parsed) = t.parse::<f64>() {
                if t != "-" && !t.is_empty() {
                    match number_value(&t) {
                        Ok(Value::Num(v)) => proptest::prop_assert_eq!(v.to_bits(), parsed.to_bits()),
                        other => proptest::prop_assert!(false, "{t}: {other:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn duplicates_after_unescaping() {
        assert_eq!(read(r#"{"a":1,"a":2}"#), Err(ReadError::Duplicate));
        assert_eq!(read(r#"{"a":1,"\u0061":2}"#), Err(ReadError::Duplicate));
        // Nested objects are values: their names are not the claims' names.
        assert!(read(r#"{"a":{"b":1,"b":2},"b":3}"#).is_ok());
    }

    #[test]
    fn refuses_malformed_documents() {
        for doc in [
            "",
            " ",
            "[]",
            "1",
            "\"a\"",
            "{",
            "}",
            "{,}",
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":+1}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul}"#,
            r#"{"a":"x}"#,
            "{\"a\":\"\u{1}\"}",
            "{\"a\":\"\t\"}",
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12"}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\udc00"}"#,
            r#"{"a":"\ud800\u0041"}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[,1]}"#,
            r#"{"a":{"b"}}"#,
            r#"{"a":{"b":1,}}"#,
            r#"{"a":[}"#,
            r#"{"a":{]}"#,
            r#"{"a":1}x"#,
            r#"{"a":1}{}"#,
            r#"{"a":1e400}"#,
            r#"{'a':1}"#,
            r#"{a:1}"#,
            "\u{feff}{}",
            r#"{"a":[1]]}"#,
        ] {
            assert!(read(doc).is_err(), "{doc:?}");
        }
    }

    /// The first byte needing attention, by the word check and by a byte loop.
    fn first_by_word(word: [u8; 8]) -> Option<u32> {
        let m = attention(u64::from_le_bytes(word));
        (m != 0).then(|| m.trailing_zeros() / 8)
    }
    fn first_by_byte(word: [u8; 8]) -> Option<u32> {
        word.iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .map(|p| p as u32)
    }

    #[test]
    fn word_check_agrees_with_the_byte_check_for_every_byte_and_position() {
        for fill in [b'a', 0x80, 0xff, b' ', b'!', b'#', b'[', b']'] {
            for pos in 0..8 {
                for b in 0..=255u8 {
                    let mut w = [fill; 8];
                    w[pos] = b;
                    assert_eq!(first_by_word(w), first_by_byte(w), "{w:?}");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn word_check_agrees_with_the_byte_check(w: [u8; 8]) {
            proptest::prop_assert_eq!(first_by_word(w), first_by_byte(w));
        }
    }

    #[test]
    fn skips_deep_nesting_without_recursion() {
        let deep = format!(r#"{{"a":{}1{}}}"#, "[".repeat(5000), "]".repeat(5000));
        assert!(read(&deep).is_ok());
        let unbalanced = format!(r#"{{"a":{}1{}}}"#, "[".repeat(5000), "]".repeat(4999));
        assert!(read(&unbalanced).is_err());
        let mixed = format!(
            r#"{{"a":{}1{}}}"#,
            r#"{"k":["#.repeat(100),
            "]}".repeat(100)
        );
        assert!(read(&mixed).is_ok());
    }
}
