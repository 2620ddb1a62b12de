//! Merges the drafts of every policy file into one [`Policy`]: names unique
//! across files, references resolved, no two routes for the same requests.

use std::collections::HashMap;
use std::path::PathBuf;

use super::check;
use super::decode::{Draft, DraftReq};
use super::model::{
    CredentialDef, PatternSegment, Policy, RateLimitDef, Requirement, Route, Settings, Span,
    Spanned,
};
use super::problems::{place, Problems};

/// Registers names in order, reporting each repeat at the later place.
fn unique_names<'a>(
    names: impl Iterator<Item = &'a Spanned<String>>,
    kind: &str,
    files: &[PathBuf],
    problems: &mut Problems,
) -> HashMap<String, usize> {
    let mut first: HashMap<String, (usize, Span)> = HashMap::new();
    for (i, n) in names.enumerate() {
        if let Some((_, at)) = first.get(&n.value) {
            problems.error(
                n.span,
                format!(
                    "duplicate {kind} `{}`: first defined at {}",
                    n.value,
                    place(files, *at)
                ),
            );
        } else {
            first.insert(n.value.clone(), (i, n.span));
        }
    }
    first.into_iter().map(|(k, (i, _))| (k, i)).collect()
}

fn unknown_help(input: &str, kind: &str, known: &HashMap<String, usize>) -> String {
    let mut names: Vec<&str> = known.keys().map(String::as_str).collect();
    names.sort_unstable();
    if let Some(s) = check::did_you_mean(input, names.iter().copied()) {
        return format!("did you mean `{s}`?");
    }
    if names.is_empty() {
        return format!("no {kind}s are defined");
    }
    names.truncate(20);
    format!("{kind}s defined: {}", names.join(", "))
}

fn resolve_req(
    r: &DraftReq,
    creds: &HashMap<String, usize>,
    problems: &mut Problems,
) -> Option<Requirement> {
    Some(match r {
        DraftReq::Public => Requirement::Public,
        DraftReq::Name(n) => match creds.get(&n.value) {
            Some(&i) => Requirement::Credential(i),
            None => {
                problems.error_help(
                    n.span,
                    format!("unknown credential `{}`", n.value),
                    unknown_help(&n.value, "credential", creds),
                );
                return None;
            }
        },
        DraftReq::AnyOf(v) | DraftReq::AllOf(v) => {
            let mut out = Vec::with_capacity(v.len());
            let mut ok = true;
            for item in v {
                match resolve_req(item, creds, problems) {
                    Some(x) => out.push(x),
                    None => ok = false,
                }
            }
            if !ok {
                return None;
            }
            if matches!(r, DraftReq::AnyOf(_)) {
                Requirement::AnyOf(out)
            } else {
                Requirement::AllOf(out)
            }
        }
    })
}

