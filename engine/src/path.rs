//! Paths: one canonical form or a refusal (`bad_path`), never a guess.
//!
//! The request target is split at the first `?` (query stripped, never
//! logged). What remains must be an origin-form path that needs no
//! normalising: a request that could be read two ways (`/public/../admin`,
//! `%2F`, `//`) is refused rather than routed, so a gateway and Portcullis can
//! never disagree about which route it is. Decisions per SECURITY.md "Paths":
//!
//! | shape | verdict |
//! |---|---|
//! | `.` / `..` segments, raw or encoded (`%2e`) | `bad_path` |
//! | `//` (empty segment) | `bad_path` |
//! | encoded `/` `\` `.` NUL (`%2F` `%5C` `%2E` `%00`), double encoding (`%25`) | `bad_path` |
//! | raw `\`, `#`, `;` (matrix params), control chars, space, non-ASCII | `bad_path` |
//! | malformed `%` escapes, overlong UTF-8 (`%c0%af`) | `bad_path` |
//! | absolute-form (`http://host/x`) or not starting with `/` | `bad_path` |
//! | other `%XX` | decoded to the byte it names (must be unreserved) before matching |
//! | trailing slash | significant: `/a/` does not match `/a` |
//! | case | significant: `/ADMIN` does not match `/admin` |

use crate::policy::{PathPattern, PatternSegment};

/// Longest path accepted (bytes, before the query).
pub const MAX_PATH_LEN: usize = 8192;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotOriginForm,
    TooLong,
    DotSegment,
    EmptySegment,
    ForbiddenByte,
    ForbiddenEscape,
    BadEscape,
}

impl PathError {
    pub fn describe(self) -> &'static str {
        match self {
            PathError::NotOriginForm => "path must start with `/`",
            PathError::TooLong => "path is too long",
            PathError::DotSegment => "path has a `.` or `..` segment",
            PathError::EmptySegment => "path has an empty segment (`//`)",
            PathError::ForbiddenByte => {
                "path has a byte that is not allowed (`\\`, `#`, `;`, space, control or non-ascii)"
            }
            PathError::ForbiddenEscape => "path has an encoded `/`, `\\`, `.`, `%` or control byte",
            PathError::BadEscape => "path has a malformed `%` escape",
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Bytes allowed raw in a path: RFC 3986 unreserved, sub-delims except `;`, `:` and `@`.
fn allowed_raw(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@/".contains(&b)
}

/// Bytes an escape may stand for: exactly those allowed raw, except `/` and
/// `.`. So a canonical path is itself a valid input with the same canonical
/// form (idempotence), and an escape can never smuggle a separator, a dot
/// segment, whitespace or a control byte past the route match.
fn allowed_escaped(b: u8) -> bool {
    allowed_raw(b) && b != b'/' && b != b'.'
}

const OK: u8 = 0;
const SLASH: u8 = 1;
const PERCENT: u8 = 2;
const QUERY: u8 = 3;
const BAD: u8 = 4;

/// The class of every byte in a request target, so the scan is one table
/// load per byte rather than a chain of range checks.
// Indexing in a const initialiser fails at compile time, never at run time.
#[allow(clippy::indexing_slicing)]
static CLASS: [u8; 256] = {
    let mut t = [BAD; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() {
            t[b] = OK;
        }
        b += 1;
    }
    let extra = b"-._~!$&'()*+,=:@";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = OK;
        i += 1;
    }
    t[b'/' as usize] = SLASH;
    t[b'%' as usize] = PERCENT;
    t[b'?' as usize] = QUERY;
    t
};

fn class(b: u8) -> u8 {
    CLASS.get(usize::from(b)).copied().unwrap_or(BAD)
}

/// The canonical path of a request target, or why there is none.
/// Returns the decoded path (query removed). One pass over the bytes;
/// allocates only when it decodes an escape.
pub fn canonical(target: &str) -> Result<std::borrow::Cow<'_, str>, PathError> {
    match plain(target) {
        Some(p) => Ok(std::borrow::Cow::Borrowed(p)),
        None => canonical_full(target),
    }
}

