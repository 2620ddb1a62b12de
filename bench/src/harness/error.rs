//! Why a harness run stopped.

use std::path::PathBuf;

/// A failure of the harness itself (a mechanism that fails to run is
/// recorded in the report instead, and the run goes on).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// The workload file could not be read.
    #[error("cannot read workload `{path}`: {source}")]
    ReadWorkload {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The workload file is not valid; every problem is listed.
    #[error("invalid workload `{path}`:\n{}", problems.join("\n"))]
    InvalidWorkload {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// No `portcullis` binary was given, found or built.
    #[error("no portcullis binary: {0}")]
    NoServerBinary(String),
    /// A file or directory of the run could not be written.
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The load generator's runtime could not start.
    #[error("cannot start the load generator: {0}")]
    Runtime(std::io::Error),
    /// The results could not be encoded or decoded as JSON.
    #[error("report json: {0}")]
    Json(#[from] serde_json::Error),
}
