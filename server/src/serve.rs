//! `portcullis serve`: load the policy, open the key store, start the
//! listeners, reload on change, shut down gracefully on SIGTERM/SIGINT.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use portcullis_engine::Engine;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::admin::AdminApp;
use crate::app::{App, Settings};
use crate::cli::ServeArgs;
use crate::client_addr::TrustedProxies;
use crate::decision_log::DecisionLog;
use crate::listener::{self, Service};
use crate::metrics::Metrics;
use crate::reload::{self, Reloader};

/// The environment variable holding the admin token.
pub const ADMIN_TOKEN_ENV: &str = "PORTCULLIS_ADMIN_TOKEN";

/// JSON logs on stderr through a background writer (a slow terminal or pipe
/// never stalls a decision). Stdout carries only the `listening on` lines.
fn init_logging(level: &str) -> Result<crate::log_writer::Guard, String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) if !f.is_empty() => EnvFilter::try_new(f),
        _ => EnvFilter::try_new(level),
    }
    .map_err(|e| format!("invalid log filter: {e}"))?;
    let (writer, guard) = crate::log_writer::spawn(std::io::stderr())
        .map_err(|e| format!("cannot start the log writer: {e}"))?;
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .try_init()
        .map_err(|e| format!("cannot start logging: {e}"))?;
    Ok(guard)
}

pub fn run(args: ServeArgs) -> ExitCode {
    let _guard = match init_logging(&args.log_level) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(args))
}

fn fail(message: &str) -> ExitCode {
    tracing::error!("{message}");
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

async fn serve(args: ServeArgs) -> ExitCode {
    let store = match crate::store::open(&args.store) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let keys = match crate::static_keys::layer(store.clone(), args.static_keys.as_deref()) {
        Ok(k) => k,
        Err(e) => return fail(&e.to_string()),
    };
    let metrics = Arc::new(Metrics::new());
    let limiter = match &args.redis {
        Some(url) => match crate::store::ratelimit::RedisLimiter::open(url) {
            Ok(l) => Some(Arc::new(
                l.with_fallback_counter(metrics.ratelimit_fallbacks()),
            )),
            Err(e) => return fail(&format!("--redis: {e}")),
        },
        None => None,
    };
    let policy_path = args.policy.clone();
    let engine = match tokio::task::spawn_blocking(move || {
        Engine::from_path(&policy_path, keys).map(|e| match limiter {
            Some(l) => e.with_limiter(l),
            None => e,
        })
    })
    .await
    {
        Ok(Ok(e)) => Arc::new(e),
        Ok(Err(diags)) => {
            for d in diags.iter() {
                tracing::error!(file = %d.file.display(), line = d.line, col = d.col, error = %d.message, "policy error");
            }
            eprintln!("{diags}");
            return fail("the policy has errors; not starting");
        }
        Err(e) => return fail(&format!("policy load failed: {e}")),
    };
    let reloader = Arc::new(Reloader::new(
        Arc::clone(&engine),
        args.policy.clone(),
        Arc::clone(&metrics),
    ));
    reloader.set_store(Arc::clone(&store));
    // Revoked JWT ids live in the key store, fleet-wide.
    portcullis_engine::credential::jwt::denylist::set_global(Some(Arc::clone(&store) as _));
    let app = App::new(
        Arc::clone(&engine),
        Settings {
            trusted: TrustedProxies::new(args.trusted_proxies.clone()),
            forward_mode: args.forward_auth_mode,
            max_body_bytes: args.limits.max_body_bytes,
            body_read_timeout: args.limits.body_read_timeout,
        },
        Arc::clone(&metrics),
        DecisionLog::new(args.log_sample_allow, args.log_sample_deny),
        Arc::clone(&reloader),
    );

    let admin = match std::env::var(ADMIN_TOKEN_ENV) {
        Ok(token) if !token.is_empty() => match AdminApp::new(&token, Arc::clone(&reloader)) {
            Ok(a) => Some(a.with_store(Arc::clone(&store))),
            Err(e) => return fail(&e.to_string()),
        },
        _ => {
            tracing::info!("admin API off: {ADMIN_TOKEN_ENV} is not set");
            None
        }
    };

    let decision_listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => return fail(&format!("cannot listen on {}: {e}", args.listen)),
    };
    let admin_listener = match &admin {
        Some(_) => match TcpListener::bind(args.admin_listen).await {
            Ok(l) => Some(l),
            Err(e) => {
                return fail(&format!(
                    "cannot listen on {} (admin): {e}",
                    args.admin_listen
                ))
            }
        },
        None => None,
    };
    // Watch (and catch SIGHUP) before announcing the listeners, so a change
    // made right after startup is never missed. Kept alive for as long as
    // we serve; dropping it stops the watch.
    let _watch = if args.no_watch {
        None
    } else {
        match reload::watch(Arc::clone(&reloader), args.watch_debounce) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the policy; reload with SIGHUP or the admin API");
                None
            }
        }
    };
    if let Err(e) = reload::on_sighup(Arc::clone(&reloader)) {
        tracing::warn!(error = %e, "cannot handle SIGHUP");
    }

    // Installed before announcing too: until then SIGTERM would kill the process outright.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = stop_signals();
    tokio::spawn(async move {
        stop.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });

    // Keeps every `jwks_url` key set of the policy fresh (a no-op without one).
    let _jwks = crate::jwks::spawn_jwks_refresher(stop_rx.clone());

    if let Ok(addr) = decision_listener.local_addr() {
        announce(&format!("listening on http://{addr}"));
        tracing::info!(%addr, generation = engine.generation(), "decision API listening");
    }
    if let Some(addr) = admin_listener.as_ref().and_then(|l| l.local_addr().ok()) {
        announce(&format!("admin listening on http://{addr}"));
        tracing::info!(%addr, "admin API listening");
    }

    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(listener::serve(
        decision_listener,
        Service::Decision(app),
        args.limits.clone(),
        Arc::clone(&metrics),
        stop_rx.clone(),
    )));
    if let (Some(admin), Some(l)) = (admin, admin_listener) {
        tasks.push(tokio::spawn(listener::serve(
            l,
            Service::Admin(admin),
            args.limits.clone(),
            Arc::clone(&metrics),
            stop_rx,
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Registers SIGTERM and SIGINT now; the future resolves on either.
fn stop_signals() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
