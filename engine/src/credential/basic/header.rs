//! `Authorization: Basic base64(user:password)` (RFC 7617), read strictly.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::request::{HeaderLookup, Headers};

/// Longest base64 credential accepted, checked before decoding.
pub const MAX_CREDENTIAL_BYTES: usize = 4096;

/// What the `Authorization` header holds, for Basic.
#[derive(PartialEq, Eq)]
pub enum Basic {
    /// No `Authorization`, or another scheme (Bearer, ...).
    Absent,
    /// Given twice, or comma-merged by a proxy.
    Ambiguous,
    /// A Basic header that cannot be read; the detail holds no secret.
    Malformed(&'static str),
    Credentials {
        user: String,
        password: String,
    },
}

// The password must never be printed.
impl std::fmt::Debug for Basic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Basic::Absent => f.write_str("Absent"),
            Basic::Ambiguous => f.write_str("Ambiguous"),
            Basic::Malformed(why) => write!(f, "Malformed({why:?})"),
            Basic::Credentials { user, .. } => write!(f, "Credentials({user:?}, <redacted>)"),
        }
    }
}

pub fn parse(headers: &Headers) -> Basic {
    let value = match headers.get_one("authorization") {
        HeaderLookup::Absent => return Basic::Absent,
        HeaderLookup::Repeated => return Basic::Ambiguous,
        HeaderLookup::NotUtf8 => return Basic::Malformed("authorization header is not utf-8"),
        HeaderLookup::One(v) => v,
    };
    let value = value.trim_matches([' ', '\t']);
    let (scheme, rest) = match value.split_once([' ', '\t']) {
        Some((s, r)) => (s, r.trim_start_matches([' ', '\t'])),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Basic::Absent;
    }
    // Proxies merge repeated headers with commas; base64 never holds one.
    if value.contains(',') {
        return Basic::Ambiguous;
    }
    if rest.is_empty() {
        return Basic::Malformed("basic credentials are missing");
    }
    if rest.len() > MAX_CREDENTIAL_BYTES {
        return Basic::Malformed("basic credentials are too long");
    }
    let Ok(bytes) = STANDARD.decode(rest) else {
        return Basic::Malformed("basic credentials are not strict base64");
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return Basic::Malformed("basic credentials are not utf-8");
    };
    let Some((user, password)) = text.split_once(':') else {
        return Basic::Malformed("basic credentials have no `:`");
    };
    if user.is_empty() {
        return Basic::Malformed("basic user name is empty");
    }
    // RFC 7617: neither part may hold control characters.
    if text.chars().any(char::is_control) {
        return Basic::Malformed("basic credentials hold a control character");
    }
    Basic::Credentials {
        user: user.to_string(),
        password: password.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(values: &[&str]) -> Headers {
        let mut h = Headers::new();
        for v in values {
            h.append("Authorization", *v);
        }
        h
    }

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    #[test]
    fn reads_user_and_password() {
        for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
            let got = parse(&h(&[&format!("{scheme}  {}", b64("alice:pa:ss word"))]));
            assert_eq!(
                got,
                Basic::Credentials {
                    user: "alice".into(),
                    password: "pa:ss word".into()
                }
            );
        }
        let empty_pw = parse(&h(&[&format!("Basic {}", b64("alice:"))]));
        assert!(matches!(empty_pw, Basic::Credentials { password, .. } if password.is_empty()));
    }

    #[test]
    fn other_schemes_are_absent() {
        assert_eq!(parse(&h(&[])), Basic::Absent);
        assert_eq!(parse(&h(&["Bearer abc"])), Basic::Absent);
        assert_eq!(parse(&h(&["Digest username=\"a\""])), Basic::Absent);
        assert_eq!(parse(&h(&["Basicx YTpi"])), Basic::Absent);
    }

    #[test]
    fn malformed_and_ambiguous() {
        let ok = format!("Basic {}", b64("a:b"));
        assert_eq!(parse(&h(&[&ok, &ok])), Basic::Ambiguous);
        assert_eq!(parse(&h(&[&format!("{ok},{ok}")])), Basic::Ambiguous);
        let mut bad = Headers::new();
        bad.append_invalid("authorization");
        assert!(matches!(parse(&bad), Basic::Malformed(_)));
        for v in [
            "Basic".to_string(),
            "Basic ".to_string(),
            "Basic YTpi".to_string() + "=",
            "Basic YTpi YTpi".to_string(),
            "Basic YWI".to_string(),
            format!("Basic {}", b64("nocolon")),
            format!("Basic {}", b64(":pw")),
            format!("Basic {}", b64("a:b\nc")),
            format!("Basic {}", b64("a\u{0}:b")),
            format!("Basic {}", STANDARD.encode([0x61, 0x3a, 0xff])),
            format!("Basic {}", "QQ".repeat(MAX_CREDENTIAL_BYTES)),
            "Basic YTpi%3D".to_string(),
            "Basic YT-i".to_string(),
        ] {
            assert!(matches!(parse(&h(&[&v])), Basic::Malformed(_)), "{v}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let got = parse(&h(&[&format!("Basic {}", b64("alice:hunter2"))]));
        assert!(!format!("{got:?}").contains("hunter2"));
    }
}
