//! Data-driven policy error suite.
//!
//! Every `tests/data/policy/invalid/*.yaml` starts with comment lines:
//! `# expect: LINE:COL: MESSAGE-SUBSTRING` (one per expected error) and
//! optionally `# env: NAME=VALUE` (set before loading). Every directory in
//! `invalid/` is loaded as a policy directory; its `expect.txt` holds lines
//! `expect: FILE:LINE:COL: MESSAGE-SUBSTRING`. The set of located errors must
//! match exactly: nothing missing, nothing extra.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use portcullis_engine::policy::{self, Diagnostic, Diagnostics};

fn invalid_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/policy/invalid")
}

#[derive(Debug)]
struct Expect {
    file: Option<String>,
    line: usize,
    col: usize,
    text: String,
}

fn parse_expect(spec: &str, with_file: bool, origin: &Path) -> Expect {
    let bad = format!("{}: bad expect line `{spec}`", origin.display());
    let mut parts = spec.splitn(if with_file { 4 } else { 3 }, ':');
    let file = with_file.then(|| parts.next().expect(&bad).trim().to_string());
    let line = parts
        .next()
        .expect(&bad)
        .trim()
        .parse::<usize>()
        .expect(&bad);
    let col = parts
        .next()
        .expect(&bad)
        .trim()
        .parse::<usize>()
        .expect(&bad);
    let text = parts.next().expect(&bad).trim().to_string();
    assert!(
        !text.is_empty(),
        "{}: empty message in `{spec}`",
        origin.display()
    );
    Expect {
        file,
        line,
        col,
        text,
    }
}

fn matches(e: &Expect, d: &Diagnostic) -> bool {
    e.line == d.line
        && e.col == d.col
        && d.message.contains(&e.text)
        && e.file
            .as_ref()
            .is_none_or(|f| d.file.file_name().and_then(|n| n.to_str()) == Some(f.as_str()))
}

/// Checks errors against expectations; returns a failure description.
fn compare(
    case: &Path,
    expects: Vec<Expect>,
    result: Result<policy::Policy, Diagnostics>,
) -> Option<String> {
    let diags = match result {
        Ok(_) => return Some(format!("{}: loaded without errors", case.display())),
        Err(d) => d,
    };
    if expects.is_empty() {
        return Some(format!("{}: no `expect` lines", case.display()));
    }
    let mut remaining: Vec<Option<Expect>> = expects.into_iter().map(Some).collect();
    let mut unexpected = Vec::new();
    for d in diags.iter() {
        let hit = remaining
            .iter_mut()
            .find(|e| e.as_ref().is_some_and(|e| matches(e, d)));
        match hit {
            Some(slot) => *slot = None,
            None => unexpected.push(format!("{}:{}: {}", d.line, d.col, d.message)),
        }
    }
    let missing: Vec<String> = remaining
        .into_iter()
        .flatten()
        .map(|e| format!("{}:{}: {}", e.line, e.col, e.text))
        .collect();
    if missing.is_empty() && unexpected.is_empty() {
        // Every error renders as `file:line:col: error: message`.
        for d in diags.iter() {
            let text = d.to_string();
            let head = format!("{}:{}:{}: error: ", d.file.display(), d.line, d.col);
            if !text.starts_with(&head) {
                return Some(format!("{}: bad rendering:\n{text}", case.display()));
            }
        }
        return None;
    }
    Some(format!(
        "{}:\n  missing: {missing:#?}\n  unexpected: {unexpected:#?}\n  all errors:\n{diags}",
        case.display()
    ))
}

fn run_file(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut expects = Vec::new();
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        if let Some(spec) = line.strip_prefix("# expect:") {
            expects.push(parse_expect(spec, false, path));
        } else if let Some(env) = line.strip_prefix("# env:") {
            let (k, v) = env.trim().split_once('=').unwrap();
            std::env::set_var(k, v);
        }
    }
    compare(path, expects, policy::load(path))
}

fn run_dir(path: &Path) -> Option<String> {
    let spec = std::fs::read_to_string(path.join("expect.txt")).unwrap();
    let expects = spec
        .lines()
        .filter_map(|l| l.strip_prefix("expect:"))
        .map(|s| parse_expect(s, true, path))
        .collect();
    compare(path, expects, policy::load(path))
}

#[test]
fn every_invalid_policy_gives_exactly_its_expected_errors() {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(invalid_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut failures = Vec::new();
    let mut ran = 0;
    for p in &entries {
        let failure = if p.is_dir() {
            run_dir(p)
        } else if p.extension().is_some_and(|e| e == "yaml") {
            run_file(p)
        } else {
            continue;
        };
        ran += 1;
        failures.extend(failure);
    }
    assert!(ran >= 30, "only {ran} cases found");
    assert!(
        failures.is_empty(),
        "{} of {ran} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn five_mistakes_give_exactly_five_errors() {
    let err = policy::load(&invalid_dir().join("five_mistakes.yaml")).unwrap_err();
    assert_eq!(err.len(), 5, "{err}");
    let lines: Vec<usize> = err.iter().map(|d| d.line).collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted, "errors are reported in source order");
}

#[test]
fn errors_render_like_a_compiler() {
    let file = Path::new("policies/payments.yaml");
    let text = "version: 1\ncredentials:\n  partner_key: {type: api_key}\nroutes:\n  - name: r\n    match: {path: /a}\n    require: partner_kye\n";
    let err = policy::load_str(file, text).unwrap_err();
    assert_eq!(err.len(), 1);
    let d = &err.0[0];
    assert_eq!(d.source_line.as_deref(), Some("    require: partner_kye"));
    let shown = err.to_string();
    let expected = "\
policies/payments.yaml:7:14: error: unknown credential `partner_kye`
  |
7 |     require: partner_kye
  |              ^
  = help: did you mean `partner_key`?
1 error";
    assert_eq!(shown, expected);
}

#[test]
fn unknown_fields_list_the_valid_ones() {
    let err =
        policy::load_str(Path::new("p.yaml"), "version: 1\nsettings: {zzzzzz: 1}\n").unwrap_err();
    let d = &err.0[0];
    assert_eq!((d.line, d.col), (2, 12));
    assert_eq!(d.message, "unknown field `zzzzzz` in `settings`");
    assert_eq!(
        d.help.as_deref(),
        Some("valid fields here: `unmatched`, `identity_headers`")
    );
}

#[test]
fn secrets_never_appear_in_errors() {
    let var = "PORTCULLIS_POLICY_TEST_SHORT_SECRET_7";
    let secret = "hunter2-very-secret";
    std::env::set_var(var, secret);
    let text = format!(
        "version: 1\ncredentials:\n  j:\n    type: jwt\n    algorithms: [HS256]\n    keys: {{secret_env: {var}}}\n"
    );
    let err = policy::load_str(Path::new("p.yaml"), &text).unwrap_err();
    let shown = format!("{err}{err:?}");
    assert!(shown.contains("too short"), "{shown}");
    assert!(!shown.contains(secret));
    assert!(!shown.contains(&secret.len().to_string()));
}
