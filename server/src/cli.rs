//! Command-line interface (SPEC section 4): argument definitions only; each
//! subcommand's behaviour lives in [`crate::commands`] and [`crate::serve`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Policy-driven auth decisions for API gateways"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve decisions over HTTP (decision API, forward-auth, ext_authz, admin API).
    Serve(Box<ServeArgs>),
    /// Validate a policy file or directory; print every error; exit 1 on errors.
    Check(CheckArgs),
    /// Run the policy tests (`*_test.yaml`); last line `N passed, M failed`.
    Test(TestArgs),
    /// Decide one request given as JSON and print the decision.
    Decide(DecideArgs),
    /// Manage API keys: create|list|show|revoke|rotate (see `portcullis keys --help`).
    Keys(KeysArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy file or directory.
    pub path: PathBuf,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Policy test file, policy file or directory.
    pub path: PathBuf,
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    /// Policy file or directory.
    #[arg(long)]
    pub policy: PathBuf,
    /// Key store URL.
    #[arg(long, default_value = "sqlite://portcullis.db")]
    pub store: String,
    /// Read-only key file (digests and records, see docs/server.md), consulted before the store.
    #[arg(long, value_name = "FILE")]
    pub static_keys: Option<PathBuf>,
    /// Include the evaluation trace.
    #[arg(long)]
    pub explain: bool,
    /// The request, as the JSON body of `POST /v1/decide` (`-` reads stdin).
    pub request: PathBuf,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// create | list | show | revoke | rotate, and their options.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// How forward-auth expresses a decision as a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ForwardAuthMode {
    /// The decision's own status (Traefik, Caddy and most gateways).
    #[default]
    Standard,
    /// nginx `auth_request` passes only 401 and 403 (anything else becomes
    /// 500): express 400, 429 and 503 as 403 with the reason in `x-auth-reason`.
    Nginx,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Policy file or directory (watched for changes).
    #[arg(long)]
    pub policy: PathBuf,
    /// Decision API address (`127.0.0.1:0` picks a free port; the bound
    /// address is printed as `listening on http://ADDR`).
    #[arg(long, default_value = "127.0.0.1:8181")]
    pub listen: SocketAddr,
    /// Admin API address; the admin API runs only when PORTCULLIS_ADMIN_TOKEN is set.
    #[arg(long, default_value = "127.0.0.1:8182")]
    pub admin_listen: SocketAddr,
    /// Key store URL: sqlite://PATH, postgres://..., redis://...
    #[arg(long, default_value = "sqlite://portcullis.db")]
    pub store: String,
    /// Redis URL for fleet-wide rate limits (`?prefix=&on_error=local|deny&timeout=&retry=`; docs/stores.md).
    #[arg(long)]
    pub redis: Option<String>,
    /// Read-only key file (digests and records, see docs/server.md), consulted before the store.
    #[arg(long, value_name = "FILE")]
    pub static_keys: Option<PathBuf>,
    /// Peers whose X-Forwarded-For / X-Real-IP / X-Forwarded-Host are believed (CIDRs, comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.0/8,::1/128",
        value_name = "CIDR,..."
    )]
    pub trusted_proxies: Vec<IpNet>,
    /// Default status mapping of /v1/forward-auth (a request's `?mode=` overrides it).
    #[arg(long, value_enum, default_value_t = ForwardAuthMode::Standard)]
    pub forward_auth_mode: ForwardAuthMode,
    /// Fraction of allow decisions logged (0.0 to 1.0).
    #[arg(long, alias = "log-sample", default_value_t = 0.01, value_name = "RATE", value_parser = parse_rate)]
    pub log_sample_allow: f64,
    /// Fraction of deny decisions logged (0.0 to 1.0).
    #[arg(long, default_value_t = 1.0, value_name = "RATE", value_parser = parse_rate)]
    pub log_sample_deny: f64,
    /// Log filter (tracing `EnvFilter` syntax); RUST_LOG overrides it.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Do not watch the policy for changes (SIGHUP and the admin API still reload).
    #[arg(long)]
    pub no_watch: bool,
    /// How long the file watcher waits for writes to settle before reloading.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    pub watch_debounce: Duration,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Limits and timeouts; every one answers a clear status or closes the connection.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Largest request body (POST /v1/decide); larger bodies get 400.
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES")]
    pub max_body_bytes: usize,
    /// Largest request head (request line and headers; HTTP/2 header list); larger gets 431.
    #[arg(long, default_value_t = 32 * 1024, value_name = "BYTES")]
    pub max_header_bytes: usize,
    /// Most request headers (HTTP/1.1); more gets 431.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_headers: usize,
    /// Time allowed to receive a request head once it starts (or once a connection opens).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// Idle keep-alive connections are closed after this long.
    #[arg(long, default_value = "75s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Time allowed to receive a request body.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,
    /// Time allowed to answer one request (body included); beyond it: 503.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Most open connections per listener; beyond it new connections get a 503 and are closed.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub max_connections: usize,
    /// Most concurrent HTTP/2 streams per connection.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub max_concurrent_streams: u32,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

impl Default for LimitArgs {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            body_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(15),
            max_connections: 10_000,
            max_concurrent_streams: 256,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration `{s}`: {e}"))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("invalid rate `{s}`: use a number from 0.0 to 1.0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_defaults() {
        let cli = Cli::try_parse_from(["portcullis", "serve", "--policy", "p.yaml"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.listen.to_string(), "127.0.0.1:8181");
        assert_eq!(args.admin_listen.to_string(), "127.0.0.1:8182");
        assert_eq!(args.store, "sqlite://portcullis.db");
        assert_eq!(args.trusted_proxies.len(), 2);
        assert_eq!(args.limits.max_body_bytes, 65536);
        assert_eq!(args.log_sample_deny, 1.0);
    }

    #[test]
    fn rates_and_durations_are_checked() {
        assert!(Cli::try_parse_from([
            "portcullis",
            "serve",
            "--policy",
            "p",
            "--log-sample",
            "1.5"
        ])
        .is_err());
        let cli = Cli::try_parse_from([
            "portcullis",
            "serve",
            "--policy",
            "p",
            "--idle-timeout",
            "500ms",
            "--trusted-proxies",
            "10.0.0.0/8,192.168.0.0/16",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.limits.idle_timeout, Duration::from_millis(500));
        assert_eq!(args.trusted_proxies.len(), 2);
    }

    #[test]
    fn keys_takes_anything() {
        let cli =
            Cli::try_parse_from(["portcullis", "keys", "create", "--consumer", "acme"]).unwrap();
        assert!(matches!(cli.command, Command::Keys(_)));
    }
}
