//! The hand-written decoder's toolkit: typed reads of [`serde_yaml::Value`]
//! nodes that record a located error instead of stopping.
//!
//! Why not `#[derive(Deserialize)]`: serde stops at the first error and its
//! errors carry no position for a [`Value`]; a policy must report every error
//! at once, each at its `file:line:col`. So the document is read as a `Value`
//! (serde_yaml is still the parser of record) and walked here, path by path,
//! with positions from the [`PositionIndex`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::Value;

use super::check;
use super::duration;
use super::model::{Span, Spanned};
use super::positions::{NodePath, PositionIndex};
use super::problems::Problems;

/// Decoding context for one file.
pub struct Cx<'a> {
    pub file: usize,
    pub index: &'a PositionIndex,
    /// Directory of the policy file, anchoring relative paths.
    pub dir: &'a Path,
    pub problems: &'a mut Problems,
}

/// A value and where it sits in the document.
#[derive(Clone)]
pub struct Node<'v> {
    pub value: &'v Value,
    pub path: NodePath,
}

/// A short description of a value for "found ..." messages (user input shortened).
pub fn describe(v: &Value) -> String {
    fn short(s: &str) -> String {
        let mut out: String = s.chars().take(40).filter(|c| !c.is_control()).collect();
        if s.chars().count() > 40 {
            out.push('…');
        }
        out
    }
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("a boolean `{b}`"),
        Value::Number(n) => format!("a number `{}`", short(&n.to_string())),
        Value::String(s) => format!("a string `{}`", short(s)),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("a value tagged `{}`", short(&t.tag.to_string())),
    }
}

/// The text of a scalar key, as the position index records it.
fn key_text(k: &Value) -> Option<String> {
    match k {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".into()),
        _ => None,
    }
}

impl<'a> Cx<'a> {
    pub fn span_at(&self, pos: super::positions::Pos) -> Span {
        Span {
            file: self.file,
            line: pos.line,
            col: pos.col,
        }
    }

    /// Where a node was written.
    pub fn span(&self, n: &Node<'_>) -> Span {
        self.span_at(self.index.locate(&n.path))
    }

    /// Where the key naming a node was written (the node itself for list items).
    pub fn key_span(&self, n: &Node<'_>) -> Span {
        self.span_at(self.index.locate_key(&n.path))
    }

    pub fn error(&mut self, span: Span, msg: impl Into<String>) {
        self.problems.error(span, msg);
    }

    pub fn error_help(&mut self, span: Span, msg: impl Into<String>, help: impl Into<String>) {
        self.problems.error_help(span, msg, help);
    }

    fn wrong_type_message(n: &Node<'_>, expected: &str) -> String {
        let what = if n.path.is_root() {
            "the policy".to_string()
        } else {
            format!("`{}`", n.path)
        };
        format!("{what} must be {expected}, found {}", describe(n.value))
    }

    /// Reports a wrong type at the node.
    pub fn wrong_type(&mut self, n: &Node<'_>, expected: &str) {
        let span = self.span(n);
        self.error(span, Self::wrong_type_message(n, expected));
    }

    pub fn wrong_type_help(&mut self, n: &Node<'_>, expected: &str, help: &str) {
        let span = self.span(n);
        self.error_help(span, Self::wrong_type_message(n, expected), help);
    }

