//! Lexical checks on single values of a policy (names, headers, hosts,
//! methods, scopes, SPIFFE IDs, fingerprints) and "did you mean" suggestions.

/// RFC 9110 `tchar`: the bytes of a header name or method token.
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A valid HTTP token (header name, method).
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(tchar)
}

/// A header name as the engine stores them: a token, lowercase.
pub fn is_lower_header(s: &str) -> bool {
    is_token(s) && !s.bytes().any(|b| b.is_ascii_uppercase())
}

/// A method: a token with no lowercase letters (methods are case-sensitive).
pub fn is_method(s: &str) -> bool {
    is_token(s) && !s.bytes().any(|b| b.is_ascii_lowercase())
}

/// Names of credentials, rate limits and routes: they appear in decisions,
/// headers and logs, so they are kept to a plain alphabet.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
}

pub const NAME_HELP: &str = "names use letters, digits, `_`, `-`, `.` and `:` (at most 128)";

/// Scopes and grants are joined with spaces in headers, so none may hold one.
pub fn is_scope(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic())
}

/// Why a route host is refused, if it is.
pub fn host_problem(h: &str) -> Option<(String, Option<String>)> {
    if h.is_empty() {
        return Some((
            "host is empty".into(),
            Some("omit `host` to match any host".into()),
        ));
    }
    if let Some(i) = h.find("://") {
        let rest = h.get(i + 3..).unwrap_or("");
        return Some((
            format!("host `{h}` has a scheme"),
            Some(format!(
                "write the host alone: `{}`",
                rest.trim_end_matches('/')
            )),
        ));
    }
    if h.contains(':') {
        let bare = h.split(':').next().unwrap_or("");
        return Some((
            format!("host `{h}` has a port"),
            Some(format!(
                "hosts are matched without the port: `{bare}` (the port is stripped from the request's host)"
            )),
        ));
    }
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some((
            format!("host `{h}` must be lowercase"),
            Some(format!("write `{}`", h.to_ascii_lowercase())),
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    if h.len() > 253 || !h.split('.').all(label_ok) {
        return Some((
            format!("host `{h}` is not a valid host name"),
            Some("use lowercase letters, digits, `-` and `.`, with no path".into()),
        ));
    }
    None
}

/// Is this a SPIFFE ID pattern `spiffe://trust-domain/path`, optionally ending in `/*`?
/// Rules from SECURITY.md: lowercase trust domain, plain path segments, no
/// trailing slash, query, fragment, port, userinfo or percent-encoding.
pub fn is_spiffe_pattern(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("spiffe://") else {
        return false;
    };
    if s.len() > 2048 {
        return false;
    }
    let (td, path) = match rest.find('/') {
        Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("")),
        None => (rest, ""),
    };
    let td_ok = !td.is_empty()
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !td_ok {
        return false;
    }
    if path.is_empty() {
        return true;
    }
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let n = segs.len();
    segs.iter().enumerate().all(|(i, seg)| {
        (*seg == "*" && i + 1 == n)
            || (!seg.is_empty()
                && *seg != "."
                && *seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
    })
}

/// A SHA-256 fingerprint as 64 hex digits, `:` separators allowed, normalised to lowercase without them.
pub fn normalize_fingerprint(s: &str) -> Option<String> {
    let hex: String = s.chars().filter(|&c| c != ':').collect();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// An environment variable name as shells accept it.
pub fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Edit distance, for "did you mean". Written here because the engine takes
/// no dependency for a dozen lines used only on error paths.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        if let Some(c0) = cur.first_mut() {
            *c0 = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let sub = prev
                .get(j)
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(usize::from(ca != *cb));
            let del = prev
                .get(j + 1)
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let ins = cur.get(j).copied().unwrap_or(usize::MAX).saturating_add(1);
            if let Some(slot) = cur.get_mut(j + 1) {
                *slot = sub.min(del).min(ins);
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev.last().copied().unwrap_or(0)
}

/// The closest candidate, if close enough to be a likely typo.
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // Inputs are user text of any length; past this, no typo is likely and the work is wasted.
    if input.chars().count() > 64 {
        return None;
    }
    let lower = input.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = if c.to_lowercase() == lower {
            0
        } else {
            distance(&lower, &c.to_lowercase())
        };
        let limit = (c.chars().count() / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `a, b, c` in backticks.
pub fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        let c = ["partner_key", "user_jwt", "mesh"];
        assert_eq!(did_you_mean("partner_kye", c), Some("partner_key"));
        assert_eq!(did_you_mean("User_JWT", c), Some("user_jwt"));
        assert_eq!(did_you_mean("zzz", c), None);
        assert_eq!(did_you_mean("", c), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn hosts() {
        assert!(host_problem("api.example.com").is_none());
        assert!(host_problem("localhost").is_none());
        assert!(host_problem("API.example.com").is_some());
        assert!(host_problem("api.example.com:443").is_some());
        assert!(host_problem("https://api.example.com").is_some());
        assert!(host_problem("a..b").is_some());
        assert!(host_problem("a/b").is_some());
    }

    #[test]
    fn spiffe_patterns() {
        assert!(is_spiffe_pattern("spiffe://corp.example/ns/billing/*"));
        assert!(is_spiffe_pattern("spiffe://corp.example/ns/billing/sa/api"));
        assert!(is_spiffe_pattern("spiffe://corp.example"));
        assert!(!is_spiffe_pattern("spiffe://Corp.example/x"));
        assert!(!is_spiffe_pattern("spiffe://corp.example/x/"));
        assert!(!is_spiffe_pattern("spiffe://corp.example/../x"));
        assert!(!is_spiffe_pattern("spiffe://corp.example:8080/x"));
        assert!(!is_spiffe_pattern("spiffe://corp.example/x%2f"));
        assert!(!is_spiffe_pattern("spiffe://corp.example/*/x"));
        assert!(!is_spiffe_pattern("https://corp.example/x"));
    }

    #[test]
    fn tokens_and_fingerprints() {
        assert!(
            is_method("GET") && is_method("PROPFIND") && !is_method("get") && !is_method("G T")
        );
        assert!(
            is_lower_header("x-api-key")
                && !is_lower_header("X-Api-Key")
                && !is_lower_header("a b")
        );
        let hex = "AB".repeat(32);
        assert_eq!(normalize_fingerprint(&hex), Some("ab".repeat(32)));
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(normalize_fingerprint(&colons), Some("ab".repeat(32)));
        assert_eq!(normalize_fingerprint("abcd"), None);
        assert!(is_env_name("JWT_SECRET") && !is_env_name("1X") && !is_env_name("A-B"));
    }
}
