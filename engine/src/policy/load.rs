//! Reading policy files and running the pipeline: YAML (serde_yaml) →
//! positions (yaml-rust2) → decode → merge. Any error anywhere means no policy.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::decode::{self, Draft};
use super::diagnostic::{Diagnostic, Diagnostics};
use super::model::{Policy, Span};
use super::node::Cx;
use super::positions::{NodePath, PositionIndex, MAX_NESTING};
use super::problems::Problems;
use super::resolve;

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn io_error(path: &Path, what: &str, e: &std::io::Error) -> Diagnostic {
    Diagnostic::new(
        path,
        0,
        0,
        format!(
            "cannot {what} `{}`: {}",
            path.display(),
            lower_first(&e.to_string())
        ),
    )
}

/// The policy files of a directory: `*.yaml` / `*.yml`, not `*_test.*`, sorted.
fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, Diagnostics> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, "read directory", &e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, "read directory", &e))?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let is_policy = (name.ends_with(".yaml") || name.ends_with(".yml"))
            && !name.ends_with("_test.yaml")
            && !name.ends_with("_test.yml")
            && !name.starts_with('.');
        if is_policy && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Diagnostic::new(
            dir,
            0,
            0,
            format!(
                "no policy files (`*.yaml`, `*.yml`) in directory `{}`",
                dir.display()
            ),
        )
        .into());
    }
    Ok(files)
}

/// Reads a file as UTF-8; a bad byte is located at its line and column.
fn read_text(path: &Path) -> Result<String, Diagnostic> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, "read", &e))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e
            .as_bytes()
            .get(..e.utf8_error().valid_up_to())
            .unwrap_or_default();
        let valid = String::from_utf8_lossy(valid);
        let line = valid.matches('\n').count() + 1;
        let col = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Diagnostic::new(path, line, col, "policy file is not valid utf-8")
    })
}

