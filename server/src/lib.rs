//! The Portcullis decision server and CLI.
//!
//! [`serve`] wires the pieces: [`app`] (the decision listener's routes, a
//! cloneable service holding the engine), [`admin`] (the admin listener),
//! [`listener`] (accept loop, limits, graceful shutdown), [`reload`] (file
//! watch, SIGHUP, admin reload), [`metrics`] and [`decision_log`].
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod client_addr;
pub mod commands;
pub mod decision_log;
pub mod jwks;
pub mod keys;
pub mod keys_cli;
pub mod listener;
pub mod log_writer;
pub mod metrics;
pub mod reload;
pub mod respond;
pub mod scan;
pub mod serve;
pub mod static_keys;
pub mod store;
pub mod translate;
