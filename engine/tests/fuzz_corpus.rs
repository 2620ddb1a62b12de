//! Replays every fuzz corpus (seeds, and every input the fuzzers kept or
//! crashed on, saved under `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/`)
//! through the same harness functions the fuzz targets call, so a crash once
//! found stays fixed under plain `cargo test`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use portcullis_engine::fuzzing;

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = Vec::new();
    for dir in [
        root.join("seeds").join(target),
        root.join("regressions").join(target),
    ] {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            out.extend(rd.map(|e| e.unwrap().path()).filter(|p| p.is_file()));
        }
    }
    out.sort();
    out
}

fn replay(target: &str, harness: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no corpus for fuzz target `{target}`");
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let result = std::panic::catch_unwind(|| harness(&data));
        assert!(
            result.is_ok(),
            "fuzz input {} broke an invariant",
            f.display()
        );
    }
    println!("{target}: replayed {} inputs", files.len());
}

#[test]
fn policy_yaml() {
    replay("policy_yaml", fuzzing::policy_yaml);
}

#[test]
fn decision_request_json() {
    replay("decision_request_json", fuzzing::decision_request_json);
}

#[test]
fn path_canonical() {
    replay("path_canonical", fuzzing::path_canonical);
}

#[test]
fn api_key_format() {
    replay("api_key_format", fuzzing::api_key_format);
}

#[test]
fn header_extraction() {
    replay("header_extraction", fuzzing::header_extraction);
}

#[test]
fn jwt_compact() {
    replay("jwt_compact", fuzzing::jwt_compact);
}

#[test]
fn json_reader() {
    replay("json_reader", fuzzing::json_reader);
}

#[test]
fn client_cert_headers() {
    replay("client_cert_headers", fuzzing::client_cert_headers);
}

/// The JWT harness's independent signature check runs on a token that is valid.
#[test]
fn jwt_compact_checks_valid_tokens_independently() {
    use portcullis_engine::credential::jwt::testing::sign;
    use portcullis_engine::policy::JwtAlgorithm;
    let key = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/jwt/keys/ec256.key.pem"),
    )
    .unwrap();
    let token = sign(
        JwtAlgorithm::ES256,
        &key,
        None,
        None,
        &serde_json::json!({"sub": "x", "exp": 1_900_000_000u64}),
    )
    .unwrap();
    fuzzing::jwt_compact(token.as_bytes());
}

/// The same for HS256: a token with a correct MAC passes the harness's
/// independent check, and one with a wrong MAC is never valid.
#[test]
fn jwt_compact_checks_valid_hs256_tokens_independently() {
    use portcullis_engine::credential::jwt::testing::sign;
    use portcullis_engine::policy::JwtAlgorithm;
    let claims = serde_json::json!({"sub": "x", "exp": 1_900_000_000u64});
    let token = sign(
        JwtAlgorithm::HS256,
        fuzzing::FUZZ_HS256_SECRET,
        None,
        None,
        &claims,
    )
    .unwrap();
    fuzzing::jwt_compact(token.as_bytes());
    let forged = sign(
        JwtAlgorithm::HS256,
        b"not-the-fuzz-secret-not-the-fuzz-secret",
        None,
        None,
        &claims,
    )
    .unwrap();
    fuzzing::jwt_compact(forged.as_bytes());
}
