//! HTTP Basic through the public verifier API: passwords, unknown users,
//! the success cache, header shapes, and what the htpasswd loader refuses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portcullis_engine::credential::basic::BasicVerifier;
use portcullis_engine::credential::{CredentialType, Outcome};
use portcullis_engine::policy::{BasicDef, Span, Spanned};
use portcullis_engine::{Headers, Reason, Request};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/htpasswd")
}

fn def(file: &str, ttl: Duration) -> BasicDef {
    BasicDef {
        htpasswd_file: Spanned::new(PathBuf::from(file), Span::default()),
        grants: vec!["ops:read".to_string()],
        realm: "ops".to_string(),
        cache_ttl: ttl,
    }
}

fn verifier(file: &str, ttl: Duration) -> BasicVerifier {
    BasicVerifier::new(&def(file, ttl), &data_dir()).unwrap()
}

fn load_error(file: &str) -> String {
    BasicVerifier::new(&def(file, Duration::ZERO), &data_dir()).unwrap_err()
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_780_272_000)
}

fn auth(values: &[&str]) -> Request {
    let mut headers = Headers::new();
    for v in values {
        headers.append("Authorization", *v);
    }
    Request {
        method: "GET".into(),
        path: "/ops".into(),
        headers,
        ..Request::default()
    }
}

fn basic(user: &str, password: &str) -> Request {
    auth(&[&format!(
        "Basic {}",
        STANDARD.encode(format!("{user}:{password}"))
    )])
}

#[track_caller]
fn assert_valid(o: Outcome, user: &str) {
    match o {
        Outcome::Valid(id) => {
            assert_eq!(id.kind, CredentialType::Basic);
            assert_eq!(&*id.principal, user);
            assert_eq!(id.scopes.as_deref(), Some(&["ops:read".to_string()][..]));
        }
        other => panic!("expected `{user}` valid, got {other:?}"),
    }
}

#[track_caller]
fn assert_denied(o: Outcome, reason: Reason) {
    match o {
        Outcome::Invalid(r, _) => assert_eq!(r, reason, "{o:?}"),
        other => panic!("expected {reason:?}, got {other:?}"),
    }
}

#[test]
fn correct_password_for_every_accepted_hash_kind() {
    let v = verifier("users.htpasswd", Duration::ZERO);
    for (user, pw) in [
        ("alice", "alice-pw"),
        ("bob", "bob pw:with colon"),
        ("carol", "carol-pw"),
        ("dave", "dave-pw"),
        ("erin", "erin-pw"),
        ("frank", "frank-pw"),
    ] {
        assert_valid(v.verify(&basic(user, pw), t0()), user);
    }
    assert_eq!(v.realm(), "ops");
}

#[test]
fn wrong_password_is_invalid_and_never_cached() {
    let v = verifier("users.htpasswd", Duration::from_secs(60));
    for (user, pw) in [
        ("alice", "alice-PW"),
        ("dave", "dave-pw "),
        ("bob", "bob pw"),
    ] {
        assert_denied(v.verify(&basic(user, pw), t0()), Reason::CredentialInvalid);
    }
    assert_eq!(v.cached_successes(), 0);
    let before = v.hash_verifications();
    assert_denied(
        v.verify(&basic("alice", "alice-PW"), t0()),
        Reason::CredentialInvalid,
    );
    assert_eq!(
        v.hash_verifications(),
        before + 1,
        "a failure is hashed again"
    );
}

#[test]
fn unknown_user_runs_a_hash_like_a_wrong_password() {
    let v = verifier("bcrypt-only.htpasswd", Duration::from_secs(60));
    let wrong = v.verify(&basic("alice", "nope"), t0());
    assert_eq!(v.hash_verifications(), 1);
    let unknown = v.verify(&basic("mallory", "nope"), t0());
    assert_eq!(
        v.hash_verifications(),
        2,
        "the unknown user was checked against a hash"
    );
    // Same outcome, same detail: nothing tells the two apart but time, which is equal.
    assert_eq!(wrong, unknown);
    assert_denied(unknown, Reason::CredentialInvalid);
}

#[test]
fn success_is_cached_for_the_ttl_only() {
    let ttl = Duration::from_secs(30);
    let v = verifier("users.htpasswd", ttl);
    assert_valid(v.verify(&basic("alice", "alice-pw"), t0()), "alice");
    assert_eq!(v.hash_verifications(), 1);
    // Hit: no hash computed.
    assert_valid(
        v.verify(&basic("alice", "alice-pw"), t0() + Duration::from_secs(29)),
        "alice",
    );
    assert_eq!(v.hash_verifications(), 1);
    assert_eq!(v.cached_successes(), 1);
    // The cache is keyed by user and password: a wrong password still hashes and fails.
    assert_denied(
        v.verify(&basic("alice", "alice-pw2"), t0()),
        Reason::CredentialInvalid,
    );
    assert_eq!(v.hash_verifications(), 2);
    // Another user with the same password is not a hit.
    assert_denied(
        v.verify(&basic("carol", "alice-pw"), t0()),
        Reason::CredentialInvalid,
    );
    assert_eq!(v.hash_verifications(), 3);
    // Expired: verified again.
    assert_valid(v.verify(&basic("alice", "alice-pw"), t0() + ttl), "alice");
    assert_eq!(v.hash_verifications(), 4);
}

