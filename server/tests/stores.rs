#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Key stores through the real binary: the `keys` CLI, the admin key
//! endpoints, decisions against each store, and revocation across a fleet
//! of `portcullis serve` processes sharing one PostgreSQL or one Redis.
//!
//! PostgreSQL and Redis come from `PORTCULLIS_TEST_POSTGRES` and
//! `PORTCULLIS_TEST_REDIS`; without them those tests say they are skipped
//! (and fail under `CI=true`). Each test has its own schema or key prefix.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portcullis_server::store::testkit::{service_url, PgSchema, RedisPrefix};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const TOKEN: &str = "test-admin-token-0123456789";

const POLICY: &str = r#"version: 1
credentials:
  partner_key:
    type: api_key
    in: [header:x-api-key]
    prefixes: [pk_test_, pk_live_]
routes:
  - name: charges
    match: {path: /v1/charges}
    require: partner_key
    scopes: {all_of: [charges:read]}
"#;

fn policy_file(dir: &Path) -> PathBuf {
    let p = dir.join("policy.yaml");
    std::fs::write(&p, POLICY).unwrap();
    p
}

fn keys(store: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("keys")
        .args(args)
        .args(["--store", store])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A minimal HTTP/1.1 client on one kept-alive connection: polling
/// decisions tightly must not pay a TCP handshake each time.
struct Http {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Http {
    fn new(addr: SocketAddr) -> Self {
        Http { addr, conn: None }
    }

    fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        for _ in 0..2 {
            if self.conn.is_none() {
                let s = TcpStream::connect(self.addr).unwrap();
                s.set_nodelay(true).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                self.conn = Some(BufReader::new(s));
            }
            if let Some(r) = self.try_call(method, path, token, body) {
                return r;
            }
            self.conn = None;
        }
        panic!("{method} {path}: no answer");
    }

    fn try_call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Option<(u16, Value)> {
        let conn = self.conn.as_mut()?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = token
            .map(|t| format!("authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.get_mut().write_all(req.as_bytes()).ok()?;
        let mut line = String::new();
        conn.read_line(&mut line).ok()?;
        let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            conn.read_line(&mut h).ok()?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().ok()?;
                }
            }
        }
        let mut buf = vec![0u8; len];
        conn.read_exact(&mut buf).ok()?;
        Some((status, serde_json::from_slice(&buf).unwrap_or(Value::Null)))
    }

    fn decide(&mut self, key: &str) -> Value {
        let (status, v) = self.call(
            "POST",
            "/v1/decide",
            None,
            Some(&json!({"method": "GET", "path": "/v1/charges", "headers": {"x-api-key": key}})),
        );
        assert_eq!(status, 200, "{v}");
        v
    }
}

/// A `portcullis serve` process, killed when dropped.
struct Server {
    child: Child,
    decide: SocketAddr,
    admin: SocketAddr,
}

