//! Real `portcullis serve` processes: finding (or building) the binary,
//! starting instances on free loopback ports, and stopping them.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::HarnessError;

/// The workspace this harness was built from.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn release_candidates(root: &Path) -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let t = PathBuf::from(t);
        let t = if t.is_absolute() { t } else { root.join(t) };
        c.push(t.join("release").join("portcullis"));
    }
    c.push(root.join("target").join("release").join("portcullis"));
    c
}

/// The `portcullis` binary: `explicit` if given, else a release build in
/// the target directory, else one built now with
/// `cargo build --release -p portcullis-server`.
pub fn find_binary(explicit: Option<&Path>) -> Result<PathBuf, HarnessError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(HarnessError::NoServerBinary(format!(
                "`{}` is not a file",
                p.display()
            )))
        };
    }
    let root = workspace_root();
    if let Some(p) = release_candidates(&root).into_iter().find(|p| p.is_file()) {
        return Ok(p);
    }
    eprintln!("building portcullis: cargo build --release -p portcullis-server");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "-p", "portcullis-server"])
        .current_dir(&root)
        .status()
        .map_err(|e| HarnessError::NoServerBinary(format!("cannot run cargo: {e}")))?;
    if !status.success() {
        return Err(HarnessError::NoServerBinary(format!(
            "`cargo build --release -p portcullis-server` failed ({status})"
        )));
    }
    release_candidates(&root)
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| {
            HarnessError::NoServerBinary("cargo built, but no target/release/portcullis".into())
        })
}

/// How to start one instance.
pub struct ServeSpec<'a> {
    pub binary: &'a Path,
    pub policy: &'a Path,
    pub store: &'a str,
    /// Enables the admin API (PORTCULLIS_ADMIN_TOKEN).
    pub admin_token: Option<&'a str>,
    pub env: &'a [(String, String)],
    pub extra_args: &'a [String],
    /// Where its stderr (logs) goes.
    pub log: PathBuf,
}

/// A running server; killed when dropped.
pub struct Instance {
    child: Child,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub log: PathBuf,
}

/// The last lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all.get(all.len().saturating_sub(lines)..)
        .unwrap_or_default()
        .join("\n")
}

impl Instance {
    /// Starts `portcullis serve` on free ports and waits for its
    /// `listening on http://ADDR` lines (60 s at most).
    pub fn start(spec: &ServeSpec<'_>) -> Result<Self, String> {
        let log = std::fs::File::create(&spec.log)
            .map_err(|e| format!("cannot create `{}`: {e}", spec.log.display()))?;
        let mut cmd = Command::new(spec.binary);
        cmd.arg("serve")
            .arg("--policy")
            .arg(spec.policy)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--store")
            .arg(spec.store)
            .args(spec.extra_args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        match spec.admin_token {
            Some(t) => cmd.env("PORTCULLIS_ADMIN_TOKEN", t),
            None => cmd.env_remove("PORTCULLIS_ADMIN_TOKEN"),
        };
        for (k, v) in spec.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start `{}`: {e}", spec.binary.display()))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("no stdout from portcullis".into());
        };
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut addr = None;
        let mut admin = None;
        let want_admin = spec.admin_token.is_some();
        while addr.is_none() || (want_admin && admin.is_none()) {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("admin listening on http://") {
                        admin = a.trim().parse().ok();
                    } else if let Some(a) = line.strip_prefix("listening on http://") {
                        addr = a.trim().parse().ok();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "portcullis did not start:\n{}",
                        log_tail(&spec.log, 15)
                    ));
                }
            }
        }
        let Some(addr) = addr else {
            return Err("no listening address".into());
        };
        Ok(Instance {
            child,
            addr,
            admin,
            log: spec.log.clone(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
