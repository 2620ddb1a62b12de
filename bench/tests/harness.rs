#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The harness end to end: `portcullis-bench run bench/workloads/tiny.yaml
//! --quick` against the real `portcullis` binary (SQLite keys and HS256
//! JWTs: no external services), then the three reports are checked for
//! shape. No timing is asserted: only that every mechanism was measured,
//! answered correctly, and was reported.
//!
//! The server binary: `PORTCULLIS_BIN` if set, else this workspace's
//! `portcullis` built now (`cargo build -p portcullis-server`, a no-op when
//! it is fresh).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The target directory this test was built in (`.../target/debug/deps/harness-*`).
fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn portcullis() -> PathBuf {
    if let Some(p) = std::env::var_os("PORTCULLIS_BIN") {
        return PathBuf::from(p);
    }
    let profile = target_profile_dir();
    let target = profile.parent().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "-p", "portcullis-server", "--bin", "portcullis"])
        .arg("--target-dir")
        .arg(target)
        .current_dir(manifest_dir().parent().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building portcullis failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = target.join("debug").join("portcullis");
    assert!(bin.is_file(), "no {}", bin.display());
    bin
}

#[test]
fn quick_run_of_the_tiny_workload_writes_three_reports() {
    let out = tempfile::tempdir().unwrap();
    let bin = portcullis();
    let run = Command::new(env!("CARGO_BIN_EXE_portcullis-bench"))
        .arg("run")
        .arg(manifest_dir().join("workloads").join("tiny.yaml"))
        .arg("--quick")
        .arg("--out")
        .arg(out.path())
        .arg("--portcullis")
        .arg(&bin)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "harness failed:\n{stderr}");

    // report.json: the raw data, with the keys a reader relies on.
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    for key in [
        "harness_version",
        "workload",
        "environment",
        "mechanisms",
        "recommendation",
        "notes",
        "run_seconds",
    ] {
        assert!(json.get(key).is_some(), "report.json has no `{key}`");
    }
    assert_eq!(json["workload"]["name"], "tiny");
    assert_eq!(json["workload"]["quick"], true);
    assert!(json["environment"]["cpu_model"].is_string());
    let mechanisms = json["mechanisms"].as_array().unwrap();
    assert_eq!(mechanisms.len(), 2, "tiny compares two mechanisms");
    for m in mechanisms {
        let id = m["id"].as_str().unwrap();
        assert_eq!(
            m["status"]["state"], "measured",
            "{id} was not measured: {}\n{stderr}",
            m["status"]
        );
        let phases = m["phases"].as_array().unwrap();
        let kinds: Vec<&str> = phases.iter().map(|p| p["kind"].as_str().unwrap()).collect();
        assert!(
            kinds.contains(&"open") && kinds.contains(&"closed"),
            "{id}: {kinds:?}"
        );
        for p in phases {
            assert!(
                p["completed"].as_u64().unwrap() > 0,
                "{id}: no answers in {p}"
            );
            let wrong: u64 = p["wrong"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .sum();
            assert_eq!(wrong, 0, "{id}: wrong answers in {p}");
            for q in ["p50", "p90", "p99", "p999"] {
                assert!(p["latency_ms"][q].as_f64().unwrap() > 0.0, "{id}: {q}");
            }
            assert!(!p["curve"].as_array().unwrap().is_empty());
        }
        assert!(m["peak_rss_bytes"].as_u64().unwrap() > 0, "{id}: peak RSS");
        let rev = &m["revocation"];
        assert!(rev["worst_s"].as_f64().is_some(), "{id}: revocation {rev}");
    }
    let key = mechanisms
        .iter()
        .find(|m| m["mechanism"]["kind"] == "api_key")
        .unwrap();
    assert_eq!(key["revocation"]["method"], "measured");
    assert_eq!(key["revocation"]["samples"].as_array().unwrap().len(), 2);
    let jwt = mechanisms
        .iter()
        .find(|m| m["mechanism"]["kind"] == "jwt")
        .unwrap();
    assert_eq!(jwt["revocation"]["method"], "expiry");
    let verdicts = json["recommendation"]["verdicts"].as_array().unwrap();
    assert_eq!(verdicts.len(), 2);
    assert!(verdicts
        .iter()
        .all(|v| v["sentence"].as_str().unwrap().ends_with('.')));
    // A 5 s deadline and 5 min tokens: the JWT cannot be the pick.
    assert_ne!(
        json["recommendation"]["pick"].as_str(),
        Some("jwt-hs256-cache"),
        "{}",
        json["recommendation"]
    );
    let jwt_verdict = verdicts
        .iter()
        .find(|v| v["id"] == "jwt-hs256-cache")
        .unwrap();
    assert!(jwt_verdict["sentence"]
        .as_str()
        .unwrap()
        .contains("revocation deadline"));

    // report.html: self-contained, with charts.
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    assert!(html.matches("<svg").count() >= 4, "charts missing");
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    check_charts(&html);
    assert!(
        !html.contains("<script"),
        "the report must not need scripts"
    );
    assert!(
        !html.contains("src=\"http"),
        "the report must not load anything"
    );

    // report.md: the computed recommendation first.
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.starts_with("# Portcullis benchmark: tiny"));
    assert!(md.contains("## Recommendation"));
    let summary = json["recommendation"]["summary"].as_str().unwrap();
    assert!(md.contains(summary));
    assert!(md.contains("## Revocation"));
}