impl Server {
    fn start(policy: &Path, store: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--policy"])
            .arg(policy)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--store",
                store,
                "--no-watch",
            ])
            .args(extra)
            .env("PORTCULLIS_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (mut decide, mut admin) = (None, None);
        while decide.is_none() || admin.is_none() {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 {
                let _ = child.kill();
                panic!("portcullis serve exited before listening");
            }
            let addr = |l: &str| {
                l.trim()
                    .rsplit("http://")
                    .next()
                    .unwrap()
                    .parse::<SocketAddr>()
                    .unwrap()
            };
            if line.starts_with("listening on") {
                decide = Some(addr(&line));
            } else if line.starts_with("admin listening on") {
                admin = Some(addr(&line));
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while out.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        Server {
            child,
            decide: decide.unwrap(),
            admin: admin.unwrap(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

// ---------------------------------------------------------------------------
// The `keys` CLI against an embedded SQLite store.
mod cli {
    use super::*;

    #[test]
    fn create_list_show_rotate_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = format!("sqlite://{}", dir.path().join("keys.db").display());
        let (ok, out, err) = keys(
            &store,
            &[
                "create",
                "--consumer",
                "acme",
                "--scopes",
                "charges:read,refunds:write",
                "--prefix",
                "pk_live_",
                "--expires-in",
                "90d",
                "--cidr",
                "10.0.0.0/8",
                "--rate-limit",
                "100/1s:200",
                "--metadata",
                "team=pay",
                "--json",
            ],
        );
        assert!(ok, "{err}");
        let created: Value = serde_json::from_str(&out).unwrap();
        let key = created["key"].as_str().unwrap().to_string();
        let id = created["id"].as_str().unwrap().to_string();
        assert!(key.starts_with("pk_live_") && key.len() == 44);
        assert_eq!(created["consumer"], "acme");
        assert_eq!(created["scopes"], json!(["charges:read", "refunds:write"]));
        assert!(created["expires_at"].is_string());

        // Never the key again, nor its digest.
        let digest = portcullis_engine::credential::apikey::KeyDigest::of(&key).to_hex();
        for args in [
            vec!["list", "--json"],
            vec!["list"],
            vec!["show", &id, "--json"],
            vec!["show", &id],
        ] {
            let (ok, out, err) = keys(&store, &args);
            assert!(ok, "{err}");
            assert!(
                !out.contains(&key) && !out.contains(&digest),
                "{args:?} showed a secret"
            );
            assert!(out.contains(&id));
        }
        let (_, out, _) = keys(&store, &["show", &id, "--json"]);
        let shown: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(shown["status"], "active");
        assert_eq!(shown["rate_limit"], "100/1s:200");
        assert_eq!(shown["metadata"]["team"], "pay");

        let (ok, out, err) = keys(&store, &["rotate", &id, "--overlap", "1h", "--json"]);
        assert!(ok, "{err}");
        let rotated: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(rotated["id"], id.as_str());
        assert_ne!(rotated["key"], key.as_str());
        let (_, out, _) = keys(&store, &["show", &id, "--json"]);
        let shown: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(shown["keys"].as_array().unwrap().len(), 2);

        let (ok, out, _) = keys(&store, &["revoke", &id, "--json"]);
        assert!(ok);
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap()["status"],
            "revoked"
        );

        // Errors: clear, non-zero, no panic.
        let (ok, _, err) = keys(&store, &["show", "key_missing"]);
        assert!(!ok && err.contains("no key"), "{err}");
        let (ok, _, err) = keys(
            &store,
            &["create", "--consumer", "a", "--prefix", "bad prefix"],
        );
        assert!(!ok && err.contains("prefix"), "{err}");
        let (ok, _, _) = keys(&store, &["rotate", &id]);
        assert!(!ok, "a revoked key cannot be rotated");
        let (ok, _, err) = keys("mysql://nope", &["list"]);
        assert!(!ok && err.contains("unsupported"), "{err}");
    }

    #[test]
    fn decide_uses_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = format!("sqlite://{}", dir.path().join("keys.db").display());
        let policy = policy_file(dir.path());
        let (_, out, _) = keys(
            &store,
            &[
                "create",
                "--consumer",
                "acme",
                "--scopes",
                "charges:read",
                "--prefix",
                "pk_test_",
                "--json",
            ],
        );
        let key = serde_json::from_str::<Value>(&out).unwrap()["key"]
            .as_str()
            .unwrap()
            .to_string();
        let req = dir.path().join("req.json");
        std::fs::write(
            &req,
            json!({"method": "GET", "path": "/v1/charges", "headers": {"x-api-key": key}})
                .to_string(),
        )
        .unwrap();
        let run = || {
            let o = Command::new(BIN)
                .args(["decide", "--policy"])
                .arg(&policy)
                .args(["--store", &store])
                .arg(&req)
                .output()
                .unwrap();
            serde_json::from_slice::<Value>(&o.stdout).unwrap()
        };
        let d = run();
        assert_eq!(d["allow"], true, "{d}");
        assert_eq!(d["principal"]["consumer"], "acme");
        let id = d["principal"]["id"].as_str().unwrap().to_string();
        keys(&store, &["revoke", &id]);
        let d = run();
        assert_eq!(d["reason"], "credential_revoked", "{d}");
        assert!(!d.to_string().contains(&key));
    }
}

// ---------------------------------------------------------------------------
// The admin API and decisions of one server on an embedded store.
mod admin_api {
    use super::*;

    #[test]
    fn lifecycle_through_the_admin_api_takes_effect_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let policy = policy_file(dir.path());
        let store = format!("sqlite://{}", dir.path().join("keys.db").display());
        let s = Server::start(&policy, &store, &[]);
        let mut admin = Http::new(s.admin);
        let mut dec = Http::new(s.decide);

        let (st, _) = admin.call("GET", "/admin/v1/keys", None, None);
        assert_eq!(st, 401);
        let (st, created) = admin.call("POST", "/admin/v1/keys", Some(TOKEN),
            Some(&json!({"consumer": "acme", "scopes": ["charges:read"], "prefix": "pk_test_", "expires_in": "1h"})));
        assert_eq!(st, 201, "{created}");
        let key = created["key"].as_str().unwrap().to_string();
        let id = created["id"].as_str().unwrap().to_string();
        assert_eq!(dec.decide(&key)["allow"], true);

        let (st, list) = admin.call("GET", "/admin/v1/keys", Some(TOKEN), None);
        assert_eq!(st, 200);
        assert!(!list.to_string().contains(&key));
        let (st, shown) = admin.call("GET", &format!("/admin/v1/keys/{id}"), Some(TOKEN), None);
        assert_eq!((st, shown["status"].as_str()), (200, Some("active")));

        // Rotation: both keys work during the overlap; with none, only the new one.
        let (st, rot) = admin.call(
            "POST",
            &format!("/admin/v1/keys/{id}/rotate"),
            Some(TOKEN),
            Some(&json!({"overlap": "24h"})),
        );
        assert_eq!(st, 200, "{rot}");
        let key2 = rot["key"].as_str().unwrap().to_string();
        assert_eq!(dec.decide(&key)["allow"], true);
        assert_eq!(dec.decide(&key2)["allow"], true);
        let (_, rot) = admin.call(
            "POST",
            &format!("/admin/v1/keys/{id}/rotate"),
            Some(TOKEN),
            Some(&json!({"overlap": "0s"})),
        );
        let key3 = rot["key"].as_str().unwrap().to_string();
        assert_eq!(dec.decide(&key2)["reason"], "credential_expired");
        assert_eq!(dec.decide(&key)["reason"], "credential_expired");
        assert_eq!(dec.decide(&key3)["allow"], true);

        // Revocation: the very next decision denies.
        let (st, _) = admin.call(
            "POST",
            &format!("/admin/v1/keys/{id}/revoke"),
            Some(TOKEN),
            None,
        );
        assert_eq!(st, 200);
        let d = dec.decide(&key3);
        assert_eq!(
            (
                d["allow"].as_bool(),
                d["reason"].as_str(),
                d["status"].as_u64()
            ),
            (Some(false), Some("credential_revoked"), Some(401))
        );
        assert!(!d.to_string().contains(&key3));

        let (st, _) = admin.call("GET", "/admin/v1/keys/key_nope", Some(TOKEN), None);
        assert_eq!(st, 404);
    }
}

// ---------------------------------------------------------------------------
// A fleet: two servers in replica mode on one shared store. A key revoked
// through A's admin API is denied by B; the lag from the revoke call
// returning to B's first deny is measured over 50 revocations.
mod fleet {
    use super::*;

    const N: usize = 50;

    fn revocation_lag(store_a: &str, store_b: &str, label: &str) {
        let dir = tempfile::tempdir().unwrap();
        let policy = policy_file(dir.path());
        let a = Server::start(&policy, store_a, &[]);
        let b = Server::start(&policy, store_b, &[]);
        let mut admin = Http::new(a.admin);
        let mut dec_b = Http::new(b.decide);

        let mut created = Vec::new();
        for _ in 0..N {
            let (st, c) = admin.call(
                "POST",
                "/admin/v1/keys",
                Some(TOKEN),
                Some(
                    &json!({"consumer": "acme", "scopes": ["charges:read"], "prefix": "pk_test_"}),
                ),
            );
            assert_eq!(st, 201, "{c}");
            created.push((
                c["id"].as_str().unwrap().to_string(),
                c["key"].as_str().unwrap().to_string(),
            ));
        }
        // Every key reaches B (creation propagates too).
        for (_, key) in &created {
            let t = Instant::now();
            while dec_b.decide(key)["allow"] != true {
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "{label}: B never saw a created key"
                );
            }
        }
        let mut lags = Vec::with_capacity(N);
        for (id, key) in &created {
            let (st, _) = admin.call(
                "POST",
                &format!("/admin/v1/keys/{id}/revoke"),
                Some(TOKEN),
                None,
            );
            assert_eq!(st, 200);
            let returned = Instant::now();
            loop {
                let d = dec_b.decide(key);
                if d["allow"] == false {
                    assert_eq!(d["reason"], "credential_revoked", "{d}");
                    break;
                }
                assert!(
                    returned.elapsed() < Duration::from_secs(10),
                    "{label}: B still allows a revoked key"
                );
            }
            lags.push(returned.elapsed());
        }
        lags.sort();
        println!(
            "revocation lag {label} (n={N}): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&lags, 0.50).as_secs_f64() * 1e3,
            percentile(&lags, 0.99).as_secs_f64() * 1e3,
            lags.last().unwrap().as_secs_f64() * 1e3
        );
    }

    #[test]
    fn postgres_revocation_reaches_the_other_instance() {
        let Some(base) = service_url("PORTCULLIS_TEST_POSTGRES").unwrap() else {
            return;
        };
        let schema = PgSchema::new(&base, "fleet");
        let url = schema.url("mode=replica");
        revocation_lag(&url, &url, "postgres");
    }

    #[test]
    fn redis_revocation_reaches_the_other_instance() {
        let Some(base) = service_url("PORTCULLIS_TEST_REDIS").unwrap() else {
            return;
        };
        let prefix = RedisPrefix::new(&base, "fleet");
        let url = prefix.url("mode=replica");
        revocation_lag(&url, &url, "redis");
    }

    #[test]
    fn sqlite_revocation_reaches_the_other_instance() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("shared.db").display());
        revocation_lag(&url, &url, "sqlite");
    }

    #[test]
    fn lookup_mode_instance_denies_at_once() {
        let Some(base) = service_url("PORTCULLIS_TEST_POSTGRES").unwrap() else {
            return;
        };
        let schema = PgSchema::new(&base, "fleetlookup");
        revocation_lag(
            &schema.url("mode=replica"),
            &schema.url("mode=lookup&cache_ttl=30s"),
            "postgres lookup+cache",
        );
    }
}