/// Is a segment empty, `.` or `..`? Only a segment of at most two bytes can be.
fn dotty_or_empty(seg: &[u8]) -> bool {
    seg.is_empty() || seg == b"." || seg == b".."
}

/// The common target, already canonical: plain bytes and single slashes up
/// to an optional query, no dot segment, no escape. Answers what
/// [`canonical_full`] would for it with a tighter loop (one table load and
/// one branch per byte, segments checked only when short enough to be dot
/// segments); `None` sends everything else, refusals included, the long way.
fn plain(target: &str) -> Option<&str> {
    let bytes = target.as_bytes();
    if bytes.first() != Some(&b'/') {
        return None;
    }
    let mut seg_start = 1;
    let mut i = 1;
    // Index arithmetic rather than `enumerate().skip(1)`, which (with
    // overflow checks on) cost several times the table load per byte.
    let end = loop {
        while bytes.get(i).is_some_and(|&b| class(b) == OK) {
            i += 1;
        }
        match bytes.get(i) {
            None | Some(b'?') => break i,
            Some(b'/') => {
                if i - seg_start <= 2 && dotty_or_empty(bytes.get(seg_start..i)?) {
                    return None;
                }
                i += 1;
                seg_start = i;
            }
            Some(_) => return None,
        }
    };
    let last = bytes.get(seg_start.min(end)..end)?;
    if end > MAX_PATH_LEN || (!last.is_empty() && dotty_or_empty(last)) {
        return None;
    }
    target.get(..end)
}

/// The full canonicalisation, escapes and refusals included.
fn canonical_full(target: &str) -> Result<std::borrow::Cow<'_, str>, PathError> {
    let bytes = target.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotOriginForm);
    }
    let mut decoded: Option<Vec<u8>> = None;
    let mut seg_start = 1;
    let mut i = 0;
    let dot_segment = |seg: &[u8]| seg == b"." || seg == b"..";
    while let Some(&b) = bytes.get(i) {
        match class(b) {
            OK if decoded.is_none() => {
                // The common case: consume the run of plain bytes at once,
                // with nothing to copy.
                i += 1;
                while bytes.get(i).is_some_and(|&b| class(b) == OK) {
                    i += 1;
                }
                continue;
            }
            OK => {}
            QUERY => break,
            SLASH => {
                if i > 0 {
                    let seg = bytes.get(seg_start..i).unwrap_or_default();
                    if seg.is_empty() {
                        return Err(PathError::EmptySegment);
                    }
                    if dot_segment(seg) {
                        return Err(PathError::DotSegment);
                    }
                }
                seg_start = i + 1;
            }
            PERCENT => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let v = h * 16 + l;
                // Escapes of `.` and `/` are refused, so raw and decoded forms
                // have the same segments and dot-segment checks on raw bytes hold.
                if !allowed_escaped(v) {
                    return Err(PathError::ForbiddenEscape);
                }
                let buf =
                    decoded.get_or_insert_with(|| bytes.get(..i).unwrap_or_default().to_vec());
                buf.push(v);
                i += 3;
                continue;
            }
            _ => return Err(PathError::ForbiddenByte),
        }
        if let Some(buf) = decoded.as_mut() {
            buf.push(b);
        }
        i += 1;
    }
    if i > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if dot_segment(bytes.get(seg_start.min(i)..i).unwrap_or_default()) {
        return Err(PathError::DotSegment);
    }
    match decoded {
        None => Ok(std::borrow::Cow::Borrowed(
            target.get(..i).unwrap_or_default(),
        )),
        // Every decoded byte is ASCII (allowed_escaped admits only ASCII).
        Some(buf) => String::from_utf8(buf)
            .map(std::borrow::Cow::Owned)
            .map_err(|_| PathError::BadEscape),
    }
}

/// The segments of a canonical path: `/` → [], `/a/b/` → ["a", "b", ""].
pub fn segments(path: &str) -> Segments<'_> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    Segments {
        rest: if rest.is_empty() { None } else { Some(rest) },
    }
}