/// Builds the policy; every problem goes to `problems`. Returns a policy only
/// when no file had any error.
pub fn merge(
    drafts: Vec<Draft>,
    files: &[PathBuf],
    complete: bool,
    problems: &mut Problems,
) -> Option<Policy> {
    let complete = complete && drafts.iter().all(|d| d.names_complete);
    // Unknown-name errors go here, and are kept only when every name was read.
    let mut unknown = Problems::default();
    // Settings: at most one file.
    let mut settings: Option<(Settings, Span)> = None;
    for d in &drafts {
        if let Some((s, span)) = &d.settings {
            match &settings {
                Some((_, first)) => problems.error_help(
                    *span,
                    format!("`settings` given twice: also at {}", place(files, *first)),
                    "keep one `settings` block for the whole policy directory",
                ),
                None => settings = Some((s.clone(), *span)),
            }
        }
    }

    // Credentials: names unique, `public` reserved.
    for d in &drafts {
        for (name, _) in &d.credentials {
            if name.value == "public" {
                problems.error_help(
                    name.span,
                    "`public` is reserved and cannot name a credential",
                    "`require: public` means no credential is needed; choose another name",
                );
            }
        }
    }
    let cred_names: Vec<&Spanned<String>> = drafts
        .iter()
        .flat_map(|d| d.credentials.iter().map(|(n, _)| n))
        .filter(|n| n.value != "public")
        .collect();
    let creds = unique_names(cred_names.iter().copied(), "credential", files, problems);
    let limit_names: Vec<&Spanned<String>> = drafts
        .iter()
        .flat_map(|d| d.rate_limits.iter().map(|(n, _)| n))
        .collect();
    let limits = unique_names(limit_names.iter().copied(), "rate limit", files, problems);
    let route_names: Vec<&Spanned<String>> =
        drafts.iter().flat_map(|d| d.route_names.iter()).collect();
    unique_names(route_names.iter().copied(), "route name", files, problems);

    // Routes: references, then duplicates (same host, overlapping methods, same shape).
    let mut routes: Vec<Route> = Vec::new();
    let mut all_routes_ok = true;
    // Routes with a matcher, for duplicate detection: (name, methods, path span).
    let mut seen: Vec<(Option<&str>, &[String], Span)> = Vec::new();
    let mut by_shape: HashMap<(Option<&str>, Vec<PatternSegment>), Vec<usize>> = HashMap::new();
    for d in &drafts {
        for r in &d.routes {
            let require = r
                .require
                .as_ref()
                .and_then(|q| resolve_req(q, &creds, &mut unknown));
            let rate_limit = match &r.rate_limit {
                None => Some(None),
                Some(n) => match limits.get(&n.value) {
                    Some(&i) => Some(Some(i)),
                    None => {
                        unknown.error_help(
                            n.span,
                            format!("unknown rate limit `{}`", n.value),
                            unknown_help(&n.value, "rate limit", &limits),
                        );
                        None
                    }
                },
            };
            let name = r.name.as_ref().map(|n| n.value.as_str());
            if let Some((m, path_span)) = &r.matcher {
                let group = by_shape
                    .entry((m.host.as_deref(), crate::path::shape(&m.path)))
                    .or_default();
                for &other in group.iter() {
                    let Some((o_name, o_methods, o_span)) = seen.get(other) else {
                        continue;
                    };
                    let overlap = (o_methods.is_empty() && m.methods.is_empty())
                        || o_methods.iter().any(|x| m.methods.contains(x));
                    if overlap {
                        problems.error_help(
                            *path_span,
                            format!(
                                "route `{}` matches the same requests as route `{}` at {}",
                                name.unwrap_or("?"),
                                o_name.unwrap_or("?"),
                                place(files, *o_span)
                            ),
                            "two routes with the same host, method and path shape (parameter names do not matter) are ambiguous",
                        );
                        break;
                    }
                }
                group.push(seen.len());
                seen.push((name, &m.methods, *path_span));
            }
            match (r.ok, &r.name, &r.matcher, require, &r.scopes, rate_limit) {
                (
                    true,
                    Some(name),
                    Some((matcher, _)),
                    Some(require),
                    Some(scopes),
                    Some(rate_limit),
                ) => routes.push(Route {
                    name: name.clone(),
                    matcher: matcher.clone(),
                    require,
                    scopes: scopes.clone(),
                    rate_limit,
                    span: r.span,
                }),
                _ => all_routes_ok = false,
            }
        }
    }

    if complete {
        problems.extend(unknown);
    }
    if !problems.is_empty() || !all_routes_ok {
        return None;
    }
    let mut credentials = Vec::new();
    let mut rate_limits: Vec<RateLimitDef> = Vec::new();
    for d in drafts {
        for (name, kind) in d.credentials {
            // No errors were reported, so every definition decoded.
            credentials.push(CredentialDef { name, kind: kind? });
        }
        for (_, def) in d.rate_limits {
            rate_limits.push(def?);
        }
    }
    Some(Policy {
        files: files.to_vec(),
        settings: settings.map(|(s, _)| s).unwrap_or_default(),
        credentials,
        rate_limits,
        routes,
    })
}
