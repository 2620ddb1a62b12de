//! Decodes one policy document (a [`serde_yaml::Value`]) into a [`Draft`]:
//! the model with names not yet resolved, every error recorded with its place.

use serde_yaml::Value;

use super::check;
use super::credentials;
use super::model::{
    CredentialKind, IdentityHeaders, RateKey, RateLimitDef, RouteMatch, ScopeRequirement, Settings,
    Span, Spanned, Unmatched,
};
use super::node::{Cx, Node};
use super::positions::NodePath;

/// Deepest nesting of `any_of` / `all_of` in a `require`.
pub const MAX_REQUIRE_DEPTH: usize = 32;

/// A requirement naming credentials by name, resolved once every file is read.
#[derive(Debug, Clone)]
pub enum DraftReq {
    Public,
    Name(Spanned<String>),
    AnyOf(Vec<DraftReq>),
    AllOf(Vec<DraftReq>),
}

/// A route as far as it decoded: parts with errors are `None`, and `ok` is
/// false if anything in the route was wrong. Kept anyway, so its references
/// and its path are still checked against the rest of the policy.
#[derive(Debug)]
pub struct DraftRoute {
    pub ok: bool,
    pub name: Option<Spanned<String>>,
    /// The matcher, and where `match.path` was written (for duplicate-route errors).
    pub matcher: Option<(RouteMatch, Span)>,
    pub require: Option<DraftReq>,
    pub scopes: Option<ScopeRequirement>,
    pub rate_limit: Option<Spanned<String>>,
    pub span: Span,
}

/// Everything one file defines. Parts that had errors are absent, but their
/// names are kept so they do not also cause "unknown name" errors.
#[derive(Debug, Default)]
pub struct Draft {
    pub settings: Option<(Settings, Span)>,
    pub credentials: Vec<(Spanned<String>, Option<CredentialKind>)>,
    pub rate_limits: Vec<(Spanned<String>, Option<RateLimitDef>)>,
    pub route_names: Vec<Spanned<String>>,
    pub routes: Vec<DraftRoute>,
    /// False when `credentials` or `rate_limits` could not be read as a
    /// whole, so "unknown name" errors would only be noise.
    pub names_complete: bool,
}

const TOP_FIELDS: &[&str] = &[
    "version",
    "settings",
    "credentials",
    "rate_limits",
    "routes",
];

/// Decodes a whole document.
pub fn document(cx: &mut Cx<'_>, root: &Value) -> Draft {
    let mut draft = Draft {
        names_complete: true,
        ..Draft::default()
    };
    let root = Node {
        value: root,
        path: NodePath::root(),
    };
    if matches!(root.value, Value::Null) {
        let span = cx.span(&root);
        cx.error_help(
            Span {
                line: 0,
                col: 0,
                ..span
            },
            "policy file is empty",
            "a policy starts with `version: 1`",
        );
        return draft;
    }
    let Some(top) = cx.map(&root, "the policy") else {
        return draft;
    };
    top.check_known(cx, TOP_FIELDS);
    if let Some(v) = top.require(cx, "version") {
        version(cx, &v);
    }
    if let Some(s) = top.get("settings") {
        let span = cx.key_span(&s);
        if let Some(settings) = settings(cx, &s) {
            draft.settings = Some((settings, span));
        }
    }
    if let Some(c) = top.get("credentials").filter(|n| !n.value.is_null()) {
        let f = cx.map(&c, "`credentials`");
        draft.names_complete &= f.is_some();
        if let Some(f) = f {
            for k in f.keys().map(str::to_string).collect::<Vec<_>>() {
                let Some(node) = f.get(&k) else { continue };
                let name = Spanned::new(k.clone(), cx.key_span(&node));
                if !check::is_name(&k) {
                    cx.error_help(
                        name.span,
                        format!("bad credential name `{k}`"),
                        check::NAME_HELP,
                    );
                }
                let kind = credentials::credential(cx, &node, &k);
                draft.credentials.push((name, kind));
            }
        }
    }
    if let Some(r) = top.get("rate_limits").filter(|n| !n.value.is_null()) {
        let f = cx.map(&r, "`rate_limits`");
        draft.names_complete &= f.is_some();
        if let Some(f) = f {
            for k in f.keys().map(str::to_string).collect::<Vec<_>>() {
                let Some(node) = f.get(&k) else { continue };
                let name = Spanned::new(k.clone(), cx.key_span(&node));
                if !check::is_name(&k) {
                    cx.error_help(
                        name.span,
                        format!("bad rate limit name `{k}`"),
                        check::NAME_HELP,
                    );
                }
                let def = rate_limit(cx, &node, name.clone());
                draft.rate_limits.push((name, def));
            }
        }
    }
    if let Some(r) = top.get("routes").filter(|n| !n.value.is_null()) {
        if let Some(items) = cx.seq(&r) {
            for item in items {
                route(cx, &item, &mut draft);
            }
        }
    }
    draft
}

