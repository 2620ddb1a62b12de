//! The one-shot subcommands: `check`, `test`, `decide`, `keys`.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use portcullis_engine::{compile, policy, testing, DecideOptions, Engine, Request};

use crate::cli::{CheckArgs, DecideArgs, KeysArgs, TestArgs};

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Validates and compiles a policy: every error, located; exit 1 on errors.
pub fn check(args: &CheckArgs) -> ExitCode {
    let policy = match policy::load(&args.path) {
        Ok(p) => p,
        Err(diags) => {
            eprintln!("{diags}");
            return ExitCode::FAILURE;
        }
    };
    match compile::compile(&policy) {
        Ok(compiled) => {
            // Lints warn and never fail the check: the policy is valid.
            let warnings = policy::lint::lint(&policy);
            for w in warnings.iter() {
                eprint!("{w}");
            }
            if !warnings.is_empty() {
                eprintln!("{} warning{}", warnings.len(), plural(warnings.len()));
            }
            println!(
                "ok: {} ({} route{}, {} credential{}, {} file{})",
                args.path.display(),
                compiled.routes.len(),
                plural(compiled.routes.len()),
                compiled.credentials.len(),
                plural(compiled.credentials.len()),
                policy.files.len(),
                plural(policy.files.len())
            );
            ExitCode::SUCCESS
        }
        Err(diags) => {
            eprintln!("{diags}");
            ExitCode::FAILURE
        }
    }
}

/// Runs policy tests; the last line is `N passed, M failed`.
pub fn test(args: &TestArgs) -> ExitCode {
    let report = testing::run_path(&args.path);
    for f in &report.failures {
        print!("{f}");
    }
    for e in &report.errors {
        println!("{e}");
    }
    if report.files.is_empty() && report.errors.is_empty() {
        eprintln!("note: no policy tests found under {}", args.path.display());
    }
    println!("{} passed, {} failed", report.passed, report.failed);
    if report.failed > 0 || !report.errors.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn read_request(path: &Path) -> std::io::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path)
    }
}

/// Decides one request given as JSON and prints the decision (exit 0 for
/// allow and deny alike; 1 when the policy, store or request is unusable).
pub fn decide(args: &DecideArgs) -> ExitCode {
    let store = match crate::store::open_oneshot(&args.store).and_then(|s| {
        crate::static_keys::layer(s, args.static_keys.as_deref()).map_err(|e| e.to_string())
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let engine = match Engine::from_path(&args.policy, Arc::clone(&store)) {
        Ok(e) => e,
        Err(diags) => {
            eprintln!("{diags}");
            return ExitCode::FAILURE;
        }
    };
    let body = match read_request(&args.request) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", args.request.display());
            return ExitCode::FAILURE;
        }
    };
    let request = match Request::from_json(&body) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let d = engine.decide_with(
        &request,
        &DecideOptions {
            explain: args.explain,
            now: None,
        },
    );
    match serde_json::to_string_pretty(&d.to_json()) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `portcullis keys ...`: see [`crate::keys_cli`].
pub fn keys(args: &KeysArgs) -> ExitCode {
    crate::keys_cli::run(&args.args)
}
