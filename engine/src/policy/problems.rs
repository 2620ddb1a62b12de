//! Errors found while loading a policy, kept as spans until the end, when
//! they are sorted and rendered with their file names and source lines.

use std::path::{Path, PathBuf};

use super::diagnostic::{Diagnostic, Diagnostics};
use super::model::Span;

/// One error: where, what, and optionally how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub span: Span,
    pub message: String,
    pub help: Option<String>,
}

/// Every error found so far, across all files of a policy.
#[derive(Debug, Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn extend(&mut self, other: Problems) {
        self.0.extend(other.0);
    }

    pub fn error(&mut self, span: Span, message: impl Into<String>) {
        self.0.push(Problem {
            span,
            message: message.into(),
            help: None,
        });
    }

    pub fn error_help(&mut self, span: Span, message: impl Into<String>, help: impl Into<String>) {
        self.0.push(Problem {
            span,
            message: message.into(),
            help: Some(help.into()),
        });
    }

    /// Renders every problem, sorted by file and position, with its source line.
    /// `texts[i]` is the text of `files[i]`, when it could be read.
    pub fn into_diagnostics(mut self, files: &[PathBuf], texts: &[Option<&str>]) -> Diagnostics {
        self.0
            .sort_by_key(|p| (p.span.file, p.span.line, p.span.col));
        self.0.dedup();
        // Each file's lines, split once: looking each problem's line up by
        // scanning from the top made a policy with thousands of mistakes
        // take a minute to report.
        let lines: Vec<Vec<&str>> = texts
            .iter()
            .map(|t| t.map(|t| t.lines().collect()).unwrap_or_default())
            .collect();
        let mut out = Diagnostics::default();
        for p in self.0 {
            let file = files
                .get(p.span.file)
                .cloned()
                .unwrap_or_else(|| PathBuf::from("<policy>"));
            let mut d = Diagnostic::new(file, p.span.line, p.span.col, p.message);
            d.help = p.help;
            if p.span.line > 0 {
                d.source_line = lines
                    .get(p.span.file)
                    .and_then(|l| l.get(p.span.line - 1))
                    .map(|l| l.to_string());
            }
            out.push(d);
        }
        out
    }
}

/// `file:line:col` of a span, for messages that name a second place.
pub fn place(files: &[PathBuf], span: Span) -> String {
    let file = files
        .get(span.file)
        .map(PathBuf::as_path)
        .unwrap_or(Path::new("<policy>"));
    format!("{}:{}:{}", file.display(), span.line, span.col)
}
