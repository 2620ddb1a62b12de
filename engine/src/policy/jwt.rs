//! JWT credential definitions: pinned algorithms, one key source, and the
//! rule that binds each key source to one algorithm family (SECURITY.md: an
//! HMAC key is never built from public-key material, and vice versa).

use std::time::Duration;

use serde_yaml::Value;

use super::check;
use super::credentials::sources;
use super::model::{JwtAlgorithm, JwtDef, JwtKeySource, Source, Spanned};
use super::node::{Cx, Fields, Node};

const FIELDS: &[&str] = &[
    "type",
    "in",
    "issuer",
    "audience",
    "algorithms",
    "keys",
    "leeway",
    "max_lifetime",
    "require_claims",
    "scopes_claim",
    "principal_claim",
    "typ",
    "max_token_bytes",
    "cache_size",
];

const KEY_SOURCES: &[&str] = &["jwks_file", "jwks_url", "secret_env", "pem_file"];
const KEY_FIELDS: &[&str] = &[
    "jwks_file",
    "jwks_url",
    "refresh",
    "refetch_min_interval",
    "secret_env",
    "pem_file",
];

/// Largest `max_token_bytes` accepted: a bigger token is an attack, not a login.
const MAX_TOKEN_BYTES_CAP: u64 = 1 << 20;

/// Which keys an algorithm verifies with: one key source serves one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Hmac,
    Rsa,
    P256,
    P384,
    Ed25519,
}

fn family(a: JwtAlgorithm) -> Family {
    use JwtAlgorithm::*;
    match a {
        HS256 | HS384 | HS512 => Family::Hmac,
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Family::Rsa,
        ES256 => Family::P256,
        ES384 => Family::P384,
        EdDSA => Family::Ed25519,
    }
}

fn algorithms(cx: &mut Cx<'_>, n: &Node<'_>) -> Vec<Spanned<JwtAlgorithm>> {
    let Some(items) = cx.string_list(n) else {
        return Vec::new();
    };
    if items.is_empty() {
        let span = cx.span(n);
        cx.error_help(
            span,
            "`algorithms` is empty",
            "pin the algorithm your issuer signs with, e.g. `[ES256]`",
        );
    }
    let names: Vec<&str> = JwtAlgorithm::ALL.iter().map(|a| a.name()).collect();
    let mut out: Vec<Spanned<JwtAlgorithm>> = Vec::new();
    for item in items {
        let s = item.value.as_str();
        if s.eq_ignore_ascii_case("none") {
            cx.error_help(
                item.span,
                format!("`{s}` can never be an allowed algorithm"),
                "`none` means an unsigned token that anyone can forge; list the algorithm your issuer signs with",
            );
        } else if s.eq_ignore_ascii_case("ES512") {
            cx.error_help(
                item.span,
                format!("algorithm `{s}` is not supported"),
                "use `ES256` or `ES384` (ES512 verification is refused, see SECURITY.md)",
            );
        } else if let Some(a) = JwtAlgorithm::from_name(s) {
            if out.iter().any(|x| x.value == a) {
                cx.error(item.span, format!("algorithm `{s}` is listed twice"));
            } else {
                out.push(Spanned::new(a, item.span));
            }
        } else {
            let help = match names.iter().find(|n| n.eq_ignore_ascii_case(s)) {
                Some(n) => format!("algorithm names are case-sensitive: did you mean `{n}`?"),
                None => format!("supported algorithms: {}", names.join(", ")),
            };
            cx.error_help(item.span, format!("unknown algorithm `{s}`"), help);
        }
    }
    out
}

