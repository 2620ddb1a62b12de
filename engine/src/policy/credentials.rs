//! Credential definitions: the `type` dispatch, API keys, Basic, and the
//! `in` sources shared by API keys and JWTs.

use serde_yaml::Value;

use super::check;
use super::model::{ApiKeyDef, BasicDef, CredentialKind, Source};
use super::node::{Cx, Node};
use super::{jwt, mtls};

const TYPES: &[&str] = &["api_key", "jwt", "mtls", "basic"];

/// Decodes one credential; `None` if it had any error (already reported).
pub fn credential(cx: &mut Cx<'_>, n: &Node<'_>, name: &str) -> Option<CredentialKind> {
    let before = cx.problems.len();
    let what = format!("credential `{name}`");
    let f = cx.map(n, &what)?;
    let t = f.require(cx, "type")?;
    let ty = cx.string(&t)?;
    let kind = match ty.as_str() {
        "api_key" => api_key(cx, &f, &what).map(CredentialKind::ApiKey),
        "jwt" => jwt::jwt(cx, &f, &what).map(CredentialKind::Jwt),
        "mtls" => mtls::mtls(cx, &f, &what).map(CredentialKind::Mtls),
        "basic" => basic(cx, &f, &what).map(CredentialKind::Basic),
        other => {
            let span = cx.span(&t);
            let help = match check::did_you_mean(other, TYPES.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("credential types: {}", check::list(TYPES)),
            };
            cx.error_help(span, format!("unknown credential type `{other}`"), help);
            None
        }
    };
    if cx.problems.len() != before {
        return None;
    }
    kind
}

const QUERY_HELP: &str = "credentials are never read from query strings";

fn query_like(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.contains("query") || l.contains('?') || l.starts_with("param") || l.contains("url")
}

/// One `in` source: `header:NAME` (lowercased) or `bearer`.
fn source(cx: &mut Cx<'_>, n: &Node<'_>) -> Option<Source> {
    let s = cx.nonempty(n)?;
    let span = cx.span(n);
    if s == "bearer" {
        return Some(Source::Bearer);
    }
    if let Some(name) = s.strip_prefix("header:") {
        if check::is_token(name) {
            return Some(Source::Header(name.to_ascii_lowercase()));
        }
        cx.error_help(
            span,
            format!("bad header name `{name}` in source `{s}`"),
            "a header name is letters, digits and `-` (an http token)",
        );
        return None;
    }
    let help = if query_like(&s) {
        QUERY_HELP.to_string()
    } else if s.eq_ignore_ascii_case("bearer") {
        "write `bearer` in lowercase".to_string()
    } else {
        format!("use `header:NAME` or `bearer`; {QUERY_HELP}")
    };
    cx.error_help(span, format!("unknown credential source `{s}`"), help);
    None
}

/// `in` of an API key or JWT: one source or a list of them.
pub fn sources(cx: &mut Cx<'_>, f: &super::node::Fields<'_>, default: Source) -> Vec<Source> {
    let Some(n) = f.get("in") else {
        return vec![default];
    };
    let items = match n.value {
        Value::String(_) => vec![n.clone()],
        Value::Sequence(_) => cx.seq(&n).unwrap_or_default(),
        _ => {
            cx.wrong_type_help(
                &n,
                "a list of sources",
                "e.g. `in: [header:x-api-key, bearer]`",
            );
            return Vec::new();
        }
    };
    if items.is_empty() {
        let span = cx.span(&n);
        cx.error_help(
            span,
            "`in` is empty",
            "list where the credential is read: `header:NAME` or `bearer`",
        );
    }
    let mut out: Vec<Source> = Vec::new();
    for item in items {
        if let Some(s) = source(cx, &item) {
            if out.contains(&s) {
                let span = cx.span(&item);
                let raw = item.value.as_str().unwrap_or_default();
                cx.error(span, format!("source `{raw}` is listed twice"));
            } else {
                out.push(s);
            }
        }
    }
    out
}

fn api_key(cx: &mut Cx<'_>, f: &super::node::Fields<'_>, _what: &str) -> Option<ApiKeyDef> {
    f.check_known(cx, &["type", "in", "prefixes"]);
    let sources = sources(cx, f, Source::Header("x-api-key".into()));
    let mut prefixes: Vec<String> = Vec::new();
    if let Some(p) = f.get("prefixes") {
        for item in cx.string_list(&p).unwrap_or_default() {
            if !crate::credential::apikey::format::valid_prefix(&item.value) {
                cx.error_help(
                    item.span,
                    format!("bad key prefix `{}`", item.value),
                    "a prefix is 1 to 32 of `A-Z a-z 0-9 _ -`, e.g. `pk_live_`",
                );
            } else if prefixes.contains(&item.value) {
                cx.error(
                    item.span,
                    format!("prefix `{}` is listed twice", item.value),
                );
            } else {
                prefixes.push(item.value);
            }
        }
    }
    Some(ApiKeyDef { sources, prefixes })
}

fn basic(cx: &mut Cx<'_>, f: &super::node::Fields<'_>, what: &str) -> Option<BasicDef> {
    // `in` is known here only to refuse it with the reason.
    f.check_known(
        cx,
        &[
            "type",
            "in",
            "htpasswd_file",
            "grants",
            "realm",
            "cache_ttl",
        ],
    );
    if let Some(n) = f.get("in") {
        let span = cx.key_span(&n);
        cx.error_help(
            span,
            format!("`in` is not allowed in {what}: basic credentials are always read from `authorization`"),
            "remove `in`",
        );
    }
    let htpasswd_file = f
        .require(cx, "htpasswd_file")
        .and_then(|p| cx.file_path(&p));
    let grants = f
        .get("grants")
        .and_then(|g| cx.scope_list(&g))
        .unwrap_or_default();
    let realm = match f.get("realm") {
        Some(r) => {
            let s = cx.nonempty(&r);
            if let Some(s) = &s {
                if s.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
                    let span = cx.span(&r);
                    cx.error_help(
                        span,
                        format!("realm `{s}` may not contain `\"`, `\\` or control characters"),
                        "the realm is quoted in `www-authenticate`",
                    );
                }
            }
            s
        }
        None => Some("portcullis".to_string()),
    };
    let cache_ttl = match f.get("cache_ttl") {
        Some(d) => cx.duration(&d),
        None => Some(std::time::Duration::from_secs(30)),
    };
    Some(BasicDef {
        htpasswd_file: htpasswd_file?,
        grants,
        realm: realm?,
        cache_ttl: cache_ttl?,
    })
}
