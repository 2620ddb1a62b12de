//! The one-shot subcommands, run as the binary (SPEC section 4).

use std::process::{Command, Output};

use crate::support::*;

fn portcullis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env_remove("PORTCULLIS_ADMIN_TOKEN")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const BROKEN: &str = "version: 1\ncredentials:\n  k:\n    type: api_key\n    in: [header:x-api-key]\n    prefixes: [pk_test_]\nroutes:\n  - name: a\n    match: {path: /a}\n    require: kk\n  - name: b\n    match: {path: /b}\n    require: nope\n";

#[test]
fn check_reports_every_located_error() {
    let fx = Fixture::new();
    let out = portcullis(&["check", fx.policy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("ok: "),
        "{}",
        text(&out.stdout)
    );

    let broken = fx.path("broken.yaml");
    std::fs::write(&broken, BROKEN).unwrap();
    let out = portcullis(&["check", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("broken.yaml:10:"), "{err}");
    assert!(
        err.contains("broken.yaml:13:"),
        "both errors, not only the first: {err}"
    );
    assert!(err.contains(": error: "), "{err}");
    assert!(err.trim_end().ends_with("2 errors"), "{err}");
}

/// SPEC section 4: `check` validates and lints; lints warn, located, and
/// leave the exit code at 0.
#[test]
fn check_lints_a_valid_policy_without_failing_it() {
    let fx = Fixture::new();
    let linted = fx.path("linted.yaml");
    std::fs::write(
        &linted,
        "version: 1\nsettings:\n  unmatched: allow\ncredentials:\n  k:\n    type: api_key\n    in: [header:x-api-key]\nroutes:\n  - name: a\n    match: {path: /a}\n    require: public\n",
    )
    .unwrap();
    let out = portcullis(&["check", linted.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(text(&out.stdout).starts_with("ok: "));
    assert!(
        err.contains("linted.yaml:3:3: warning: `unmatched: allow`"),
        "{err}"
    );
    assert!(
        err.contains("linted.yaml:5:3: warning: credential `k` is not required"),
        "{err}"
    );
    assert!(err.trim_end().ends_with("2 warnings"), "{err}");
}

#[test]
fn test_runs_policy_tests() {
    let fx = Fixture::new();
    let key = &fx.keys.read;
    let cases = |third_allow: bool| {
        format!(
            "policy: policy.yaml\nfixtures:\n  keys:\n    - {{key: {key}, id: key_r, consumer: acme, scopes: [charges:read]}}\n\
             cases:\n\
             \x20 - name: reads\n    request: {{method: GET, path: /v1/charges/ch_1, host: api.example.com, headers: {{x-api-key: {key}}}}}\n    expect: {{allow: true, status: 200, reason: allowed}}\n\
             \x20 - name: no key\n    request: {{method: GET, path: /v1/charges/ch_1, host: api.example.com}}\n    expect: {{allow: false, status: 401, reason: credential_missing}}\n\
             \x20 - name: third\n    request: {{method: POST, path: /v1/refunds, headers: {{x-api-key: {key}}}}}\n    expect: {{allow: {third_allow}}}\n"
        )
    };
    let test_file = fx.path("policy_test.yaml");
    std::fs::write(&test_file, cases(false)).unwrap();
    let out = portcullis(&["test", fx.dir.path().to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert_eq!(
        stdout.lines().last(),
        Some("3 passed, 0 failed"),
        "{stdout}"
    );

    std::fs::write(&test_file, cases(true)).unwrap();
    let out = portcullis(&["test", fx.dir.path().to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("third"), "{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("2 passed, 1 failed"),
        "{stdout}"
    );
}

#[test]
fn decide_prints_the_decision() {
    let fx = Fixture::new();
    let q = fx.path("q.json");
    std::fs::write(
        &q,
        serde_json::json!({"method": "GET", "path": "/v1/charges/ch_1", "host": "api.example.com",
                           "headers": {"x-api-key": fx.keys.read}})
        .to_string(),
    )
    .unwrap();
    let store = format!("sqlite://{}", fx.path("k.db").display());
    let out = portcullis(&[
        "decide",
        "--policy",
        fx.policy.to_str().unwrap(),
        "--store",
        &store,
        "--static-keys",
        fx.keys_file.to_str().unwrap(),
        "--explain",
        q.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("\n  \"allow\": true"),
        "pretty JSON: {stdout}"
    );
    let d: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(d["route"], "charges.read");
    assert!(d["trace"].is_array());
    assert!(!stdout.contains(&fx.keys.read));

    std::fs::write(&q, "{").unwrap();
    let out = portcullis(&[
        "decide",
        "--policy",
        fx.policy.to_str().unwrap(),
        "--store",
        &store,
        q.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn keys_usage_errors_exit_2() {
    // Missing --prefix: a usage error before any store is opened.
    let out = portcullis(&["keys", "create", "--consumer", "acme"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--prefix"));
}

#[test]
fn serve_refuses_to_start_on_a_broken_policy_or_unknown_store() {
    let fx = Fixture::new();
    let broken = fx.path("broken.yaml");
    std::fs::write(&broken, BROKEN).unwrap();
    let out = portcullis(&[
        "serve",
        "--policy",
        broken.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("broken.yaml:10:"),
        "{}",
        text(&out.stderr)
    );

    let out = portcullis(&[
        "serve",
        "--policy",
        fx.policy.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--store",
        "mysql://user:hunter2@db/keys",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("unsupported key store"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "a store password reached the output"
    );
}