/// The `keys` mapping: exactly one source, with `refresh` settings only for a URL.
fn key_source(cx: &mut Cx<'_>, n: &Node<'_>, what: &str) -> Option<Spanned<JwtKeySource>> {
    let span = cx.span(n);
    let f = match n.value {
        Value::Mapping(_) => cx.map(n, &format!("`keys` of {what}"))?,
        _ => {
            cx.wrong_type_help(
                n,
                "a mapping",
                "e.g. `keys: {jwks_file: keys/jwks.json}`, `{jwks_url: URL}`, `{secret_env: NAME}` or `{pem_file: PATH}`",
            );
            return None;
        }
    };
    f.check_known(cx, KEY_FIELDS);
    let given: Vec<&str> = KEY_SOURCES.iter().copied().filter(|k| f.has(k)).collect();
    let chosen = match given.as_slice() {
        [] => {
            cx.error_help(
                span,
                format!("`keys` of {what} names no key source"),
                format!("give exactly one of {}", check::list(KEY_SOURCES)),
            );
            return None;
        }
        [one] => *one,
        [first, rest @ ..] => {
            for other in rest {
                if let Some(node) = f.get(other) {
                    let s = cx.key_span(&node);
                    cx.error_help(
                        s,
                        format!("`keys` names both `{first}` and `{other}`"),
                        format!("give exactly one of {}", check::list(KEY_SOURCES)),
                    );
                }
            }
            return None;
        }
    };
    if chosen != "jwks_url" {
        for extra in ["refresh", "refetch_min_interval"] {
            if let Some(node) = f.get(extra) {
                let s = cx.key_span(&node);
                cx.error(s, format!("`{extra}` is only valid with `jwks_url`"));
            }
        }
    }
    let node = f.get(chosen)?;
    let source = match chosen {
        "jwks_file" => JwtKeySource::JwksFile(cx.file_path(&node)?.value),
        "pem_file" => JwtKeySource::PemFile(cx.file_path(&node)?.value),
        "secret_env" => {
            let name = cx.nonempty(&node)?;
            if !check::is_env_name(&name) {
                let s = cx.span(&node);
                cx.error_help(
                    s,
                    format!("`{name}` is not an environment variable name"),
                    "use letters, digits and `_`, not starting with a digit",
                );
                return None;
            }
            JwtKeySource::SecretEnv(name)
        }
        _ => {
            let url = cx.nonempty(&node)?;
            let host = url.strip_prefix("https://").unwrap_or("");
            let host_ok = !host.is_empty()
                && !host.starts_with('/')
                && !url.chars().any(|c| c.is_whitespace() || c.is_control());
            if !url.starts_with("https://") || !host_ok {
                let s = cx.span(&node);
                cx.error_help(
                    s,
                    format!("`jwks_url` must be an `https://` url, found `{url}`"),
                    "keys are only fetched over https",
                );
                return None;
            }
            let refresh = match f.get("refresh") {
                Some(d) => cx.duration(&d),
                None => Some(Duration::from_secs(300)),
            };
            let refetch_min_interval = match f.get("refetch_min_interval") {
                Some(d) => cx.duration(&d),
                None => Some(Duration::from_secs(30)),
            };
            JwtKeySource::JwksUrl {
                url,
                refresh: refresh?,
                refetch_min_interval: refetch_min_interval?,
            }
        }
    };
    Some(Spanned::new(source, span))
}

/// One algorithm family per key source; HMAC only from `secret_env`, whose
/// secret must be set and at least as long as the hash output.
fn check_families(
    cx: &mut Cx<'_>,
    algs: &[Spanned<JwtAlgorithm>],
    keys: &Spanned<JwtKeySource>,
    secret_node: Option<&Node<'_>>,
) {
    match &keys.value {
        JwtKeySource::SecretEnv(var) => {
            let mut ok = true;
            for a in algs.iter().filter(|a| family(a.value) != Family::Hmac) {
                ok = false;
                cx.error_help(
                    a.span,
                    format!("algorithm `{}` cannot use a `secret_env` key", a.value.name()),
                    "a shared secret only verifies HS256, HS384 or HS512 (one algorithm family per key source)",
                );
            }
            let need = algs.iter().filter_map(|a| a.value.hmac_min_len()).max();
            let (Some(need), true) = (need, ok) else {
                return;
            };
            let at = secret_node.map(|n| cx.span(n)).unwrap_or(keys.span);
            // The secret itself is never printed, nor its length.
            match std::env::var_os(var) {
                None => cx.error_help(
                    at,
                    format!("environment variable `{var}` (the `secret_env` key) is not set"),
                    "set it before loading the policy",
                ),
                Some(v) if v.as_encoded_bytes().len() < need => {
                    let alg = algs
                        .iter()
                        .filter(|a| a.value.hmac_min_len() == Some(need))
                        .map(|a| a.value.name())
                        .next()
                        .unwrap_or("hmac");
                    cx.error_help(
                        at,
                        format!(
                            "the secret in environment variable `{var}` is too short: {alg} needs at least {need} bytes"
                        ),
                        "an hmac secret must be at least as long as the hash output; generate a random one",
                    );
                }
                Some(_) => {}
            }
        }
        other => {
            let source = match other {
                JwtKeySource::JwksFile(_) => "jwks_file",
                JwtKeySource::JwksUrl { .. } => "jwks_url",
                _ => "pem_file",
            };
            for a in algs.iter().filter(|a| family(a.value) == Family::Hmac) {
                cx.error_help(
                    a.span,
                    format!("algorithm `{}` needs `keys: {{secret_env: NAME}}`, not `{source}`", a.value.name()),
                    "an hmac key is never built from public key material (one algorithm family per key source)",
                );
            }
            // One PEM holds one key, so one family; a JWKS holds one key per `kid`.
            if matches!(other, JwtKeySource::PemFile(_)) {
                let mut asym = algs.iter().filter(|a| family(a.value) != Family::Hmac);
                if let Some(first) = asym.next() {
                    for a in asym.filter(|a| family(a.value) != family(first.value)) {
                        cx.error_help(
                            a.span,
                            format!(
                                "algorithms `{}` and `{}` need different key types; a `pem_file` holds one key",
                                first.value.name(),
                                a.value.name()
                            ),
                            "use one algorithm family per key source (RS/PS, ES256, ES384 or EdDSA)",
                        );
                    }
                }
            }
        }
    }
}