/// Iterator over path segments. A byte scan rather than `str::split`, whose
/// generic searcher costs more than the whole match on short paths; `/` is
/// ASCII, so every split point is a char boundary.
#[derive(Clone)]
pub struct Segments<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let r = self.rest?;
        match r.bytes().position(|b| b == b'/') {
            Some(i) => {
                self.rest = r.get(i + 1..);
                r.get(..i)
            }
            None => {
                self.rest = None;
                Some(r)
            }
        }
    }
}

/// Why a route pattern is malformed (a policy error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

/// Parses a route pattern: `/v1/charges/{id}`, `/internal/**`, `/`.
pub fn parse_pattern(raw: &str) -> Result<PathPattern, PatternError> {
    if !raw.starts_with('/') {
        return Err(PatternError(format!(
            "path pattern `{raw}` must start with `/`"
        )));
    }
    if raw.contains('?') || raw.contains('#') {
        return Err(PatternError(format!(
            "path pattern `{raw}` may not contain `?` or `#`"
        )));
    }
    let mut segments = Vec::new();
    let parts: Vec<&str> = segments_of(raw);
    let n = parts.len();
    for (i, seg) in parts.into_iter().enumerate() {
        if seg == "**" {
            if i + 1 != n {
                return Err(PatternError(format!(
                    "`**` may only be the last segment of `{raw}`"
                )));
            }
            segments.push(PatternSegment::Rest);
        } else if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(PatternError(format!(
                    "parameter `{{{name}}}` in `{raw}` must be a name of letters, digits or `_`"
                )));
            }
            segments.push(PatternSegment::Param(name.to_string()));
        } else if seg.contains(['{', '}', '*']) {
            return Err(PatternError(format!(
                "segment `{seg}` of `{raw}` mixes text with `{{`, `}}` or `*`; use a whole `{{param}}` or a trailing `/**`"
            )));
        } else {
            match canonical(&format!("/{seg}")) {
                Ok(c) if !seg.is_empty() => segments.push(PatternSegment::Static(
                    c.trim_start_matches('/').to_string(),
                )),
                Ok(_) if i + 1 == n && n > 1 => {
                    segments.push(PatternSegment::Static(String::new()))
                }
                Ok(_) => {
                    return Err(PatternError(format!(
                        "path pattern `{raw}` has an empty segment (`//`)"
                    )))
                }
                Err(e) => {
                    return Err(PatternError(format!(
                        "path pattern `{raw}` is not a canonical path: {}",
                        e.describe()
                    )))
                }
            }
        }
    }
    Ok(PathPattern {
        raw: raw.to_string(),
        segments,
    })
}

fn segments_of(raw: &str) -> Vec<&str> {
    segments(raw).collect()
}

/// Does a canonical path match a pattern? (The reference evaluator's matcher.)
pub fn matches(pattern: &PathPattern, path: &str) -> bool {
    let segs: Vec<&str> = segments(path).collect();
    let mut i = 0;
    for p in &pattern.segments {
        match p {
            PatternSegment::Rest => return true,
            PatternSegment::Static(s) => {
                if segs.get(i) != Some(&s.as_str()) {
                    return false;
                }
            }
            PatternSegment::Param(_) => match segs.get(i) {
                Some(s) if !s.is_empty() => {}
                _ => return false,
            },
        }
        i += 1;
    }
    i == segs.len()
}

/// The shape of a pattern, for duplicate detection: parameter names do not matter.
pub fn shape(pattern: &PathPattern) -> Vec<PatternSegment> {
    pattern
        .segments
        .iter()
        .map(|s| match s {
            PatternSegment::Param(_) => PatternSegment::Param(String::new()),
            other => other.clone(),
        })
        .collect()
}