fn version(cx: &mut Cx<'_>, n: &Node<'_>) {
    match n.value {
        Value::Number(num) if num.as_u64() == Some(1) => {}
        Value::Number(num) => {
            let span = cx.span(n);
            cx.error_help(
                span,
                format!("unsupported policy version `{num}`"),
                "this portcullis reads `version: 1`",
            );
        }
        _ => cx.wrong_type_help(n, "the number 1", "write `version: 1`"),
    }
}

fn settings(cx: &mut Cx<'_>, n: &Node<'_>) -> Option<Settings> {
    let before = cx.problems.len();
    let f = cx.map(n, "`settings`")?;
    f.check_known(cx, &["unmatched", "identity_headers"]);
    let mut out = Settings::default();
    if let Some(u) = f.get("unmatched") {
        match cx.string(&u).as_deref() {
            Some("deny") => out.unmatched = Unmatched::Deny,
            Some("allow") => out.unmatched = Unmatched::Allow,
            Some(other) => {
                let span = cx.span(&u);
                cx.error_help(
                    span,
                    format!("unknown value `{other}` for `settings.unmatched`"),
                    "use `deny` (403 `no_route`) or `allow`",
                );
            }
            None => {}
        }
    }
    if let Some(h) = f.get("identity_headers") {
        if let Some(hf) = cx.map(&h, "`settings.identity_headers`") {
            hf.check_known(cx, &["principal", "consumer", "scopes", "credential"]);
            let d = IdentityHeaders::default();
            let fields = ["principal", "consumer", "scopes", "credential"];
            let mut vals: Vec<(String, Option<Span>)> =
                [d.principal, d.consumer, d.scopes, d.credential]
                    .into_iter()
                    .map(|v| (v, None))
                    .collect();
            for (field, slot) in fields.iter().zip(vals.iter_mut()) {
                let Some(v) = hf.get(field) else { continue };
                let Some(s) = cx.nonempty(&v) else { continue };
                let span = cx.span(&v);
                if !check::is_lower_header(&s) {
                    let help = if check::is_token(&s) {
                        format!(
                            "header names are lowercase here: `{}`",
                            s.to_ascii_lowercase()
                        )
                    } else {
                        "a header name is letters, digits and `-` (an http token)".to_string()
                    };
                    cx.error_help(span, format!("bad identity header name `{s}`"), help);
                    continue;
                }
                *slot = (s, Some(span));
            }
            for i in 0..vals.len() {
                for j in 0..i {
                    if let (Some((a, sa)), Some((b, sb))) = (vals.get(i), vals.get(j)) {
                        if a == b {
                            let span = sa.or(*sb).unwrap_or_else(|| cx.span(&h));
                            let (fa, fb) = (
                                fields.get(j).copied().unwrap_or(""),
                                fields.get(i).copied().unwrap_or(""),
                            );
                            cx.error(
                                span,
                                format!("identity header `{a}` is used for both `{fa}` and `{fb}`"),
                            );
                        }
                    }
                }
            }
            let mut it = vals.into_iter().map(|(v, _)| v);
            let ih = IdentityHeaders {
                principal: it.next().unwrap_or_default(),
                consumer: it.next().unwrap_or_default(),
                scopes: it.next().unwrap_or_default(),
                credential: it.next().unwrap_or_default(),
            };
            out.identity_headers = ih;
        }
    }
    (cx.problems.len() == before).then_some(out)
}