// ---------------------------------------------------------------------------
// Shared rate limits: two servers with `--redis` honour one limit together.
mod shared_limits {
    use super::*;

    #[test]
    fn two_servers_one_limit() {
        let Some(base) = service_url("PORTCULLIS_TEST_REDIS").unwrap() else {
            return;
        };
        let prefix = RedisPrefix::new(&base, "fleetrl");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("policy.yaml");
        std::fs::write(&p, format!("{POLICY}    rate_limit: partner\nrate_limits:\n  partner: {{limit: 5, per: 1h, burst: 5, key: consumer}}\n")).unwrap();
        let store = format!("sqlite://{}", dir.path().join("keys.db").display());
        let redis = prefix.url("");
        let a = Server::start(&p, &store, &["--redis", &redis]);
        let b = Server::start(&p, &store, &["--redis", &redis]);
        let (_, c) = Http::new(a.admin).call(
            "POST",
            "/admin/v1/keys",
            Some(TOKEN),
            Some(&json!({"consumer": "acme", "scopes": ["charges:read"], "prefix": "pk_test_"})),
        );
        let key = c["key"].as_str().unwrap().to_string();
        let (mut da, mut db) = (Http::new(a.decide), Http::new(b.decide));
        assert!(
            {
                let t = Instant::now();
                loop {
                    if db.decide(&key)["allow"] == true {
                        break true;
                    }
                    if t.elapsed() > Duration::from_secs(10) {
                        break false;
                    }
                }
            },
            "B never saw the key"
        );
        // B's check above used one unit of the shared budget.
        let mut allowed = 1;
        for i in 0..20 {
            let d = if i % 2 == 0 {
                da.decide(&key)
            } else {
                db.decide(&key)
            };
            if d["allow"] == true {
                allowed += 1;
            } else {
                assert_eq!(d["reason"], "rate_limited", "{d}");
            }
        }
        assert_eq!(
            allowed, 5,
            "the fleet must allow the limit once, not once per instance"
        );
    }
}