/// Loads a policy file, or every policy file of a directory as one policy.
pub fn load(path: &Path) -> Result<Policy, Diagnostics> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, "read", &e))?;
    let files = if meta.is_dir() {
        policy_files(path)?
    } else {
        vec![path.to_path_buf()]
    };
    let mut sources = Vec::with_capacity(files.len());
    let mut errors = Diagnostics::default();
    for f in files {
        match read_text(&f) {
            Ok(t) => sources.push((f, t)),
            Err(d) => errors.push(d),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    load_sources(&sources)
}

/// Why serde_yaml refused the text, located; duplicate keys are pointed at
/// the repeated key (serde_yaml only names the mapping).
fn syntax_error(
    file: usize,
    text: &str,
    index: &PositionIndex,
    e: &serde_yaml::Error,
    problems: &mut Problems,
) {
    let msg = strip_locations(&e.to_string());
    let (line, col) = match e.location() {
        Some(l) => (l.line(), l.column()),
        None if msg.contains("more than one document") => (second_document(text), 1),
        None => (1, 1),
    };
    let span = Span { file, line, col };
    // serde_yaml's Value has no integer wider than 64 bits.
    if let Some((path, n)) = too_large_integer(&msg) {
        problems.error_help(
            span,
            format!("number `{n}` is too large (at `{path}`)"),
            format!("numbers here are at most {}", u64::MAX),
        );
        return;
    }
    if msg.contains("duplicate entry with key") {
        let dups = index.duplicate_keys();
        if !dups.is_empty() {
            for (path, at, first) in dups {
                let key = path.last_key().unwrap_or("");
                // Under `credentials` / `rate_limits` a repeated key is a repeated name.
                let parent = path.parent().unwrap_or_default();
                let what = if parent == NodePath::root().key("credentials") {
                    "credential"
                } else if parent == NodePath::root().key("rate_limits") {
                    "rate limit"
                } else {
                    "key"
                };
                problems.error(
                    Span {
                        file,
                        line: at.line,
                        col: at.col,
                    },
                    format!(
                        "duplicate {what} `{key}`: first defined at line {}, column {}",
                        first.line, first.col
                    ),
                );
            }
            return;
        }
    }
    let line_text = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
    let help = if line_text.contains('\t') {
        Some("yaml does not allow tabs for indentation; use spaces")
    } else if msg.contains("more than one document") {
        Some("a policy file holds one document; split others into their own files")
    } else if msg.contains("recursion limit") {
        Some("the document nests too deeply")
    } else if msg.contains("repetition limit") {
        Some("aliases expand to too many nodes")
    } else {
        None
    };
    let message = format!("invalid yaml: {msg}");
    match help {
        Some(h) => problems.error_help(span, message, h),
        None => problems.error(span, message),
    }
}

/// The message without libyaml's " at line N column M" (the span says it).
fn strip_locations(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(rest.get(..i).unwrap_or(""));
        let after = rest.get(i + " at line ".len()..).unwrap_or("");
        let tail = after.trim_start_matches(|c: char| c.is_ascii_digit());
        match tail.strip_prefix(" column ") {
            Some(t) if tail.len() < after.len() => {
                rest = t.trim_start_matches(|c: char| c.is_ascii_digit());
            }
            _ => {
                out.push_str(" at line ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    // Messages are lowercase; serde_yaml capitalises only the format's name.
    out.replace("YAML", "yaml")
}

/// `(path, number)` of serde_yaml's error for an integer wider than 64 bits.
fn too_large_integer(msg: &str) -> Option<(&str, &str)> {
    let (path, rest) = msg.split_once(": invalid type: integer `")?;
    let (n, rest) = rest.split_once('`')?;
    (rest.starts_with(" as u128") || rest.starts_with(" as i128")).then_some((path, n))
}

/// The line where a second YAML document starts (serde_yaml does not say).
fn second_document(text: &str) -> usize {
    let mut content = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_end();
        let marker = t == "---" || t.starts_with("--- ") || t == "...";
        if marker && content {
            return i + 1;
        }
        if marker || (!t.is_empty() && !t.trim_start().starts_with('#')) {
            content = true;
        }
    }
    1
}

/// Parses and decodes one file's text.
fn decode_file(file: usize, path: &Path, text: &str, problems: &mut Problems) -> Option<Draft> {
    let index = PositionIndex::build(text);
    if let Some(at) = index.too_deep() {
        problems.error_help(
            Span {
                file,
                line: at.line,
                col: at.col,
            },
            format!("the document nests more than {MAX_NESTING} levels deep"),
            "a policy needs only a few levels; this is not a policy",
        );
        return None;
    }
    let value: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            syntax_error(file, text, &index, &e, problems);
            return None;
        }
    };
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut cx = Cx {
        file,
        index: &index,
        dir,
        problems,
    };
    Some(decode::document(&mut cx, &value))
}

/// Parses and validates several policy texts as one policy.
pub fn load_sources(sources: &[(PathBuf, String)]) -> Result<Policy, Diagnostics> {
    let files: Vec<PathBuf> = sources.iter().map(|(p, _)| p.clone()).collect();
    // A byte-order mark is not content; dropped so columns count from the first character.
    let texts: Vec<&str> = sources
        .iter()
        .map(|(_, t)| t.strip_prefix('\u{feff}').unwrap_or(t))
        .collect();
    let mut problems = Problems::default();
    if sources.is_empty() {
        return Err(Diagnostic::new("<policy>", 0, 0, "no policy files given").into());
    }
    let mut drafts = Vec::with_capacity(sources.len());
    let mut complete = true;
    for (i, ((path, _), text)) in sources.iter().zip(&texts).enumerate() {
        match decode_file(i, path, text, &mut problems) {
            Some(d) => drafts.push(d),
            None => complete = false,
        }
    }
    // Merged even after errors, for cross-file errors (duplicates, unknown
    // names) in what did decode; unknown names are only reported when every
    // file defined its names, so one broken file does not cascade.
    let policy = resolve::merge(drafts, &files, complete, &mut problems);
    let text_refs: Vec<Option<&str>> = texts.iter().map(|t| Some(*t)).collect();
    match policy {
        Some(p) if problems.is_empty() => Ok(p),
        _ => {
            if problems.is_empty() {
                problems.error(
                    Span::default(),
                    "internal error: the policy did not decode although no error was found",
                );
            }
            Err(problems.into_diagnostics(&files, &text_refs))
        }
    }
}