fn rate_limit(cx: &mut Cx<'_>, n: &Node<'_>, name: Spanned<String>) -> Option<RateLimitDef> {
    let before = cx.problems.len();
    let what = format!("rate limit `{}`", name.value);
    let f = cx.map(n, &what)?;
    f.check_known(cx, &["limit", "per", "burst", "key"]);
    let limit = f.require(cx, "limit").and_then(|v| cx.uint_min(&v, 1));
    let per = f.require(cx, "per").and_then(|v| cx.duration(&v));
    let burst = f.get("burst").and_then(|v| cx.uint_min(&v, 1));
    let mut key = RateKey::Consumer;
    if let Some(k) = f.get("key") {
        match cx.string(&k).as_deref() {
            Some("consumer") => key = RateKey::Consumer,
            Some("credential") => key = RateKey::Credential,
            Some("principal") => key = RateKey::Principal,
            Some("source_ip") => key = RateKey::SourceIp,
            Some(other) => {
                let span = cx.span(&k);
                cx.error_help(
                    span,
                    format!("unknown rate limit key `{other}`"),
                    "use `consumer`, `credential`, `principal` or `source_ip`",
                );
            }
            None => {}
        }
    }
    if cx.problems.len() != before {
        return None;
    }
    let (limit, per) = (limit?, per?);
    Some(RateLimitDef {
        name,
        limit,
        per,
        burst: burst.unwrap_or(limit),
        key,
    })
}

fn route(cx: &mut Cx<'_>, n: &Node<'_>, draft: &mut Draft) {
    let before = cx.problems.len();
    let span = cx.span(n);
    // The name first, so later messages can say which route.
    let name = match n.value {
        Value::Mapping(m) => m.get("name").and_then(|v| {
            cx.spanned_string(&Node {
                value: v,
                path: n.path.key("name"),
            })
        }),
        _ => None,
    };
    let what = match &name {
        Some(nm) => format!("route `{}`", nm.value),
        None => "a route".to_string(),
    };
    let Some(f) = cx.map(n, &what) else { return };
    f.check_known(cx, &["name", "match", "require", "scopes", "rate_limit"]);
    if f.require(cx, "name").is_some() {
        if let Some(nm) = &name {
            if !check::is_name(&nm.value) {
                cx.error_help(
                    nm.span,
                    format!("bad route name `{}`", nm.value),
                    check::NAME_HELP,
                );
            } else {
                draft.route_names.push(nm.clone());
            }
        }
    }
    let matcher = f.require(cx, "match").and_then(|m| matcher(cx, &m, &what));
    let require = f
        .require(cx, "require")
        .and_then(|r| requirement(cx, &r, 0));
    let scopes = match f.get("scopes") {
        Some(s) => scope_requirement(cx, &s),
        None => Some(ScopeRequirement::None),
    };
    let rate_limit = f.get("rate_limit").and_then(|r| cx.spanned_string(&r));
    draft.routes.push(DraftRoute {
        ok: cx.problems.len() == before,
        name,
        matcher,
        require,
        scopes,
        rate_limit,
        span,
    });
}

fn matcher(cx: &mut Cx<'_>, n: &Node<'_>, route: &str) -> Option<(RouteMatch, Span)> {
    let before = cx.problems.len();
    let f = cx.map(n, &format!("`match` of {route}"))?;
    f.check_known(cx, &["host", "methods", "path"]);
    let host = f.get("host").and_then(|h| {
        let s = cx.string(&h)?;
        if let Some((msg, help)) = check::host_problem(&s) {
            let span = cx.span(&h);
            match help {
                Some(help) => cx.error_help(span, msg, help),
                None => cx.error(span, msg),
            }
            return None;
        }
        Some(s)
    });
    let mut methods: Vec<String> = Vec::new();
    if let Some(m) = f.get("methods") {
        if let Some(items) = cx.string_list(&m) {
            if items.is_empty() {
                let span = cx.span(&m);
                cx.error_help(
                    span,
                    "`methods` is empty",
                    "omit `methods` to match any method",
                );
            }
            for item in items {
                let s = item.value;
                if !check::is_method(&s) {
                    if check::is_token(&s) {
                        cx.error_help(
                            item.span,
                            format!("method `{s}` must be uppercase"),
                            format!(
                                "methods are case-sensitive: write `{}`",
                                s.to_ascii_uppercase()
                            ),
                        );
                    } else {
                        cx.error(item.span, format!("`{s}` is not an http method"));
                    }
                } else if methods.contains(&s) {
                    cx.error(item.span, format!("method `{s}` is listed twice"));
                } else {
                    methods.push(s);
                }
            }
        }
    }
    let path = f.require(cx, "path").and_then(|p| {
        let raw = cx.string(&p)?;
        let span = cx.span(&p);
        match crate::path::parse_pattern(&raw) {
            Ok(pat) => Some((pat, span)),
            Err(e) => {
                cx.error_help(
                    span,
                    e.0,
                    "a pattern is static segments, whole `{param}` segments and an optional trailing `/**`",
                );
                None
            }
        }
    });
    if cx.problems.len() != before {
        return None;
    }
    let (path, span) = path?;
    Some((
        RouteMatch {
            host,
            methods,
            path,
        },
        span,
    ))
}

