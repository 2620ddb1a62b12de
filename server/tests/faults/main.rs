//! Fault and load tests of `portcullis serve`: the real binary on loopback,
//! driven into each fault with bounded loops. Every test asserts a defined
//! answer, that `/healthz` still answers afterwards and, where it means
//! something, that memory stayed bounded. docs/security.md "Fault tests"
//! lists each fault with the answer observed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

/// The e2e fixture, server process and HTTP clients (shared, not copied).
#[path = "../e2e/support.rs"]
#[allow(dead_code)]
mod support;

/// Health and memory probes shared by the fault modules.
mod probe;

/// As many idle connections as the machine allows (up to 10,000).
mod idle_connections;
/// Deeply nested and huge JSON questions.
mod json_bombs;
/// Heads and bodies over the limits.
mod oversized;
/// Admin reloads and policy rewrites as fast as they go, under decisions.
mod reload_storm;
/// No secret reaches a log, at the most verbose level.
mod secrets_in_logs;
/// A body trickled to `/v1/decide`.
mod slow_body;
/// Slowloris: a request head trickled byte by byte.
mod slowloris;
/// Request smuggling shapes: ambiguous or obfuscated body framing.
mod smuggling;
/// The key store cut mid-traffic: SQLite removed or locked, Redis killed.
mod store_cut;