/// Every chart the report promises is there, titled, with axis text and
/// at least one drawn datum, and no coordinate is NaN or infinite (an empty
/// or broken chart still balances its tags, so counting `<svg` is not enough).
fn check_charts(html: &str) {
    let charts: Vec<&str> = html
        .split("<svg")
        .skip(1)
        .map(|rest| rest.split("</svg>").next().unwrap())
        .collect();
    for title in [
        "Latency by percentile at the expected rate",
        "Throughput against offered rate",
        "p99 latency against offered rate",
        "Revocation lag",
        "Server CPU per 1,000 decisions",
        "Latency by percentile at maximum throughput",
    ] {
        let chart = charts
            .iter()
            .find(|c| c.contains(title))
            .unwrap_or_else(|| panic!("no chart `{title}`"));
        assert!(chart.contains("<title>"), "`{title}`: no title element");
        assert!(
            chart.matches("<text").count() >= 4,
            "`{title}`: no axis labels or ticks"
        );
        let drawn = chart
            .split("<polyline points=\"")
            .skip(1)
            .any(|p| p.split('"').next().unwrap().contains(','))
            || chart.contains("<circle")
            // A bar (the plot frame is a `<rect/>` without a tooltip).
            || chart.contains("</rect>");
        assert!(drawn, "`{title}`: nothing drawn");
        for bad in ["NaN", "inf\"", "=\"-inf"] {
            assert!(!chart.contains(bad), "`{title}`: `{bad}` in the SVG");
        }
    }
}

#[test]
fn a_bad_workload_is_refused_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("bad.yaml");
    std::fs::write(
        &w,
        "name: bad\nneeds: {revocation_deadline: 1s, latency_p99: 5ms, expected_rate: 0}\nmechanisms: []\npopulation: {keys: 1}\nmix: {valid: 0.5, invalid: 0.1, missing: 0.1}\nopen_loop: {rates: [10], duration: 1s}\nclosed_loop: {connections: 1, duration: 1s}\n",
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_portcullis-bench"))
        .arg("run")
        .arg(&w)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--portcullis")
        .arg("/nonexistent/portcullis")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("`mechanisms` is empty"), "{err}");
    assert!(err.contains("`mix` fractions add up to 0.7"), "{err}");
    assert!(err.contains("expected_rate"), "{err}");
    assert!(!dir.path().join("out").join("report.json").exists());
}