#[test]
fn zero_ttl_hashes_every_time() {
    let v = verifier("bcrypt-only.htpasswd", Duration::ZERO);
    for _ in 0..3 {
        assert_valid(v.verify(&basic("bob", "bob-pw"), t0()), "bob");
    }
    assert_eq!(v.hash_verifications(), 3);
    assert_eq!(v.cached_successes(), 0);
}

#[test]
fn header_shapes() {
    let v = verifier("bcrypt-only.htpasswd", Duration::ZERO);
    let good = STANDARD.encode("alice:alice-pw");
    for scheme in ["basic", "BASIC", "Basic", "bAsIc"] {
        assert_valid(
            v.verify(&auth(&[&format!("{scheme} {good}")]), t0()),
            "alice",
        );
    }
    assert_eq!(v.verify(&auth(&[]), t0()), Outcome::Absent);
    assert_eq!(
        v.verify(&auth(&["Bearer abc.def.ghi"]), t0()),
        Outcome::Absent
    );
    assert_eq!(
        v.verify(&auth(&["Digest username=\"alice\""]), t0()),
        Outcome::Absent
    );
    let twice = [format!("Basic {good}"), format!("Basic {good}")];
    assert_denied(
        v.verify(&auth(&[&twice[0], &twice[1]]), t0()),
        Reason::AmbiguousCredential,
    );
    assert_denied(
        v.verify(&auth(&[&format!("Basic {good},Basic {good}")]), t0()),
        Reason::AmbiguousCredential,
    );
    let hashes = v.hash_verifications();
    for bad in [
        "Basic".to_string(),
        "Basic ".to_string(),
        format!("Basic {}", good.trim_end_matches('=')),
        format!("Basic {good}="),
        format!("Basic {}", good.replace('+', "-")) + "!",
        format!("Basic {}", STANDARD.encode("alice")),
        format!("Basic {}", STANDARD.encode(":alice-pw")),
        format!("Basic {}", STANDARD.encode([b'a', b':', 0xff, 0xfe])),
        format!("Basic {}", STANDARD.encode("alice:alice-pw\r\n")),
        format!("Basic {good} {good}"),
    ] {
        assert_denied(v.verify(&auth(&[&bad]), t0()), Reason::CredentialInvalid);
    }
    let mut not_utf8 = auth(&[]);
    not_utf8.headers.append_invalid("authorization");
    assert_denied(v.verify(&not_utf8, t0()), Reason::CredentialInvalid);
    assert_eq!(
        v.hash_verifications(),
        hashes,
        "malformed headers never reach a hash"
    );
}

#[test]
fn bcrypt_passwords_over_72_bytes_are_refused_not_truncated() {
    let dir = std::env::temp_dir().join(format!("portcullis-basic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pw72 = "p".repeat(72);
    let hash = bcrypt::hash(&pw72, 4).unwrap();
    std::fs::write(dir.join("long.htpasswd"), format!("long:{hash}\n")).unwrap();
    let v = BasicVerifier::new(&def("long.htpasswd", Duration::ZERO), &dir).unwrap();
    assert_valid(v.verify(&basic("long", &pw72), t0()), "long");
    // bcrypt alone would accept this (it reads 72 bytes); we refuse it, after hashing.
    assert!(bcrypt::verify(format!("{pw72}suffix"), &hash).unwrap());
    assert_denied(
        v.verify(&basic("long", &format!("{pw72}suffix")), t0()),
        Reason::CredentialInvalid,
    );
    assert_eq!(v.hash_verifications(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn refused_hash_kinds_name_file_and_line() {
    for (file, kind) in [
        ("apr1.htpasswd", "apr1-md5"),
        ("sha1.htpasswd", "sha-1"),
        ("md5-crypt.htpasswd", "md5-crypt"),
        ("sha256-crypt.htpasswd", "sha256-crypt"),
        ("sha512-crypt.htpasswd", "sha512-crypt"),
        ("des-crypt.htpasswd", "des-crypt"),
        ("plain.htpasswd", "plain-text"),
        ("bcrypt-2x.htpasswd", "$2x$"),
    ] {
        let err = load_error(file);
        let at = format!("`{}:3`:", data_dir().join(file).display());
        assert!(err.contains(&at), "{file}: {err}");
        assert!(
            err.contains("`mallory`") && err.contains(kind),
            "{file}: {err}"
        );
        assert!(err.contains("only bcrypt"), "{file}: {err}");
    }
}

#[test]
fn malformed_htpasswd_files_are_refused() {
    let dup = load_error("duplicate.htpasswd");
    assert!(
        dup.contains("duplicate.htpasswd:3`:") && dup.contains("line 1"),
        "{dup}"
    );
    let colon = load_error("no-colon.htpasswd");
    assert!(colon.contains("no-colon.htpasswd:2`:"), "{colon}");
    assert!(load_error("empty.htpasswd").contains("no user"));
    assert!(load_error("missing.htpasswd").contains("cannot read"));
}

#[test]
fn debug_output_holds_no_hash() {
    let v = verifier("users.htpasswd", Duration::from_secs(60));
    assert_valid(v.verify(&basic("alice", "alice-pw"), t0()), "alice");
    let shown = format!("{v:?}");
    assert!(
        !shown.contains("$2") && !shown.contains("argon2") && !shown.contains("alice-pw"),
        "{shown}"
    );
}
