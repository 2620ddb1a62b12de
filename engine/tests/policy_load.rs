//! Loading from the file system: files, directories, and what can go wrong there.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::path::Path;

use portcullis_engine::policy;

fn write(dir: &Path, name: &str, text: &[u8]) {
    fs::write(dir.join(name), text).unwrap();
}

#[test]
fn a_missing_file_is_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.yaml");
    let err = policy::load(&path).unwrap_err();
    assert_eq!(err.len(), 1);
    let d = &err.0[0];
    assert_eq!((d.file.as_path(), d.line, d.col), (path.as_path(), 0, 0));
    assert!(d.message.starts_with("cannot read `"), "{}", d.message);
    assert!(d
        .to_string()
        .starts_with(&format!("{}:0:0: error: cannot read", path.display())));
}

#[test]
fn a_directory_without_policies_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "only_test.yaml", b"version: 1\n");
    write(dir.path(), "notes.txt", b"hello\n");
    let err = policy::load(dir.path()).unwrap_err();
    assert!(err.0[0].message.contains("no policy files"), "{err}");
}

#[test]
fn non_utf8_is_located_at_the_first_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.yaml",
        b"version: 1\nsettings: {unmatched: d\xffny}\n",
    );
    let err = policy::load(&dir.path().join("p.yaml")).unwrap_err();
    let d = &err.0[0];
    assert_eq!((d.line, d.col), (2, 24));
    assert_eq!(d.message, "policy file is not valid utf-8");
}

#[test]
fn every_file_of_a_directory_is_checked_and_errors_name_their_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yaml",
        b"version: 1\ncredentials:\n  k: {type: api_key, in: [query]}\n",
    );
    write(
        dir.path(),
        "b.yaml",
        b"version: 1\nroutes:\n  - {name: r, match: {path: /r}, require: k, rate_limit: nope}\n",
    );
    write(dir.path(), "c.yml", b"version: 3\n");
    let err = policy::load(dir.path()).unwrap_err();
    let got: Vec<(String, usize, usize)> = err
        .iter()
        .map(|d| {
            (
                d.file.file_name().unwrap().to_string_lossy().into_owned(),
                d.line,
                d.col,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a.yaml".to_string(), 3, 27),
            ("b.yaml".to_string(), 3, 58),
            ("c.yml".to_string(), 1, 10)
        ],
        "{err}"
    );
}

#[test]
fn a_broken_file_does_not_cascade_into_unknown_names() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.yaml",
        b"version: 1\ncredentials:\n  k: {type: api_key\n",
    );
    write(
        dir.path(),
        "b.yaml",
        b"version: 1\nroutes:\n  - {name: r, match: {path: /r}, require: k}\n",
    );
    let err = policy::load(dir.path()).unwrap_err();
    assert_eq!(err.len(), 1, "{err}");
    assert!(err.0[0].file.ends_with("a.yaml"));
    assert!(err.0[0].message.starts_with("invalid yaml"));
}

#[test]
fn relative_paths_resolve_against_the_file_that_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("policies");
    fs::create_dir(&sub).unwrap();
    write(
        &sub,
        "p.yaml",
        b"version: 1\ncredentials:\n  ops: {type: basic, htpasswd_file: secrets/ops.htpasswd}\n",
    );
    let p = policy::load(&sub.join("p.yaml")).unwrap();
    let policy::CredentialKind::Basic(b) = &p.credentials[0].kind else {
        panic!()
    };
    assert_eq!(b.htpasswd_file.value, sub.join("secrets/ops.htpasswd"));
    // The file is not read at load (compile does that).
    assert!(!b.htpasswd_file.value.exists());
}