/// `require`: a credential name, `public`, or `{any_of|all_of: [...]}`, nesting.
pub fn requirement(cx: &mut Cx<'_>, n: &Node<'_>, depth: usize) -> Option<DraftReq> {
    if depth > MAX_REQUIRE_DEPTH {
        let span = cx.span(n);
        cx.error(
            span,
            format!("`require` nests `any_of`/`all_of` more than {MAX_REQUIRE_DEPTH} levels deep"),
        );
        return None;
    }
    match n.value {
        Value::String(s) if s == "public" => Some(DraftReq::Public),
        Value::String(s) if s.is_empty() => {
            let span = cx.span(n);
            cx.error(span, format!("`{}` may not be empty", n.path));
            None
        }
        Value::String(s) => Some(DraftReq::Name(Spanned::new(s.clone(), cx.span(n)))),
        Value::Mapping(_) => {
            let f = cx.map(n, "`require`")?;
            f.check_known(cx, &["any_of", "all_of"]);
            let (key, items) = match (f.get("any_of"), f.get("all_of")) {
                (Some(a), None) => ("any_of", a),
                (None, Some(a)) => ("all_of", a),
                (Some(_), Some(b)) => {
                    let span = cx.key_span(&b);
                    cx.error_help(
                        span,
                        "`require` takes one of `any_of` or `all_of`, not both",
                        "nest them: `{all_of: [a, {any_of: [b, c]}]}`",
                    );
                    return None;
                }
                (None, None) => {
                    if f.is_empty() {
                        let span = cx.span(n);
                        cx.error_help(
                            span,
                            "`require` is an empty mapping",
                            "use a credential name, `public`, `{any_of: [...]}` or `{all_of: [...]}`",
                        );
                    }
                    return None;
                }
            };
            let list = cx.seq(&items)?;
            if list.is_empty() {
                let span = cx.span(&items);
                cx.error_help(
                    span,
                    format!("`{key}` is empty"),
                    "list at least one credential",
                );
                return None;
            }
            let mut out = Vec::with_capacity(list.len());
            let mut ok = true;
            for item in list {
                if matches!(item.value, Value::String(s) if s == "public") {
                    let span = cx.span(&item);
                    cx.error_help(
                        span,
                        format!("`public` cannot be part of `{key}`"),
                        "a public route needs no credential: write `require: public` on its own",
                    );
                    ok = false;
                    continue;
                }
                match requirement(cx, &item, depth + 1) {
                    Some(r) => out.push(r),
                    None => ok = false,
                }
            }
            ok.then_some(if key == "any_of" {
                DraftReq::AnyOf(out)
            } else {
                DraftReq::AllOf(out)
            })
        }
        _ => {
            cx.wrong_type_help(
                n,
                "a credential name or a mapping",
                "use a credential name, `public`, `{any_of: [...]}` or `{all_of: [...]}`",
            );
            None
        }
    }
}

fn scope_requirement(cx: &mut Cx<'_>, n: &Node<'_>) -> Option<ScopeRequirement> {
    let f = cx.map(n, "`scopes`")?;
    f.check_known(cx, &["any_of", "all_of"]);
    let (key, items) = match (f.get("all_of"), f.get("any_of")) {
        (Some(a), None) => ("all_of", a),
        (None, Some(a)) => ("any_of", a),
        (Some(_), Some(b)) => {
            let span = cx.key_span(&b);
            cx.error(span, "`scopes` takes one of `all_of` or `any_of`, not both");
            return None;
        }
        (None, None) => {
            if f.is_empty() {
                let span = cx.span(n);
                cx.error_help(
                    span,
                    "`scopes` is an empty mapping",
                    "use `{all_of: [...]}` or `{any_of: [...]}`, or omit `scopes`",
                );
            }
            return None;
        }
    };
    let list = cx.scope_list(&items)?;
    if list.is_empty() {
        let span = cx.span(&items);
        cx.error_help(
            span,
            format!("`{key}` is empty"),
            "list at least one scope, or omit `scopes`",
        );
        return None;
    }
    Some(if key == "all_of" {
        ScopeRequirement::AllOf(list)
    } else {
        ScopeRequirement::AnyOf(list)
    })
}
