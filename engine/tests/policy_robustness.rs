//! Hostile and broken input: errors only, never a panic, never a half policy.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use portcullis_engine::policy::{self, Diagnostics, Policy};

fn file() -> &'static Path {
    Path::new("policies/p.yaml")
}

fn spec_text() -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/policy/valid/spec.yaml");
    std::fs::read_to_string(p).unwrap()
}

/// Every diagnostic is well-formed: a message, a line within the text (or 0),
/// and a source line that really is that line.
fn check_diagnostics(text: &str, err: &Diagnostics) {
    assert!(!err.is_empty());
    let stripped = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = stripped.lines().collect();
    for d in err.iter() {
        assert!(!d.message.is_empty());
        assert!(
            d.line <= lines.len() + 1,
            "line {} of {}: {}",
            d.line,
            lines.len(),
            d.message
        );
        if let Some(src) = &d.source_line {
            assert_eq!(Some(&src.as_str()), lines.get(d.line - 1));
        }
        // Rendering never panics either.
        let _ = d.to_string();
    }
}

fn load(text: &str) -> Result<Policy, Diagnostics> {
    let r = policy::load_str(file(), text);
    if let Err(e) = &r {
        check_diagnostics(text, e);
    }
    r
}

fn must_fail(text: &str) -> Diagnostics {
    match load(text) {
        Ok(_) => panic!("loaded:\n{text}"),
        Err(e) => e,
    }
}

/// A small deterministic generator (xorshift64*): the test needs repeatable
/// variety, not statistical quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_mutations_of_a_valid_policy_never_panic() {
    let base = spec_text().into_bytes();
    assert!(policy::load_str(file(), &spec_text()).is_ok());
    // Bytes that matter to YAML, plus anything.
    let palette: &[u8] = b":-[]{},&*!|>'\"#%@`? \t\n\r\x00\x7fa1_/";
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut failures = 0;
    for _ in 0..2000 {
        let mut bytes = base.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            let b = if rng.below(2) == 0 {
                palette[rng.below(palette.len())]
            } else {
                rng.next() as u8
            };
            match rng.below(3) {
                0 => bytes[at] = b,
                1 => bytes.insert(at, b),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if load(&text).is_err() {
            failures += 1;
        }
    }
    // Most mutations break something; the point is that none panicked.
    assert!(
        failures > 100,
        "only {failures} of 2000 mutations were errors"
    );
}

