//! Portcullis engine: policy in, decisions out.
//!
//! The pipeline, each stage a module named for what it does:
//! [`policy`] (parse and validate YAML, every error located) →
//! [`compile`] (a decision tree: host, method, path trie, requirement) →
//! [`decide`] (one request → one [`Decision`], fail closed) →
//! [`engine`] (the compiled policy behind `ArcSwap`, hot-swapped on reload).
//! [`reference`] is a deliberately naive evaluator the tree is tested against.
//!
//! The engine does no network I/O of its own: key stores and JWKS fetching
//! are provided by the caller (the server crate).
#![forbid(unsafe_code)]

pub mod compile;
pub mod credential;
pub mod decide;
pub mod decision;
pub mod engine;
pub mod fuzzing;
pub mod path;
pub mod policy;
pub mod ratelimit;
pub mod reference;
pub mod request;
pub mod testing;
mod testing_support;

pub use decision::{Decision, Principal, RateLimitStatus, Reason};
pub use engine::{DecideOptions, Engine};
pub use policy::{Diagnostic, Diagnostics, Policy};
pub use request::{Headers, Request};
