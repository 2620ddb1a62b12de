//! The workload harness: compares credential mechanisms on a user's own
//! workload by running real `portcullis serve` processes against real
//! stores, driving them over loopback HTTP, and writing a report whose
//! recommendation is computed from the measurements of that run.
//!
//! Flow: [`workload`] (what to measure) → [`run`] (servers, load,
//! revocations) → [`results`] (raw numbers) → [`recommend`] (verdicts) →
//! [`report`] (`report.json`, `report.md`, `report.html`).

pub mod error;
pub mod http;
pub mod jwtkeys;
pub mod load;
pub mod mechanism;
pub mod population;
pub mod procfs;
pub mod recommend;
pub mod report;
pub mod results;
pub mod revoke;
pub mod run;
pub mod server;
pub mod stores;
pub mod units;
pub mod workload;

pub use error::HarnessError;
