//! The policy language: parse (YAML with positions), validate (every error at
//! once, located), producing the [`Policy`] model that `compile` consumes.
//!
//! Pipeline: `serde_yaml` parses each file to a `Value` (syntax errors are
//! located by it) → [`positions`] indexes where every node was written, from
//! `yaml-rust2` events → a hand-written decoder walks the `Value` collecting
//! every error with its place (`node`, `decode`, `credentials`, `jwt`,
//! `mtls`) → `resolve` merges files and resolves names. A policy with any
//! error is never returned.

mod check;
mod credentials;
mod decode;
pub mod diagnostic;
pub mod duration;
mod jwt;
pub mod lint;
mod load;
pub mod model;
mod mtls;
mod node;
pub mod positions;
mod problems;
mod resolve;

pub use diagnostic::{Diagnostic, Diagnostics, Severity};
pub use model::*;

use std::path::{Path, PathBuf};

/// Deepest nesting of `any_of` / `all_of` accepted in a route's `require`.
pub const MAX_REQUIRE_DEPTH: usize = decode::MAX_REQUIRE_DEPTH;

/// Loads a policy file, or every `*.yaml`/`*.yml` policy of a directory
/// (policy tests, `*_test.yaml`, excluded), validated as one policy.
pub fn load(path: &Path) -> Result<Policy, Diagnostics> {
    load::load(path)
}

/// Parses and validates policy text; `file` names it in errors and anchors relative paths.
pub fn load_str(file: &Path, text: &str) -> Result<Policy, Diagnostics> {
    load::load_sources(&[(file.to_path_buf(), text.to_string())])
}

/// Parses and validates several policy texts (file name, text) as one policy,
/// as [`load`] does for a directory.
pub fn load_sources(sources: &[(PathBuf, String)]) -> Result<Policy, Diagnostics> {
    load::load_sources(sources)
}