#[test]
fn deep_nesting_is_an_error() {
    let nests = |text: &str| {
        let err = must_fail(text);
        assert_eq!(err.len(), 1, "{err}");
        assert!(
            err.0[0].message.contains("nests more than 128 levels"),
            "{err}"
        );
    };
    for depth in [200, 20_000] {
        nests(&format!(
            "version: 1\nroutes: {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        ));
        nests(&format!(
            "version: 1\nsettings: {}1{}\n",
            "{a: ".repeat(depth),
            "}".repeat(depth)
        ));
        nests(&format!(
            "version: 1\n? {}{}\n: v\n",
            "[".repeat(depth),
            "]".repeat(depth)
        ));
    }
    let mut block = String::from("version: 1\nsettings:\n");
    for i in 0..300 {
        block.push_str(&" ".repeat(i + 1));
        block.push_str("a:\n");
    }
    nests(&block);
    // A duplicate key before the depth.
    nests(&format!(
        "version: 1\nversion: 1\nroutes: {}{}\n",
        "[".repeat(50_000),
        "]".repeat(50_000)
    ));
    // Just under the limit is only the usual errors.
    let ok_depth = format!(
        "version: 1\nroutes: {}{}\n",
        "[".repeat(120),
        "]".repeat(120)
    );
    let err = must_fail(&ok_depth);
    assert!(!err.0[0].message.contains("nests more than"), "{err}");
}

#[test]
fn require_nesting_is_capped() {
    let mut req = "k".to_string();
    for _ in 0..40 {
        req = format!("{{all_of: [{req}]}}");
    }
    let text = format!("version: 1\ncredentials:\n  k: {{type: api_key}}\nroutes:\n  - name: r\n    match: {{path: /r}}\n    require: {req}\n");
    let err = must_fail(&text);
    assert_eq!(err.len(), 1, "{err}");
    assert!(err.0[0].message.contains("more than 32 levels"));
}

#[test]
fn alias_bombs_are_refused() {
    let mut text =
        String::from("version: 1\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        let p = i - 1;
        text.push_str(&format!(
            "x{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    must_fail(&text);
    must_fail("version: 1\nsettings: *nowhere\n");
    must_fail("version: 1\nsettings: &s {unmatched: *s}\n");
}

#[test]
fn odd_scalars_and_keys_are_errors() {
    for text in [
        "version: 99999999999999999999999999999\n",
        "version: -1\n",
        "version: 1.0\n",
        "version: .nan\n",
        "version: 0x1\nroutes: 5\n",
        "version: 1\n? [a, b]\n: c\n",
        "version: 1\n{a: b}: c\n",
        "version: 1\nnull: x\n",
        "version: 1\n~: x\n",
        "version: 1\n1: x\n",
        "version: 1\ncredentials: {k: {type: !!binary aGVsbG8=}}\n",
        "version: 1\n<<: {routes: []}\n",
        "version: 1\ncredentials:\n\tk: {type: api_key}\n",
        "version: 1\x00\n",
        "version: 1\nrate_limits: {r: {limit: 1e400, per: 1s}}\n",
        "version: 1\nrate_limits: {r: {limit: 18446744073709551616, per: 1s}}\n",
        "version: 1\nrate_limits: {r: {limit: 1, per: 1s}}\nroutes:\n  - {name: r, match: {path: /}, require: public, rate_limit: [r]}\n",
        "\u{feff}\u{feff}version: 1\n",
        "version: 1\n---\nversion: 1\n",
        "%YAML 1.1\n---\nversion: 2\n",
        "version: 1\n...\n",
        "[version, 1]",
        "'version: 1'",
        "version",
        "\"",
        "&a",
        "*a",
        "!",
        "? ",
        ": x",
    ] {
        let _ = load(text);
    }
    // Only the ones that are really fine may load.
    assert!(load("version: 1\n...\n").is_ok());
    assert!(load("%YAML 1.1\n---\nversion: 1\n").is_ok());
    must_fail("version: 1.0\n");
    must_fail("version: 1\n1: x\n");
    must_fail("version: 1\n<<: {routes: []}\n");
}

#[test]
fn long_and_unusual_text_is_handled() {
    let long_key = "k".repeat(100_000);
    must_fail(&format!("version: 1\n{long_key}: 1\n"));
    must_fail(&format!(
        "version: 1\ncredentials:\n  {long_key}: {{type: api_key}}\n"
    ));
    let many_routes: String = (0..3000)
        .map(|i| format!("  - {{name: r{i}, match: {{path: /r/{i}}}, require: public}}\n"))
        .collect();
    let p = load(&format!("version: 1\nroutes:\n{many_routes}")).unwrap();
    assert_eq!(p.routes.len(), 3000);
    let dup_routes: String = (0..3000)
        .map(|i| format!("  - {{name: r{i}, match: {{path: /same}}, require: public}}\n"))
        .collect();
    let err = must_fail(&format!("version: 1\nroutes:\n{dup_routes}"));
    assert_eq!(err.len(), 2999);
    must_fail("version: 1\nroutes:\n  - {name: \u{1F600}, match: {path: /é}, require: ünïcödé}\n");
}

#[test]
fn a_byte_order_mark_does_not_shift_columns() {
    let text = "version: 1\nsettings: {unmatched: maybe}\n";
    let plain = must_fail(text);
    let bom = must_fail(&format!("\u{feff}{text}"));
    assert_eq!(
        (plain.0[0].line, plain.0[0].col),
        (bom.0[0].line, bom.0[0].col)
    );
    assert_eq!((bom.0[0].line, bom.0[0].col), (2, 23));
}

#[test]
fn a_policy_with_any_error_is_never_returned() {
    // One bad route among good ones: the whole policy is refused.
    let text = "version: 1\nroutes:\n  - {name: a, match: {path: /a}, require: public}\n  - {name: b, match: {path: b}, require: public}\n";
    let err = must_fail(text);
    assert_eq!(err.len(), 1);
}
