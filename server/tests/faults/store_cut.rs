//! The key store cut while decisions flow. A key that lives only in the
//! store is asked about continuously; the store is then taken away and
//! given back.
//!
//! Observed: store-backed decisions are never allowed while the store is
//! gone: they deny with `503 store_unavailable` (lookup mode at once; replica
//! mode once the index is older than `max_staleness`), the server keeps
//! answering everything else, and decisions recover when the store returns.
//! An SQLite file held by a writer (`BEGIN EXCLUSIVE`) does not block
//! readers in WAL mode: decisions go on, correctly. A killed Redis
//! connection (`CLIENT KILL`) is reconnected; in between, 503s only.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::probe::*;
use crate::support::*;

/// Creates a key in `store` with the CLI; returns the plaintext key.
fn create_key(store: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "keys",
            "create",
            "--store",
            store,
            "--consumer",
            "storeco",
            "--scopes",
            "charges:read",
            "--prefix",
            "pk_live_",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["key"].as_str().unwrap().to_string()
}

/// What a store-backed decision said: `Ok(true)` allowed, `Ok(false)` the
/// store was unavailable (503); anything else fails the test.
async fn ask(p: &Portcullis, key: &str) -> Result<bool, String> {
    let q = serde_json::json!({
        "method": "GET", "path": "/v1/charges/ch_1", "host": "api.example.com",
        "headers": {"x-api-key": key},
    });
    let d = decide(p.addr, &q).await.json();
    match (
        d["allow"].as_bool(),
        d["status"].as_u64(),
        d["reason"].as_str(),
    ) {
        (Some(true), Some(200), _) => Ok(true),
        (Some(false), Some(503), Some("store_unavailable")) => Ok(false),
        _ => Err(format!("unexpected decision: {d}")),
    }
}

/// Asks until the answer is `want`, for at most `within`; every answer on
/// the way must be an allow or a 503 (never anything else).
async fn until(p: &Portcullis, key: &str, want: bool, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let mut asked = 0;
    loop {
        asked += 1;
        if ask(p, key).await.unwrap() == want {
            return asked;
        }
        assert!(
            Instant::now() < deadline,
            "no {} within {within:?}",
            if want { "allow" } else { "503" }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sqlite_files(db: &Path) -> Vec<std::path::PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|s| std::path::PathBuf::from(format!("{}{s}", db.display())))
        .collect()
}

async fn removed_and_restored(mode: &str, stale_bound: Duration) {
    let fx = Fixture::new();
    let db = fx.path("cut.db");
    let base = format!("sqlite://{}", db.display());
    let key = create_key(&base);
    let backup = fx.path("cut.db.bak");
    std::fs::copy(&db, &backup).unwrap();
    let p = Portcullis::start_with(
        &fx,
        ServeOptions {
            store: Some(format!("{base}?{mode}")),
            ..Default::default()
        },
    );
    assert!(ask(&p, &key).await.unwrap(), "the store key is not allowed");

    for f in sqlite_files(&db) {
        let _ = std::fs::remove_file(f);
    }
    until(&p, &key, false, stale_bound).await;
    // Once refused, refused: no allow comes back while the file is gone.
    for _ in 0..20 {
        assert!(!ask(&p, &key).await.unwrap(), "allowed with the store gone");
    }
    // Static keys and public routes do not need the store.
    assert_eq!(
        send(
            p.addr,
            "GET",
            "/v1/forward-auth",
            &[
                ("x-forwarded-method", "GET"),
                ("x-forwarded-host", "api.example.com"),
                ("x-forwarded-uri", "/v1/charges/ch_1"),
                ("x-api-key", fx.keys.read.as_str()),
            ],
            ""
        )
        .await
        .status,
        200
    );
    assert_healthy(p.addr).await;

    // Restored the way an operator would: copied aside, renamed into place.
    let staged = fx.path("cut.db.restore");
    std::fs::copy(&backup, &staged).unwrap();
    std::fs::rename(&staged, &db).unwrap();
    until(&p, &key, true, Duration::from_secs(30)).await;
    assert_healthy(p.addr).await;
}

/// Regression: with the database file removed, the open connections kept
/// reading the deleted file and every stored key stayed allowed forever
/// (and a restored or replaced file was never read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_removed_was_still_served_lookup_mode() {
    removed_and_restored("mode=lookup&timeout=500ms", Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_removed_replica_mode_goes_stale_then_recovers() {
    removed_and_restored(
        "max_staleness=1s&heartbeat=100ms&timeout=500ms",
        Duration::from_secs(10),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_by_a_writer_keeps_answering() {
    let fx = Fixture::new();
    let db = fx.path("locked.db");
    let base = format!("sqlite://{}", db.display());
    let key = create_key(&base);
    let p = Portcullis::start_with(
        &fx,
        ServeOptions {
            store: Some(format!("{base}?mode=lookup&timeout=500ms")),
            ..Default::default()
        },
    );
    assert!(ask(&p, &key).await.unwrap());
    let locker = rusqlite::Connection::open(&db).unwrap();
    locker
        .execute_batch("BEGIN EXCLUSIVE; UPDATE key_records SET rev = rev;")
        .unwrap();
    let mut answers = [0usize; 2];
    for _ in 0..50 {
        answers[usize::from(ask(&p, &key).await.unwrap())] += 1;
    }
    eprintln!(
        "sqlite locked by a writer: {} allowed, {} 503",
        answers[1], answers[0]
    );
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    until(&p, &key, true, Duration::from_secs(10)).await;
    assert_healthy(p.addr).await;
}

/// Needs `PORTCULLIS_TEST_REDIS` (a Redis URL); skipped when unset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_connection_killed_denies_then_recovers() {
    let Some(url) =
        portcullis_server::store::testkit::service_url("PORTCULLIS_TEST_REDIS").unwrap()
    else {
        return;
    };
    let prefix = portcullis_server::store::testkit::unique("faults");
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = format!("{url}{sep}prefix={prefix}:");
    let key = create_key(&store);
    let fx = Fixture::new();
    let p = Portcullis::start_with(
        &fx,
        ServeOptions {
            store: Some(format!("{store}&mode=lookup&timeout=500ms")),
            ..Default::default()
        },
    );
    assert!(ask(&p, &key).await.unwrap());
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut admin = client.get_connection().unwrap();
    let mut refused = 0;
    for round in 0..5 {
        let killed: i64 = redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"][..])
            .query(&mut admin)
            .unwrap();
        assert!(round > 0 || killed > 0, "no connection to kill");
        for _ in 0..20 {
            refused += usize::from(!ask(&p, &key).await.unwrap());
        }
    }
    eprintln!("redis CLIENT KILL x5: {refused} of 100 decisions were 503, the rest allowed");
    until(&p, &key, true, Duration::from_secs(30)).await;
    assert_healthy(p.addr).await;
}
