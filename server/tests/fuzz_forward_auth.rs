//! Replays the `forward_auth_headers` fuzz corpus (seeds and saved
//! regressions under `fuzz/`) through the same harness the fuzz target runs,
//! and checks the harness reaches the cases it guards.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../../fuzz/harness/forward_auth.rs"]
mod harness;

use portcullis_engine::Reason;

use std::path::Path;

#[test]
fn forward_auth_headers_corpus_replays() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in ["seeds", "regressions"] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir).join("forward_auth_headers")) {
            files.extend(rd.map(|e| e.unwrap().path()).filter(|p| p.is_file()));
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no corpus for `forward_auth_headers`");
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let ok = std::panic::catch_unwind(|| harness::forward_auth_headers(&data)).is_ok();
        assert!(ok, "fuzz input {} broke an invariant", f.display());
    }
}

/// The harness reaches its allow checks: a trusted proxy's
/// `X-Forwarded-For` unlocks the network-restricted key, an untrusted
/// peer's does not, and conflicting target headers get no decision.
#[test]
fn forward_auth_harness_reaches_allows_and_spoofing_denies() {
    let run = |s: &str| harness::forward_auth_headers(s.as_bytes());
    let d =
        run("\x00x-forwarded-method: GET\nx-forwarded-uri: /admin/x\nx-api-key: @OPEN@\n").unwrap();
    assert!(d.allow, "{d:?}");
    let d = run("\x01x-forwarded-method: GET\nx-forwarded-uri: /admin/x\nx-forwarded-for: 10.1.2.3\nx-api-key: @NET@\n").unwrap();
    assert!(d.allow, "{d:?}");
    let d = run("\x00x-forwarded-method: GET\nx-forwarded-uri: /admin/x\nx-forwarded-for: 10.1.2.3\nx-api-key: @NET@\n").unwrap();
    assert_eq!(d.reason, Reason::IpNotAllowed);
    assert!(run(
        "\x00x-forwarded-method: GET\nx-forwarded-uri: /admin/x\nx-original-uri: /public/x\n"
    )
    .is_none());
}