/// Rank vector for precedence: static 0 < param 1 < rest 2, compared lexicographically.
pub fn rank(pattern: &PathPattern) -> Vec<u8> {
    pattern
        .segments
        .iter()
        .map(|s| match s {
            PatternSegment::Static(_) => 0,
            PatternSegment::Param(_) => 1,
            PatternSegment::Rest => 2,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_accepts_plain_paths_and_strips_query() {
        assert_eq!(
            canonical("/v1/charges/ch_1?expand=x").unwrap(),
            "/v1/charges/ch_1"
        );
        assert_eq!(canonical("/").unwrap(), "/");
        assert_eq!(canonical("/a/").unwrap(), "/a/");
        assert_eq!(canonical("/caf%41").unwrap(), "/cafA");
    }

    #[test]
    fn canonical_refuses_every_bypass_shape() {
        for p in [
            "/public/../admin",
            "/a/./b",
            "/..",
            "/a//b",
            "//a",
            "/a%2Fb",
            "/a%2fb",
            "/a%5Cb",
            "/a\\b",
            "/%2e%2e/admin",
            "/a/%2E",
            "/a%00",
            "/a%252F",
            "/a#frag",
            "/a;jsessionid=1",
            "/a%3bx",
            "/a%0a",
            "/a\n",
            "/a b",
            "/a%c0%af",
            "/a%",
            "/a%zz",
            "http://h/a",
            "a/b",
            "",
            "/é",
        ] {
            assert!(canonical(p).is_err(), "{p:?} should be refused");
        }
    }

    #[test]
    fn the_plain_fast_path_agrees_with_the_full_scan() {
        for p in [
            "/",
            "/a",
            "/a/",
            "/a/b",
            "/a/b/",
            "/a?x",
            "/?",
            "/a/?q",
            "/./",
            "/.",
            "/..",
            "/a/.",
            "/a/..",
            "/a/../b",
            "/.a",
            "/a.",
            "/..a/b",
            "/a/.b/",
            "//",
            "//a",
            "/a//",
            "/a//b",
            "/a%41",
            "/a b",
            "/a?b/../c",
            "/a/.?x",
            "/a/..?x",
            "/a/b.txt",
            "",
            "a",
            "/é",
            "/a\\b",
            "/a#b",
            "/a;b",
        ] {
            let fast = plain(p).map(std::borrow::Cow::Borrowed);
            let full = canonical_full(p);
            if let Some(f) = fast {
                assert_eq!(Ok(f), full, "{p:?}");
            }
            assert_eq!(canonical(p), full, "{p:?}");
        }
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        assert_eq!(plain(&long), None);
        assert_eq!(canonical(&long), Err(PathError::TooLong));
        let edge = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
        assert_eq!(canonical(&edge).unwrap(), edge.as_str());
    }

    proptest::proptest! {
        #[test]
        fn canonical_agrees_with_the_full_scan(p in "/[a./%?;2eE]{0,12}") {
            proptest::prop_assert_eq!(canonical(&p), canonical_full(&p));
            if let Some(f) = plain(&p) {
                proptest::prop_assert_eq!(Ok(std::borrow::Cow::Borrowed(f)), canonical_full(&p));
            }
        }
    }

    #[test]
    fn segments_split() {
        assert_eq!(segments("/").count(), 0);
        assert_eq!(segments("/a/b").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(segments("/a/").collect::<Vec<_>>(), ["a", ""]);
    }

    #[test]
    fn patterns_parse_and_match() {
        let p = parse_pattern("/v1/charges/{id}").unwrap();
        assert!(matches(&p, "/v1/charges/ch_1"));
        assert!(!matches(&p, "/v1/charges/"));
        assert!(!matches(&p, "/v1/charges/a/b"));
        let r = parse_pattern("/internal/**").unwrap();
        assert!(matches(&r, "/internal"));
        assert!(matches(&r, "/internal/a/b"));
        assert!(!matches(&r, "/internalx"));
        assert!(matches(&parse_pattern("/").unwrap(), "/"));
        assert!(parse_pattern("/a/**/b").is_err());
        assert!(parse_pattern("/a/{}").is_err());
        assert!(parse_pattern("/a/x{id}").is_err());
        assert!(parse_pattern("/a//b").is_err());
        assert!(parse_pattern("/a/../b").is_err());
        assert!(parse_pattern("a").is_err());
    }
}
