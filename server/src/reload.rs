//! Hot reload: file watch (debounced), SIGHUP and the admin API all come
//! here. The engine compiles the new policy first and swaps it in only on
//! success, so a decision sees either the old or the new policy, never a
//! mix, and a broken policy leaves the old one serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use portcullis_engine::{Diagnostics, Engine};
use serde::Serialize;

use crate::metrics::Metrics;

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Watch,
    Signal,
    Admin,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Watch => "watch",
            Trigger::Signal => "signal",
            Trigger::Admin => "admin",
        }
    }
}

/// One policy error with its place, as `/readyz` and the admin API show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// The outcome of one reload attempt.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub trigger: Trigger,
    /// Unix seconds.
    pub at: i64,
    pub ok: bool,
    /// The generation serving after the attempt.
    pub generation: u64,
    pub errors: Vec<Located>,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn located(d: &Diagnostics) -> Vec<Located> {
    d.iter()
        .map(|d| Located {
            file: d.file.display().to_string(),
            line: d.line,
            col: d.col,
            message: d.message.clone(),
            help: d.help.clone(),
        })
        .collect()
}

/// Serializes reloads and remembers the last result.
pub struct Reloader {
    engine: Arc<Engine>,
    path: PathBuf,
    gate: tokio::sync::Mutex<()>,
    last: parking_lot::RwLock<Option<Attempt>>,
    metrics: Arc<Metrics>,
    store: std::sync::OnceLock<Arc<crate::store::Store>>,
}

impl Reloader {
    pub fn new(engine: Arc<Engine>, path: PathBuf, metrics: Arc<Metrics>) -> Self {
        metrics.set_generation(engine.generation());
        Self {
            engine,
            path,
            gate: tokio::sync::Mutex::new(()),
            last: parking_lot::RwLock::new(None),
            metrics,
            store: std::sync::OnceLock::new(),
        }
    }

    /// The key store whose freshness `/readyz` reports.
    pub fn set_store(&self, store: Arc<crate::store::Store>) {
        let _ = self.store.set(store);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reloads the policy from its path; logs every located error on failure.
    pub async fn reload(&self, trigger: Trigger) -> Attempt {
        let _one_at_a_time = self.gate.lock().await;
        let engine = Arc::clone(&self.engine);
        let path = self.path.clone();
        // Reading and compiling a policy touches the filesystem (and may hash
        // htpasswd files): keep it off the async workers.
        let result = tokio::task::spawn_blocking(move || engine.reload_path(&path)).await;
        let at = now_unix();
        let attempt = match result {
            Ok(Ok(generation)) => {
                tracing::info!(
                    trigger = trigger.as_str(),
                    generation,
                    policy = %self.path.display(),
                    "policy reloaded"
                );
                Attempt {
                    trigger,
                    at,
                    ok: true,
                    generation,
                    errors: Vec::new(),
                }
            }
            Ok(Err(diags)) => {
                let errors = located(&diags);
                for e in &errors {
                    tracing::error!(
                        trigger = trigger.as_str(),
                        file = %e.file,
                        line = e.line,
                        col = e.col,
                        error = %e.message,
                        "policy error"
                    );
                }
                tracing::error!(
                    trigger = trigger.as_str(),
                    errors = errors.len(),
                    generation = self.engine.generation(),
                    "policy reload failed; the previous policy keeps serving"
                );
                Attempt {
                    trigger,
                    at,
                    ok: false,
                    generation: self.engine.generation(),
                    errors,
                }
            }
            Err(join) => {
                tracing::error!(error = %join, "policy reload task failed");
                Attempt {
                    trigger,
                    at,
                    ok: false,
                    generation: self.engine.generation(),
                    errors: vec![Located {
                        file: self.path.display().to_string(),
                        line: 0,
                        col: 0,
                        message: "internal error while reloading".into(),
                        help: None,
                    }],
                }
            }
        };
        self.metrics
            .record_reload(attempt.ok, trigger.as_str(), attempt.generation, at);
        *self.last.write() = Some(attempt.clone());
        attempt
    }

    pub fn last(&self) -> Option<Attempt> {
        self.last.read().clone()
    }

    /// The `/readyz` detail.
    pub fn readiness(&self) -> serde_json::Value {
        let policy = self.engine.policy();
        let store = self.store.get().map(|s| s.status());
        serde_json::json!({
            "ready": store.as_ref().is_none_or(|s| s.ready),
            "store": store,
            "policy": {
                "path": self.path.display().to_string(),
                "generation": self.engine.generation(),
                "routes": policy.routes.len(),
                "credentials": policy.credentials.len(),
            },
            "last_reload": self.last(),
        })
    }
}

/// Watches the policy file (through its directory, so editors that replace
/// the file by renaming are seen) or directory, and reloads once writes have
/// settled for `debounce`. Dropping the returned watcher stops the watch.
///
/// Debounced here rather than with `notify-debouncer-mini`: that crate drops
/// event kinds, and reading the policy (on every reload) raises open/read
/// access events that must not trigger another reload.
pub fn watch(
    reloader: Arc<Reloader>,
    debounce: Duration,
) -> Result<RecommendedWatcher, notify::Error> {
    let target = std::fs::canonicalize(reloader.path()).unwrap_or_else(|_| reloader.path().into());
    let is_dir = target.is_dir();
    let (watched, mode) = if is_dir {
        (target.clone(), RecursiveMode::Recursive)
    } else {
        let parent = target
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        (parent, RecursiveMode::NonRecursive)
    };
    let file_name = target.file_name().map(|n| n.to_os_string());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<Event>| match res {
        Ok(event) => {
            let changes = match event.kind {
                EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
                EventKind::Access(_) => false,
                _ => true,
            };
            let relevant = is_dir
                || event
                    .paths
                    .iter()
                    .any(|p| p.file_name().map(|n| n.to_os_string()) == file_name);
            if changes && relevant {
                let _ = tx.send(());
            }
        }
        Err(e) => tracing::warn!(error = %e, "policy watch error"),
    })?;
    watcher.watch(&watched, mode)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Wait until no change has arrived for `debounce`.
            loop {
                match tokio::time::timeout(debounce, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            reloader.reload(Trigger::Watch).await;
        }
    });
    tracing::info!(path = %watched.display(), "watching policy for changes");
    Ok(watcher)
}

/// Reloads on SIGHUP.
pub fn on_sighup(reloader: Arc<Reloader>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            reloader.reload(Trigger::Signal).await;
        }
    });
    Ok(())
}
