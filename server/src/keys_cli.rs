//! `portcullis keys create|list|show|revoke|rotate [--store URL] [--json]`:
//! key lifecycle from the command line, straight against the store (no
//! server needed; a running fleet hears each change through its feed).
//!
//! The key is printed once, by `create` and `rotate`; everything else shows
//! fingerprints only.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::store::model::{now_unix, parse_rate, parse_time, secs};
use crate::store::{Issued, KeyInfo, NewKey, OpError, Store};

#[derive(Debug, Parser)]
#[command(name = "portcullis keys", about = "Manage API keys")]
struct KeysCli {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Args)]
struct Common {
    /// Key store URL: sqlite://PATH, postgres://..., redis://...
    #[arg(
        long,
        env = "PORTCULLIS_STORE",
        default_value = "sqlite://portcullis.db",
        global = true
    )]
    store: String,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; it is printed once and only its digest is stored.
    Create(CreateArgs),
    /// List key records (fingerprints only).
    List(ListArgs),
    /// Show one key record.
    Show(IdArgs),
    /// Revoke a key record (all its keys), at once.
    Revoke(IdArgs),
    /// Issue a new key for a record; the current keys stop after the overlap.
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
struct CreateArgs {
    #[arg(long)]
    consumer: String,
    /// Comma-separated scopes.
    #[arg(long, value_delimiter = ',')]
    scopes: Vec<String>,
    /// Key prefix, e.g. pk_live_.
    #[arg(long)]
    prefix: String,
    /// Lifetime of the record, e.g. 90d.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "expires_at")]
    expires_in: Option<Duration>,
    /// End of the record: RFC 3339 or unix seconds.
    #[arg(long, value_parser = parse_time)]
    expires_at: Option<i64>,
    /// Start of the record: RFC 3339 or unix seconds.
    #[arg(long, value_parser = parse_time)]
    not_before: Option<i64>,
    /// Allowed client network (repeatable).
    #[arg(long = "cidr")]
    cidrs: Vec<IpNet>,
    /// Rate-limit override for this key: LIMIT/DURATION[:BURST].
    #[arg(long, value_parser = parse_rate)]
    rate_limit: Option<portcullis_engine::credential::apikey::RateOverride>,
    /// KEY=VALUE (repeatable).
    #[arg(long = "metadata", value_parser = parse_kv)]
    metadata: Vec<(String, String)>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct ListArgs {
    #[arg(long)]
    consumer: Option<String>,
    /// Records after this id (pagination).
    #[arg(long)]
    after: Option<String>,
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct IdArgs {
    id: String,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct RotateArgs {
    id: String,
    /// How long the current keys keep working.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
    overlap: Duration,
    /// Prefix of the new key (default: the current key's).
    #[arg(long)]
    prefix: Option<String>,
    #[command(flatten)]
    common: Common,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}`: write KEY=VALUE"))
}

fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{s}");
    let _ = o.flush();
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn show_issued(i: &Issued, as_json: bool, verb: &str) {
    if as_json {
        out(&json(i));
        return;
    }
    out(&format!("{verb} {} for {}", i.id, i.consumer));
    out(&format!("key:         {}", i.key));
    out(&format!("fingerprint: {}", i.fingerprint));
    out(&format!("scopes:      {}", i.scopes.join(",")));
    out(&format!(
        "expires_at:  {}",
        i.expires_at.as_deref().unwrap_or("never")
    ));
    if let Some(p) = &i.previous_keys_expire_at {
        out(&format!("previous keys stop working at {p}"));
    }
    out("This is the only time the key is shown: store it now.");
}

fn show_info(k: &KeyInfo) {
    out(&format!("id:          {}", k.id));
    out(&format!("consumer:    {}", k.consumer));
    out(&format!("status:      {}", k.status));
    out(&format!("scopes:      {}", k.scopes.join(",")));
    out(&format!("created_at:  {}", k.created_at));
    out(&format!(
        "expires_at:  {}",
        k.expires_at.as_deref().unwrap_or("never")
    ));
    if let Some(t) = &k.not_before {
        out(&format!("not_before:  {t}"));
    }
    if let Some(t) = &k.revoked_at {
        out(&format!("revoked_at:  {t}"));
    }
    if !k.allowed_cidrs.is_empty() {
        out(&format!("cidrs:       {}", k.allowed_cidrs.join(",")));
    }
    if let Some(r) = &k.rate_limit {
        out(&format!("rate_limit:  {r}"));
    }
    for (mk, mv) in &k.metadata {
        out(&format!("metadata:    {mk}={mv}"));
    }
    for v in &k.keys {
        out(&format!(
            "key:         {} (created {}, {})",
            v.fingerprint,
            v.created_at,
            match (&v.expires_at, v.active) {
                (None, _) => "no end".to_string(),
                (Some(t), true) => format!("ends {t}"),
                (Some(t), false) => format!("ended {t}"),
            }
        ));
    }
}

fn fail(e: &OpError) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {e}");
    ExitCode::FAILURE
}

/// Runs `portcullis keys ARGS...`.
pub fn run(args: &[String]) -> ExitCode {
    let cli = match KeysCli::try_parse_from(
        std::iter::once("portcullis keys".to_string()).chain(args.iter().cloned()),
    ) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let common = match &cli.command {
        KeysCommand::Create(a) => &a.common,
        KeysCommand::List(a) => &a.common,
        KeysCommand::Show(a) | KeysCommand::Revoke(a) => &a.common,
        KeysCommand::Rotate(a) => &a.common,
    };
    let store = match Store::open_admin(&common.store) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let as_json = common.json;
    let result = match &cli.command {
        KeysCommand::Create(a) => {
            let expires_at = match (a.expires_in, a.expires_at) {
                (Some(d), _) => Some(now_unix().saturating_add(secs(d))),
                (None, t) => t,
            };
            store
                .create(NewKey {
                    consumer: a.consumer.clone(),
                    scopes: a.scopes.iter().filter(|s| !s.is_empty()).cloned().collect(),
                    prefix: a.prefix.clone(),
                    expires_at,
                    not_before: a.not_before,
                    allowed_cidrs: a.cidrs.clone(),
                    metadata: a.metadata.iter().cloned().collect::<BTreeMap<_, _>>(),
                    rate_limit: a.rate_limit,
                })
                .map(|i| show_issued(&i, as_json, "created"))
        }
        KeysCommand::List(a) => store
            .list(a.consumer.as_deref(), a.after.as_deref(), a.limit)
            .map(|keys| {
                if as_json {
                    out(&json(&serde_json::json!({ "keys": keys })));
                    return;
                }
                out(&format!(
                    "{:<22} {:<20} {:<8} {:<28} KEYS",
                    "ID", "CONSUMER", "STATUS", "SCOPES"
                ));
                for k in &keys {
                    let fps: Vec<&str> = k
                        .keys
                        .iter()
                        .filter(|v| v.active)
                        .map(|v| v.fingerprint.as_str())
                        .collect();
                    out(&format!(
                        "{:<22} {:<20} {:<8} {:<28} {}",
                        k.id,
                        k.consumer,
                        k.status,
                        k.scopes.join(","),
                        fps.join(" ")
                    ));
                }
            }),
        KeysCommand::Show(a) => store.show(&a.id).map(|k| {
            if as_json {
                out(&json(&k))
            } else {
                show_info(&k)
            }
        }),
        KeysCommand::Revoke(a) => store.revoke(&a.id).map(|k| {
            if as_json {
                out(&json(&k));
            } else {
                out(&format!(
                    "revoked {} at {}",
                    k.id,
                    k.revoked_at.as_deref().unwrap_or("?")
                ));
            }
        }),
        KeysCommand::Rotate(a) => store
            .rotate(&a.id, a.prefix.as_deref(), a.overlap)
            .map(|i| show_issued(&i, as_json, "rotated")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}