    /// A mapping's fields; reports a wrong type (and non-string keys).
    pub fn map<'v>(&mut self, n: &Node<'v>, what: &str) -> Option<Fields<'v>> {
        let Value::Mapping(m) = n.value else {
            self.wrong_type(n, "a mapping");
            return None;
        };
        let mut entries = Vec::with_capacity(m.len());
        for (k, v) in m {
            match k {
                Value::String(s) => entries.push((s.clone(), v)),
                other => {
                    let key_path = key_text(other)
                        .map(|t| n.path.key(&t))
                        .unwrap_or_else(|| n.path.key(super::positions::COMPLEX_KEY));
                    let span = self.span_at(self.index.locate_key(&key_path));
                    self.error(
                        span,
                        format!("keys in {what} must be strings, found {}", describe(other)),
                    );
                }
            }
        }
        Some(Fields {
            node: n.clone(),
            what: what.to_string(),
            entries,
        })
    }

    /// A string; reports a wrong type.
    pub fn string(&mut self, n: &Node<'_>) -> Option<String> {
        match n.value {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.wrong_type(n, "a string");
                None
            }
        }
    }

    /// A non-empty string.
    pub fn nonempty(&mut self, n: &Node<'_>) -> Option<String> {
        let s = self.string(n)?;
        if s.is_empty() {
            let span = self.span(n);
            self.error(span, format!("`{}` may not be empty", n.path));
            return None;
        }
        Some(s)
    }

    pub fn spanned_string(&mut self, n: &Node<'_>) -> Option<Spanned<String>> {
        let span = self.span(n);
        self.nonempty(n).map(|s| Spanned::new(s, span))
    }

    /// The items of a list; reports a wrong type.
    pub fn seq<'v>(&mut self, n: &Node<'v>) -> Option<Vec<Node<'v>>> {
        match n.value {
            Value::Sequence(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Node {
                        value: v,
                        path: n.path.index(i),
                    })
                    .collect(),
            ),
            _ => {
                self.wrong_type(n, "a list");
                None
            }
        }
    }

    /// A list of strings, each with its span; bad items are reported and skipped.
    pub fn string_list(&mut self, n: &Node<'_>) -> Option<Vec<Spanned<String>>> {
        let items = self.seq(n)?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Some(s) = self.spanned_string(&item) {
                out.push(s);
            }
        }
        Some(out)
    }

    /// A list of scope names (grants, scopes): no spaces, since scopes are
    /// space-joined in headers. `None` if any item was bad.
    pub fn scope_list(&mut self, n: &Node<'_>) -> Option<Vec<String>> {
        let before = self.problems.len();
        let items = self.string_list(n)?;
        let mut out: Vec<String> = Vec::with_capacity(items.len());
        for s in items {
            if !check::is_scope(&s.value) {
                self.error_help(
                    s.span,
                    format!(
                        "scope `{}` may not contain spaces or control characters",
                        s.value
                    ),
                    "scopes are joined with spaces in the identity headers",
                );
            } else if !out.contains(&s.value) {
                out.push(s.value);
            }
        }
        (self.problems.len() == before).then_some(out)
    }

    /// A non-negative whole number.
    pub fn uint(&mut self, n: &Node<'_>) -> Option<u64> {
        match n.value {
            Value::Number(num) => match num.as_u64() {
                Some(v) => Some(v),
                None => {
                    let span = self.span(n);
                    self.error(
                        span,
                        format!(
                            "`{}` must be a whole number from 0 to {}, found `{num}`",
                            n.path,
                            u64::MAX
                        ),
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(n, "a whole number");
                None
            }
        }
    }

    /// A whole number of at least `min`.
    pub fn uint_min(&mut self, n: &Node<'_>, min: u64) -> Option<u64> {
        let v = self.uint(n)?;
        if v < min {
            let span = self.span(n);
            self.error(
                span,
                format!("`{}` must be at least {min}, found `{v}`", n.path),
            );
            return None;
        }
        Some(v)
    }

    /// A duration; zero is refused (every duration in a policy is positive).
    pub fn duration(&mut self, n: &Node<'_>) -> Option<Duration> {
        let Value::String(s) = n.value else {
            self.wrong_type_help(n, "a duration", duration::HELP);
            return None;
        };
        match duration::parse(s) {
            Ok(d) if d.is_zero() => {
                let span = self.span(n);
                self.error_help(
                    span,
                    format!("`{}` must be longer than zero, found `{s}`", n.path),
                    duration::HELP,
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                let span = self.span(n);
                self.error_help(
                    span,
                    format!("bad duration `{s}` for `{}`: {e}", n.path),
                    duration::HELP,
                );
                None
            }
        }
    }

    /// A file path, resolved against the policy file's directory.
    ///
    /// The result is made absolute (without touching the file system) so that
    /// a later stage joining it onto the policy directory again gets the same path.
    pub fn file_path(&mut self, n: &Node<'_>) -> Option<Spanned<PathBuf>> {
        let s = self.spanned_string(n)?;
        let joined = self.dir.join(&s.value);
        let abs = std::path::absolute(&joined).unwrap_or(joined);
        Some(Spanned::new(abs, s.span))
    }
}

/// The string-keyed entries of a mapping, for field-by-field decoding.
pub struct Fields<'v> {
    pub node: Node<'v>,
    /// What the mapping is, for messages: "`settings`", "credential `k`".
    pub what: String,
    entries: Vec<(String, &'v Value)>,
}

impl<'v> Fields<'v> {
    pub fn get(&self, name: &str) -> Option<Node<'v>> {
        self.entries
            .iter()
            .find(|(k, _)| k == name)
            .map(|(k, v)| Node {
                value: v,
                path: self.node.path.key(k),
            })
    }

    pub fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == name)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Reports every field not in `allowed`, at its key, with a suggestion.
    pub fn check_known(&self, cx: &mut Cx<'_>, allowed: &[&str]) {
        for (k, _) in &self.entries {
            if allowed.contains(&k.as_str()) {
                continue;
            }
            let span = cx.span_at(cx.index.locate_key(&self.node.path.key(k)));
            let help = match check::did_you_mean(k, allowed.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if k == "<<" => {
                    "yaml merge keys are not supported: write the fields out".to_string()
                }
                None => format!("valid fields here: {}", check::list(allowed)),
            };
            let shown: String = k.chars().take(60).filter(|c| !c.is_control()).collect();
            cx.error_help(
                span,
                format!("unknown field `{shown}` in {}", self.what),
                help,
            );
        }
    }

    /// A required field; reports it missing at the mapping (its key, if it has one).
    pub fn require(&self, cx: &mut Cx<'_>, name: &str) -> Option<Node<'v>> {
        let found = self.get(name);
        if found.is_none() {
            let span = cx.key_span(&self.node);
            cx.error(
                span,
                format!("missing required field `{name}` in {}", self.what),
            );
        }
        found
    }
}