fn opt_string(cx: &mut Cx<'_>, f: &Fields<'_>, name: &str) -> Option<Option<String>> {
    match f.get(name) {
        Some(n) => cx.nonempty(&n).map(Some),
        None => Some(None),
    }
}

pub fn jwt(cx: &mut Cx<'_>, f: &Fields<'_>, what: &str) -> Option<JwtDef> {
    f.check_known(cx, FIELDS);
    let sources = sources(cx, f, Source::Bearer);
    let issuer = opt_string(cx, f, "issuer");
    let audience = match f.get("audience") {
        None => Some(Vec::new()),
        Some(n) => match n.value {
            Value::String(_) => cx.nonempty(&n).map(|s| vec![s]),
            _ => cx
                .string_list(&n)
                .map(|v| v.into_iter().map(|s| s.value).collect()),
        },
    };
    let algs = f
        .require(cx, "algorithms")
        .map(|n| algorithms(cx, &n))
        .unwrap_or_default();
    let keys_node = f.require(cx, "keys");
    let keys = keys_node.as_ref().and_then(|n| key_source(cx, n, what));
    if let (Some(k), Some(kn)) = (&keys, &keys_node) {
        let secret = match kn.value {
            Value::Mapping(m) => m.get("secret_env").map(|v| Node {
                value: v,
                path: kn.path.key("secret_env"),
            }),
            _ => None,
        };
        check_families(cx, &algs, k, secret.as_ref());
    }
    let leeway = match f.get("leeway") {
        Some(n) => cx.duration(&n),
        None => Some(Duration::from_secs(30)),
    };
    let max_lifetime = match f.get("max_lifetime") {
        Some(n) => cx.duration(&n).map(Some),
        None => Some(None),
    };
    let require_claims = match f.get("require_claims") {
        Some(n) => cx
            .string_list(&n)
            .map(|v| v.into_iter().map(|s| s.value).collect()),
        None => Some(vec!["exp".to_string()]),
    };
    let scopes_claim = opt_string(cx, f, "scopes_claim");
    let principal_claim =
        opt_string(cx, f, "principal_claim").map(|p| p.unwrap_or_else(|| "sub".into()));
    let typ = opt_string(cx, f, "typ");
    let max_token_bytes = match f.get("max_token_bytes") {
        Some(n) => cx.uint_min(&n, 1).and_then(|v| {
            if v > MAX_TOKEN_BYTES_CAP {
                let span = cx.span(&n);
                cx.error(
                    span,
                    format!("`max_token_bytes` may be at most {MAX_TOKEN_BYTES_CAP}, found `{v}`"),
                );
                return None;
            }
            usize::try_from(v).ok()
        }),
        None => Some(8192),
    };
    let cache_size = match f.get("cache_size") {
        Some(n) => cx.uint(&n).and_then(|v| {
            let r = usize::try_from(v).ok().filter(|v| *v <= 100_000_000);
            if r.is_none() {
                let span = cx.span(&n);
                cx.error(span, format!("`cache_size` `{v}` is too large"));
            }
            r
        }),
        None => Some(10_000),
    };
    Some(JwtDef {
        sources,
        issuer: issuer?,
        audience: audience?,
        algorithms: algs.into_iter().map(|a| a.value).collect(),
        keys: keys?,
        leeway: leeway?,
        max_lifetime: max_lifetime?,
        require_claims: require_claims?,
        scopes_claim: scopes_claim?,
        principal_claim: principal_claim?,
        typ: typ?,
        max_token_bytes: max_token_bytes?,
        cache_size: cache_size?,
    })
}
