//! End-to-end tests: the real `portcullis` binary on free loopback ports,
//! real nginx and Caddy in front of it, and clients that speak each
//! gateway's protocol. One test binary, one module per area.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

/// Shared fixture, server process, HTTP client, echo upstream.
mod support;

/// Real Caddy (`forward_auth`) with the Caddyfile from docs/gateways/caddy.md.
mod caddy;
/// `check`, `test`, `decide`, `keys` subcommands.
mod cli;
/// `POST /v1/decide`, health, readiness, metrics, HTTP/2, decision logs.
mod decide_api;
/// `/v1/ext-authz/...` exercised as Envoy's HTTP ext_authz client behaves.
mod envoy;
/// `/v1/forward-auth` as Traefik and Caddy call it; trusted proxies; nginx mode.
mod forward_auth;
/// The Traefik and Envoy YAML in docs/gateways/ parsed, and what the emulations assume checked.
mod gateway_docs;
/// Limits and timeouts, malformed HTTP, graceful shutdown.
mod limits;
/// `/metrics` parsed as OpenMetrics text, every family the spec names present.
mod metrics_text;
/// Real nginx (`auth_request`) with the configuration from docs/gateways/nginx.md.
mod nginx;
/// Hot reload under load, broken policies, SIGHUP, the file watch, the admin API.
mod reload;
