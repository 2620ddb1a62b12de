//! Every example policy in `policies/` compiles, and its `*_test.yaml` cases pass.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_engine::credential::apikey::MemoryIndex;
use portcullis_engine::credential::KeyStore;
use portcullis_engine::{policy, testing, Engine};

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

fn policy_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(policies_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            (name.ends_with(".yaml") || name.ends_with(".yml")) && !name.contains("_test.")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_policy_compiles() {
    let files = policy_files();
    assert!(
        !files.is_empty(),
        "no policies found in {}",
        policies_dir().display()
    );
    for f in files {
        let p = policy::load(&f).unwrap_or_else(|e| panic!("{}:\n{e}", f.display()));
        Engine::new(&p, Arc::new(MemoryIndex::new()) as Arc<dyn KeyStore>)
            .unwrap_or_else(|e| panic!("{}:\n{e}", f.display()));
    }
}

#[test]
fn every_example_policy_has_passing_tests() {
    for f in policy_files() {
        let report = testing::run_path(&f);
        if let Some(e) = report.errors.first() {
            panic!("{}: {e}", f.display());
        }
        for failure in &report.failures {
            eprintln!("{failure}");
        }
        assert_eq!(
            report.failed,
            0,
            "{}: {} failed",
            f.display(),
            report.failed
        );
        assert!(report.passed > 0, "{}: no test cases ran", f.display());
    }
}
