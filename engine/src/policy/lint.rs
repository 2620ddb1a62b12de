//! Lints: policies that load but probably do not do what their author meant.
//! `portcullis check` prints them as warnings; they never refuse a policy.

use std::path::PathBuf;

use super::diagnostic::{Diagnostic, Diagnostics, Severity};
use super::model::{CredentialKind, Policy, Requirement, ScopeRequirement, Span, Unmatched};

fn uses(r: &Requirement, out: &mut Vec<bool>) {
    match r {
        Requirement::Public => {}
        Requirement::Credential(i) => {
            if let Some(u) = out.get_mut(*i) {
                *u = true;
            }
        }
        Requirement::AnyOf(v) | Requirement::AllOf(v) => v.iter().for_each(|c| uses(c, out)),
    }
}

struct Lints<'a> {
    policy: &'a Policy,
    /// File texts, read again only to show the offending line.
    texts: Vec<Option<String>>,
    out: Diagnostics,
    /// `spans[i]` is where `out[i]` points.
    spans: Vec<Span>,
}

impl Lints<'_> {
    fn warn(&mut self, span: Span, message: String, help: &str) {
        let file = self
            .policy
            .files
            .get(span.file)
            .cloned()
            .unwrap_or_else(|| PathBuf::from("<policy>"));
        let mut d = Diagnostic::new(file, span.line, span.col, message).with_help(help);
        d.severity = Severity::Warning;
        self.spans.push(span);

        self.out.push(d);
    }

    /// Where `settings.unmatched` is written (settings carry no spans).
    fn unmatched_span(&self) -> Span {
        for (file, text) in self.texts.iter().enumerate() {
            let Some(text) = text else { continue };
            for (n, line) in text.lines().enumerate() {
                if let Some(col) = line.find("unmatched:") {
                    return Span {
                        file,
                        line: n + 1,
                        col: col + 1,
                    };
                }
            }
        }
        Span::default()
    }
}

/// Every lint warning for a policy loaded from files, in source order.
pub fn lint(policy: &Policy) -> Diagnostics {
    let texts = policy
        .files
        .iter()
        .map(|f| std::fs::read_to_string(f).ok())
        .collect();
    lint_texts(policy, texts)
}

/// [`lint`], with the policy's file texts given (`texts[i]` is `files[i]`).
pub fn lint_texts(policy: &Policy, texts: Vec<Option<String>>) -> Diagnostics {
    let mut l = Lints {
        policy,
        texts,
        out: Diagnostics::default(),
        spans: Vec::new(),
    };
    if policy.settings.unmatched == Unmatched::Allow {
        let span = l.unmatched_span();
        l.warn(
            span,
            "`unmatched: allow` lets every request no route matches through, unauthenticated"
                .into(),
            "prefer `deny` and a `public` route for what must be open",
        );
    }
    let mut used = vec![false; policy.credentials.len()];
    let mut limits_used = vec![false; policy.rate_limits.len()];
    for r in &policy.routes {
        uses(&r.require, &mut used);
        if let Some(slot) = r.rate_limit.and_then(|i| limits_used.get_mut(i)) {
            *slot = true;
        }
        let scoped = !matches!(r.scopes, ScopeRequirement::None);
        if scoped && r.require == Requirement::Public {
            l.warn(
                r.name.span,
                format!(
                    "route `{}` is public but requires scopes: every request is denied with `insufficient_scope`",
                    r.name.value
                ),
                "require a credential that carries scopes, or drop `scopes`",
            );
        }
    }
    for (c, used) in policy.credentials.iter().zip(&used) {
        if !used {
            l.warn(
                c.name.span,
                format!("credential `{}` is not required by any route", c.name.value),
                "remove it, or name it in a route's `require`",
            );
        }
        if let CredentialKind::Jwt(j) = &c.kind {
            if j.issuer.is_none() {
                l.warn(
                    c.name.span,
                    format!(
                        "jwt credential `{}` accepts tokens from any issuer its keys sign for",
                        c.name.value
                    ),
                    "set `issuer` (RFC 8725 section 3.8)",
                );
            }
            if j.audience.is_empty() {
                l.warn(
                    c.name.span,
                    format!(
                        "jwt credential `{}` accepts tokens minted for any audience",
                        c.name.value
                    ),
                    "set `audience` to this API's identifier (RFC 8725 section 3.9)",
                );
            }
        }
    }
    for (rl, used) in policy.rate_limits.iter().zip(&limits_used) {
        if !used {
            l.warn(
                rl.name.span,
                format!("rate limit `{}` is not used by any route", rl.name.value),
                "remove it, or name it in a route's `rate_limit`",
            );
        }
    }
    // Source lines attached at the end, each file split once: a policy can
    // have a lint per route.
    let lines: Vec<Vec<&str>> = l
        .texts
        .iter()
        .map(|t| {
            t.as_deref()
                .map(|t| t.lines().collect())
                .unwrap_or_default()
        })
        .collect();
    let mut out = l.out;
    for (d, span) in out.0.iter_mut().zip(&l.spans) {
        d.source_line = span
            .line
            .checked_sub(1)
            .and_then(|n| lines.get(span.file).and_then(|f| f.get(n)))
            .map(|s| s.to_string());
    }
    out.0
        .sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const POLICY: &str = r#"
version: 1
settings:
  unmatched: allow
credentials:
  key:
    type: api_key
    in: [header:x-api-key]
  spare:
    type: api_key
    in: [header:x-other-key]
rate_limits:
  unused: {limit: 10, per: 1s}
routes:
  - name: open
    match: {path: "/open"}
    require: public
    scopes: {all_of: [read]}
  - name: keyed
    match: {path: "/k"}
    require: key
"#;

    #[test]
    fn each_lint_is_located_and_a_clean_policy_has_none() {
        let p = crate::policy::load_str(Path::new("lint.yaml"), POLICY).unwrap();
        let lints = lint_texts(&p, vec![Some(POLICY.to_string())]);
        let text = lints.to_string();
        let msgs: Vec<&str> = lints.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(lints.len(), 4, "{text}");
        assert!(msgs.iter().any(|m| m.starts_with("`unmatched: allow`")));
        assert!(msgs
            .iter()
            .any(|m| m.contains("credential `spare` is not required")));
        assert!(msgs
            .iter()
            .any(|m| m.contains("rate limit `unused` is not used")));
        assert!(msgs
            .iter()
            .any(|m| m.contains("route `open` is public but requires scopes")));
        assert!(lints
            .iter()
            .all(|d| d.severity == Severity::Warning && d.line > 0));
        assert!(text.contains("lint.yaml:"), "{text}");
        assert!(text.contains(": warning: "), "{text}");

        let clean = POLICY
            .replace("  unmatched: allow\n", "  unmatched: deny\n")
            .replace("    scopes: {all_of: [read]}\n", "")
            .replace("rate_limits:\n  unused: {limit: 10, per: 1s}\n", "")
            .replace(
                "  spare:\n    type: api_key\n    in: [header:x-other-key]\n",
                "",
            );
        let p = crate::policy::load_str(Path::new("lint.yaml"), &clean).unwrap();
        let none = lint_texts(&p, vec![Some(clean.clone())]);
        assert!(none.is_empty(), "{none}");
    }
}
