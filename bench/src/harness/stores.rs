//! The real stores a run uses: a SQLite file in the run directory, and the
//! PostgreSQL / Redis named by `PORTCULLIS_BENCH_POSTGRES` /
//! `PORTCULLIS_BENCH_REDIS` (or the `PORTCULLIS_TEST_*` variables). Each
//! run works in its own schema / key prefix and removes it afterwards.

use std::path::Path;

use super::mechanism::Backend;

/// A store namespace of this run.
#[derive(Clone)]
pub struct StoreNs {
    pub backend: Backend,
    base: String,
    /// Schema (postgres) or key prefix (redis) of this run.
    ns: String,
}

impl std::fmt::Debug for StoreNs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreNs({}, {})", self.backend.name(), self.ns)
    }
}

fn with_opts(url: &str, opts: &str) -> String {
    if opts.is_empty() {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&{opts}")
    } else {
        format!("{url}?{opts}")
    }
}

/// The environment variables naming a backend's service, in order of preference.
pub fn env_vars(backend: Backend) -> &'static [&'static str] {
    match backend {
        Backend::Sqlite => &[],
        Backend::Postgres => &["PORTCULLIS_BENCH_POSTGRES", "PORTCULLIS_TEST_POSTGRES"],
        Backend::Redis => &["PORTCULLIS_BENCH_REDIS", "PORTCULLIS_TEST_REDIS"],
    }
}

fn service_url(backend: Backend) -> Result<String, String> {
    for var in env_vars(backend) {
        if let Ok(v) = std::env::var(var) {
            if !v.trim().is_empty() {
                return Ok(v.trim().to_string());
            }
        }
    }
    Err(format!(
        "skipped: set {} to a {} URL to measure it",
        env_vars(backend).join(" or "),
        backend.name()
    ))
}

impl StoreNs {
    /// A fresh namespace for `backend`, or why the backend is skipped.
    pub async fn prepare(backend: Backend, run_dir: &Path, run_id: &str) -> Result<Self, String> {
        match backend {
            Backend::Sqlite => Ok(StoreNs {
                backend,
                base: format!("sqlite://{}", run_dir.join("keys.db").display()),
                ns: String::new(),
            }),
            Backend::Postgres => {
                let base = service_url(backend)?;
                let ns = format!("bench_{run_id}");
                let (client, conn) =
                    tokio_postgres::connect(strip_query(&base), tokio_postgres::NoTls)
                        .await
                        .map_err(|e| format!("skipped: postgres unreachable ({e})"))?;
                let task = tokio::spawn(conn);
                let r = client.simple_query("SELECT 1").await;
                drop(client);
                let _ = task.await;
                r.map_err(|e| format!("skipped: postgres unusable ({e})"))?;
                Ok(StoreNs { backend, base, ns })
            }
            Backend::Redis => {
                let base = service_url(backend)?;
                let ns = format!("bench_{run_id}:");
                let client = redis::Client::open(strip_query(&base))
                    .map_err(|e| format!("skipped: redis url refused ({e})"))?;
                let mut c = client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| format!("skipped: redis unreachable ({e})"))?;
                let pong: Result<String, _> = redis::cmd("PING").query_async(&mut c).await;
                pong.map_err(|e| format!("skipped: redis unusable ({e})"))?;
                Ok(StoreNs { backend, base, ns })
            }
        }
    }

    /// The `--store` URL for this namespace with mode options.
    pub fn url(&self, opts: &str) -> String {
        let ns_opt = match self.backend {
            Backend::Sqlite => String::new(),
            Backend::Postgres => format!("schema={}", self.ns),
            Backend::Redis => format!("prefix={}", self.ns),
        };
        let all: Vec<&str> = [ns_opt.as_str(), opts]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        with_opts(&self.base, &all.join("&"))
    }

    /// Removes what this run stored (the SQLite file goes with the run directory).
    pub async fn cleanup(&self) -> Result<(), String> {
        match self.backend {
            Backend::Sqlite => Ok(()),
            Backend::Postgres => {
                let (client, conn) =
                    tokio_postgres::connect(strip_query(&self.base), tokio_postgres::NoTls)
                        .await
                        .map_err(|e| e.to_string())?;
                let task = tokio::spawn(conn);
                let r = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.ns))
                    .await;
                drop(client);
                let _ = task.await;
                r.map_err(|e| e.to_string())
            }
            Backend::Redis => {
                let client =
                    redis::Client::open(strip_query(&self.base)).map_err(|e| e.to_string())?;
                let mut c = client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| e.to_string())?;
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(format!("{}*", self.ns))
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut c)
                        .await
                        .map_err(|e| e.to_string())?;
                    if !keys.is_empty() {
                        let _: () = redis::cmd("DEL")
                            .arg(&keys)
                            .query_async(&mut c)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                Ok(())
            }
        }
    }
}

/// The URL without its query (our store options are not the client's).
fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_namespace_and_mode() {
        let ns = StoreNs {
            backend: Backend::Postgres,
            base: "postgres://u@h/db?sslmode=disable".into(),
            ns: "bench_1".into(),
        };
        assert_eq!(
            ns.url("mode=lookup"),
            "postgres://u@h/db?sslmode=disable&schema=bench_1&mode=lookup"
        );
        let ns = StoreNs {
            backend: Backend::Redis,
            base: "redis://127.0.0.1:6379".into(),
            ns: "bench_1:".into(),
        };
        assert_eq!(ns.url(""), "redis://127.0.0.1:6379?prefix=bench_1:");
        let ns = StoreNs {
            backend: Backend::Sqlite,
            base: "sqlite:///tmp/x/keys.db".into(),
            ns: String::new(),
        };
        assert_eq!(
            ns.url("mode=replica"),
            "sqlite:///tmp/x/keys.db?mode=replica"
        );
    }

    #[tokio::test]
    async fn sqlite_is_always_available() {
        let dir = tempfile::tempdir().unwrap();
        let ns = StoreNs::prepare(Backend::Sqlite, dir.path(), "t")
            .await
            .unwrap();
        assert!(ns.url("").starts_with("sqlite://"));
        ns.cleanup().await.unwrap();
    }
}
