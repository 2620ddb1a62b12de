//! Store behaviour against every backend: SQLite in a temp dir, and the
//! real PostgreSQL and Redis named by `PORTCULLIS_TEST_POSTGRES` and
//! `PORTCULLIS_TEST_REDIS` (skipped when unset, failing under `CI=true`),
//! each test in its own schema or key prefix.

use std::sync::Arc;
use std::time::Duration;

use portcullis_engine::credential::apikey::{KeyDigest, KeyStore, StoreError};

use super::testkit::{eventually, service_url, url_addr, via, PgSchema, Proxy, RedisPrefix};
use super::*;

const WAIT: Duration = Duration::from_secs(5);

fn new_key(consumer: &str) -> NewKey {
    NewKey {
        consumer: consumer.into(),
        scopes: vec!["charges:read".into(), "refunds:write".into()],
        prefix: "pk_test_".into(),
        metadata: [("team".to_string(), "payments".to_string())].into(),
        allowed_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
        rate_limit: Some(model::parse_rate("100/1s:200").unwrap()),
        ..Default::default()
    }
}

fn found(s: &dyn KeyStore, key: &str) -> bool {
    matches!(s.lookup(&KeyDigest::of(key)), Ok(Some(_)))
}

fn revoked(s: &dyn KeyStore, key: &str) -> bool {
    matches!(s.lookup(&KeyDigest::of(key)), Ok(Some(e)) if e.record.revoked_at.is_some())
}

/// Everything a backend must do, exercised through two replica instances
/// (A writes, B only listens), a lookup instance and a cached lookup instance.
fn lifecycle(url: &dyn Fn(&str) -> String) {
    let a = Store::open(&url("mode=replica&resync=1h")).unwrap();
    let b = Store::open(&url("mode=replica&resync=1h")).unwrap();
    let look = Store::open(&url("mode=lookup")).unwrap();
    let cached = Store::open(&url("mode=lookup&cache_ttl=1h")).unwrap();

    // Create: visible at once where it was made, soon everywhere.
    let issued = a.create(new_key("acme")).unwrap();
    assert!(issued.key.starts_with("pk_test_"));
    assert!(found(&*a, &issued.key));
    assert!(found(&*look, &issued.key));
    assert!(
        eventually(WAIT, || found(&*b, &issued.key)),
        "replica B never saw the new key"
    );
    let entry = look.lookup(&KeyDigest::of(&issued.key)).unwrap().unwrap();
    assert_eq!(&*entry.record.consumer, "acme");
    assert_eq!(entry.record.scopes.len(), 2);
    assert_eq!(entry.record.allowed_cidrs.len(), 1);
    assert_eq!(entry.record.rate_limit.unwrap().burst, 200);
    assert_eq!(
        entry.record.metadata.get("team").map(String::as_str),
        Some("payments")
    );
    assert_eq!(&*entry.fingerprint, issued.fingerprint.as_str());

    // A negative answer cached before a key exists is dropped when it is created.
    let second_key_probe = a.create(new_key("other")).unwrap();
    assert!(found(&*cached, &issued.key));
    let not_yet = "pk_test_000000000000000000000000000000000000";
    assert!(!found(&*cached, not_yet));

    // List and show: fingerprints only, never keys or digests.
    let listed = a.list(Some("acme"), None, 100).unwrap();
    assert_eq!(listed.len(), 1);
    let json = serde_json::to_string(&listed).unwrap();
    assert!(!json.contains(&issued.key));
    assert!(!json.contains(&KeyDigest::of(&issued.key).to_hex()));
    assert!(json.contains(&issued.fingerprint));
    assert_eq!(a.list(None, None, 100).unwrap().len(), 2);
    assert_eq!(a.list(None, None, 1).unwrap().len(), 1);
    let first = a.list(None, None, 1).unwrap().remove(0);
    let rest = a.list(None, Some(&first.id), 100).unwrap();
    assert_eq!(rest.len(), 1);
    assert_ne!(rest[0].id, first.id);
    let shown = b.show(&issued.id).unwrap();
    assert_eq!(shown.status, "active");
    assert_eq!(shown.keys.len(), 1);
    assert!(matches!(a.show("key_nope"), Err(OpError::NotFound(_))));
    assert_eq!(
        a.consumers().unwrap(),
        vec!["acme".to_string(), "other".to_string()]
    );

    // Revoke through A: A and lookup deny at once; B and the cache soon.
    let info = a.revoke(&issued.id).unwrap();
    assert_eq!(info.status, "revoked");
    assert!(revoked(&*a, &issued.key));
    assert!(revoked(&*look, &issued.key));
    assert!(
        eventually(WAIT, || revoked(&*b, &issued.key)),
        "replica B never saw the revocation"
    );
    assert!(
        eventually(WAIT, || revoked(&*cached, &issued.key)),
        "cache kept a revoked key"
    );
    // Twice is fine and keeps the first time.
    assert_eq!(a.revoke(&issued.id).unwrap().revoked_at, info.revoked_at);
    assert!(matches!(a.revoke("key_nope"), Err(OpError::NotFound(_))));
    assert!(matches!(
        a.rotate(&issued.id, None, Duration::from_secs(60)),
        Err(OpError::Conflict(_))
    ));

    // Rotate: a new key for the same record; the old one ends after the overlap.
    let old = second_key_probe;
    let rotated = b.rotate(&old.id, None, Duration::from_secs(3600)).unwrap();
    assert_eq!(rotated.id, old.id);
    assert!(rotated.key.starts_with("pk_test_"));
    assert_ne!(rotated.key, old.key);
    assert!(rotated.previous_keys_expire_at.is_some());
    let new_entry = b.lookup(&KeyDigest::of(&rotated.key)).unwrap().unwrap();
    assert_eq!(new_entry.key_expires_at, None);
    let old_entry = b.lookup(&KeyDigest::of(&old.key)).unwrap().unwrap();
    let until = old_entry.key_expires_at.unwrap();
    assert!((until - model::now_unix() - 3600).abs() <= 2);
    assert!(eventually(WAIT, || matches!(
        a.lookup(&KeyDigest::of(&old.key)), Ok(Some(e)) if e.key_expires_at.is_some())));
    assert!(eventually(WAIT, || found(&*a, &rotated.key)));
    // Rotating with no overlap ends the previous keys now.
    let again = a.rotate(&old.id, Some("pk_live_"), Duration::ZERO).unwrap();
    assert!(again.key.starts_with("pk_live_"));
    let e = a.lookup(&KeyDigest::of(&rotated.key)).unwrap().unwrap();
    assert!(e.key_expires_at.unwrap() <= model::now_unix());
    // An earlier end is never pushed later by a later rotation.
    let _ = a.rotate(&old.id, None, Duration::from_secs(7200)).unwrap();
    let e = look.lookup(&KeyDigest::of(&old.key)).unwrap().unwrap();
    assert!(e.key_expires_at.unwrap() <= until);
    assert_eq!(a.show(&old.id).unwrap().keys.len(), 4);

    // The jti denylist: fleet-wide, expiring, purged.
    let now = model::now_unix();
    a.deny_jti("tok-1", now + 600).unwrap();
    a.deny_jti("tok-old", now - 5).unwrap();
    assert!(a.jti_denied("tok-1"));
    assert!(look.jti_denied("tok-1"));
    assert!(!look.jti_denied("tok-2"));
    assert!(!look.jti_denied("tok-old"));
    assert!(eventually(WAIT, || b.jti_denied("tok-1")));
    assert!(!b.jti_denied("tok-2"));
    assert_eq!(a.purge_jti().unwrap(), 1);
    assert!(a.jti_denied("tok-1"));

    // Bad input is refused before the store is touched.
    let mut bad = new_key("acme");
    bad.prefix = "pk live".into();
    assert!(matches!(a.create(bad), Err(OpError::Invalid(_))));
}

#[test]
fn sqlite_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    lifecycle(&|opts| format!("sqlite://{}?{opts}", path.display()));
}

#[test]
fn postgres_lifecycle() {
    let Some(base) = service_url("PORTCULLIS_TEST_POSTGRES").unwrap() else {
        return;
    };
    let schema = PgSchema::new(&base, "life");
    lifecycle(&|opts| schema.url(opts));
}

#[test]
fn redis_lifecycle() {
    let Some(base) = service_url("PORTCULLIS_TEST_REDIS").unwrap() else {
        return;
    };
    let prefix = RedisPrefix::new(&base, "life");
    lifecycle(&|opts| prefix.url(opts));
}

#[test]
fn sqlite_is_created_with_a_versioned_schema_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let url = format!("sqlite://{}", path.display());
    let s = Store::open(&url).unwrap();
    let issued = s.create(new_key("acme")).unwrap();
    drop(s);
    let s = Store::open(&url).unwrap();
    assert!(found(&*s, &issued.key));
    let c = rusqlite::Connection::open(&path).unwrap();
    let (v, mode): (i64, String) = (
        c.query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .unwrap(),
        c.query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap(),
    );
    assert_eq!(v, 1);
    assert_eq!(mode, "wal");
    // The key itself is nowhere in the file: only its digest.
    drop(c);
    drop(s);
    let bytes = std::fs::read(&path).unwrap();
    let wal = std::fs::read(dir.path().join("k.db-wal")).unwrap_or_default();
    let hay = [bytes, wal].concat();
    assert!(!hay
        .windows(issued.key.len())
        .any(|w| w == issued.key.as_bytes()));
    // A database from a newer build is refused, not misread.
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)", [])
        .unwrap();
    drop(c);
    assert!(matches!(Store::open(&url), Err(OpError::Corrupt(_))));
}

#[test]
fn sqlite_open_errors_are_clear() {
    let e = Store::open("sqlite:///nonexistent-dir-xyz/k.db").unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(Store::open("mysql://x").is_err());
}

/// Replica mode keeps its last index up to `max_staleness`, then refuses
/// (`Stale`, 503); lookup mode refuses at once; both recover by themselves.
fn faults(url_via: &dyn Fn(&str, &str) -> String, target: std::net::SocketAddr) {
    let proxy = Proxy::start(target).unwrap();
    let url = |opts: &str| url_via(&proxy.addr.to_string(), opts);
    let writer_url = url_via(&target.to_string(), "mode=lookup");
    let writer = Store::open(&writer_url).unwrap();
    let issued = writer.create(new_key("acme")).unwrap();

    let replica = Store::open(&url(
        "mode=replica&max_staleness=1500ms&heartbeat=100ms&timeout=500ms",
    ))
    .unwrap();
    let lookup = Store::open(&url("mode=lookup&timeout=500ms")).unwrap();
    assert!(found(&*replica, &issued.key));
    assert!(found(&*lookup, &issued.key));
    let resyncs = replica.resyncs().unwrap();

    proxy.sever();
    // Lookup mode: unavailable at once (within one attempt).
    assert!(matches!(
        lookup.lookup(&KeyDigest::of(&issued.key)),
        Err(StoreError::Unavailable(_))
    ));
    // Replica: still serving the last index right after the cut...
    assert!(found(&*replica, &issued.key));
    // ...then stale once max_staleness has passed.
    assert!(eventually(Duration::from_secs(10), || matches!(
        replica.lookup(&KeyDigest::of(&issued.key)),
        Err(StoreError::Stale(_))
    )));
    assert!(!replica.ready());
    // A change made while cut off.
    writer.revoke(&issued.id).unwrap();

    proxy.restore();
    assert!(
        eventually(Duration::from_secs(15), || revoked(&*replica, &issued.key)),
        "replica did not recover"
    );
    assert!(replica.resyncs().unwrap() > resyncs);
    assert!(replica.ready());
    assert!(
        eventually(Duration::from_secs(15), || revoked(&*lookup, &issued.key)),
        "lookup did not recover"
    );
}

#[test]
fn postgres_faults() {
    let Some(base) = service_url("PORTCULLIS_TEST_POSTGRES").unwrap() else {
        return;
    };
    let schema = PgSchema::new(&base, "fault");
    let target = url_addr(&base).unwrap();
    faults(
        &|addr, opts| via(&schema.url(opts), addr.parse().unwrap()).unwrap(),
        target,
    );
}

#[test]
fn redis_faults() {
    let Some(base) = service_url("PORTCULLIS_TEST_REDIS").unwrap() else {
        return;
    };
    let prefix = RedisPrefix::new(&base, "fault");
    let target = url_addr(&base).unwrap();
    faults(
        &|addr, opts| via(&prefix.url(opts), addr.parse().unwrap()).unwrap(),
        target,
    );
}

#[test]
fn replica_stays_current_with_many_keys_and_a_full_resync() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?resync=200ms",
        dir.path().join("k.db").display()
    );
    let a = Store::open(&url).unwrap();
    let keys: Vec<_> = (0..50)
        .map(|i| a.create(new_key(&format!("c{i}"))).unwrap())
        .collect();
    let b = Store::open(&url).unwrap();
    assert_eq!(b.status().keys, Some(50));
    let r0 = b.resyncs().unwrap();
    assert!(eventually(WAIT, || b.resyncs().unwrap() > r0 + 1));
    assert!(keys.iter().all(|k| found(&*b, &k.key)));
    let st = serde_json::to_value(b.status()).unwrap();
    assert_eq!(st["backend"], "sqlite");
    assert_eq!(st["ready"], true);
}

#[test]
fn store_lookups_work_from_async_code_too() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=lookup", dir.path().join("k.db").display());
    let s: Arc<Store> = Store::open(&url).unwrap();
    let issued = s.create(new_key("acme")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s2 = Arc::clone(&s);
    let k = issued.key.clone();
    assert!(rt.block_on(async move { found(&*s2, &k) }));
}

#[test]
fn networked_lookups_work_from_every_kind_of_thread() {
    let Some(base) = service_url("PORTCULLIS_TEST_REDIS").unwrap() else {
        return;
    };
    let prefix = RedisPrefix::new(&base, "threads");
    let s = Store::open(&prefix.url("mode=lookup")).unwrap();
    let issued = s.create(new_key("acme")).unwrap();
    assert!(found(&*s, &issued.key));
    for multi in [false, true] {
        let rt = if multi {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let (s2, k) = (Arc::clone(&s), issued.key.clone());
        assert!(
            rt.block_on(async move { tokio::spawn(async move { found(&*s2, &k) }).await.unwrap() })
        );
    }
}

mod shared_rate_limits {
    use super::*;
    use crate::store::ratelimit::RedisLimiter;
    use portcullis_engine::ratelimit::{BucketKey, LimitSpec, Limiter};

    fn spec(name: &str, limit: u64, per: Duration, burst: u64) -> LimitSpec {
        LimitSpec {
            name: name.into(),
            limit,
            per,
            burst,
        }
    }

    #[test]
    fn two_instances_share_one_bucket() {
        let Some(base) = service_url("PORTCULLIS_TEST_REDIS").unwrap() else {
            return;
        };
        let p = RedisPrefix::new(&base, "rl");
        let url = p.url("");
        let a = RedisLimiter::open(&url).unwrap();
        let b = RedisLimiter::open(&url).unwrap();
        // 10 per hour, burst 10: the refill during the test is negligible.
        let s = spec("partner", 10, Duration::from_secs(3600), 10);
        let k = BucketKey::Text("acme".into());
        let mut allowed = 0;
        for i in 0..30 {
            let l: &RedisLimiter = if i % 2 == 0 { &a } else { &b };
            let r = l.check(&s, s.id(), &k);
            if r.allowed {
                allowed += 1;
                assert_eq!(r.limit, 10);
            } else {
                assert!(r.retry_after > Duration::ZERO);
                assert_eq!(r.remaining, 0);
            }
        }
        assert_eq!(allowed, 10, "two instances together must honour one limit");
        // Other keys and other definitions have their own buckets.
        assert!(
            a.check(&s, s.id(), &BucketKey::Text("other".into()))
                .allowed
        );
        let s2 = spec("partner", 11, Duration::from_secs(3600), 10);
        assert!(b.check(&s2, s2.id(), &k).allowed);
        assert_eq!(a.fallbacks() + b.fallbacks(), 0);
        // The first answer reports the rest of the burst.
        let fresh = BucketKey::Ip("192.0.2.1".parse().unwrap());
        assert_eq!(a.check(&s, s.id(), &fresh).remaining, 9);
    }

    #[test]
    fn redis_down_falls_back_as_configured_and_recovers() {
        let Some(base) = service_url("PORTCULLIS_TEST_REDIS").unwrap() else {
            return;
        };
        let p = RedisPrefix::new(&base, "rlfault");
        let target = url_addr(&base).unwrap();
        let proxy = Proxy::start(target).unwrap();
        let local =
            RedisLimiter::open(&via(&p.url("retry=100ms&timeout=200ms"), proxy.addr).unwrap())
                .unwrap();
        let deny = RedisLimiter::open(
            &via(
                &p.url("retry=100ms&timeout=200ms&on_error=deny"),
                proxy.addr,
            )
            .unwrap(),
        )
        .unwrap();
        let s = spec("f", 1000, Duration::from_secs(1), 1000);
        let k = BucketKey::Text("acme".into());
        assert!(local.check(&s, s.id(), &k).allowed);
        assert!(deny.check(&s, s.id(), &k).allowed);
        proxy.sever();
        assert!(
            local.check(&s, s.id(), &k).allowed,
            "local fallback allows within the limit"
        );
        assert!(!deny.check(&s, s.id(), &k).allowed, "deny fallback refuses");
        assert!(local.fallbacks() >= 1);
        assert!(deny.fallbacks() >= 1);
        proxy.restore();
        let before = deny.fallbacks();
        assert!(eventually(Duration::from_secs(10), || deny
            .check(&s, s.id(), &k)
            .allowed));
        // Once back, answers come from Redis again.
        let after = deny.fallbacks();
        assert!(deny.check(&s, s.id(), &k).allowed);
        assert_eq!(deny.fallbacks(), after);
        assert!(after >= before);
    }
}

mod bulk_import {
    use super::*;
    use portcullis_engine::credential::apikey::{fingerprint, generate, KeyRecord};

    pub fn records(n: usize) -> (Vec<StoredRecord>, Vec<String>) {
        let mut recs = Vec::with_capacity(n);
        let mut keys = Vec::with_capacity(n);
        for i in 0..n {
            let key = generate("pk_bulk_").unwrap();
            recs.push(StoredRecord {
                record: Arc::new(KeyRecord {
                    id: format!("key_bulk{i:08}").into(),
                    consumer: format!("c{}", i % 7).into(),
                    scopes: Arc::from(vec!["read".to_string()]),
                    created_at: 1,
                    expires_at: None,
                    not_before: None,
                    revoked_at: None,
                    allowed_cidrs: vec![],
                    metadata: Default::default(),
                    rate_limit: None,
                }),
                versions: vec![VersionRow {
                    digest: KeyDigest::of(&key),
                    prefix: "pk_bulk_".into(),
                    fingerprint: fingerprint(&key),
                    created_at: 1,
                    expires_at: None,
                }],
                rev: 1,
            });
            keys.push(key);
        }
        (recs, keys)
    }

    fn import_then_serve(url: &dyn Fn(&str) -> String) {
        let (recs, keys) = records(1200);
        let a = Store::open(&url("mode=lookup")).unwrap();
        let before = Store::open(&url("mode=replica")).unwrap();
        a.import(&recs).unwrap();
        assert!(
            eventually(WAIT, || before.status().keys == Some(1200)),
            "a running replica missed the import"
        );
        let r = Store::open(&url("mode=replica")).unwrap();
        assert_eq!(r.status().keys, Some(1200));
        assert!(keys
            .iter()
            .step_by(97)
            .all(|k| found(&*a, k) && found(&*r, k)));
        assert_eq!(a.consumers().unwrap().len(), 7);
    }

    #[test]
    fn sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        import_then_serve(&|o| format!("sqlite://{}?{o}", path.display()));
    }

    #[test]
    fn postgres() {
        let Some(base) = service_url("PORTCULLIS_TEST_POSTGRES").unwrap() else {
            return;
        };
        let s = PgSchema::new(&base, "bulk");
        import_then_serve(&|o| s.url(o));
    }

    #[test]
    fn redis() {
        let Some(base) = service_url("PORTCULLIS_TEST_REDIS").unwrap() else {
            return;
        };
        let p = RedisPrefix::new(&base, "bulk");
        import_then_serve(&|o| p.url(o));
    }
}

/// Store-level propagation: how long after `revoke` returns on A does
/// replica B answer revoked. Printed, not asserted (speed belongs in
/// benches); the assertion is only that it happens.
fn propagation(url: &dyn Fn(&str) -> String, label: &str) {
    let a = Store::open(&url("mode=replica")).unwrap();
    let b = Store::open(&url("mode=replica")).unwrap();
    let mut lags = Vec::new();
    for _ in 0..20 {
        let k = a.create(new_key("acme")).unwrap();
        assert!(eventually(WAIT, || found(&*b, &k.key)));
        a.revoke(&k.id).unwrap();
        let t = std::time::Instant::now();
        assert!(eventually(WAIT, || revoked(&*b, &k.key)));
        lags.push(t.elapsed());
    }
    lags.sort();
    // Changes arrive as notifications, not as reloads.
    assert!(
        b.resyncs().unwrap() <= 2,
        "{label}: {:?} full reloads",
        b.resyncs()
    );
    eprintln!(
        "{label}: store-level revocation lag p50 {:?} max {:?}",
        lags[lags.len() / 2],
        lags[lags.len() - 1]
    );
}

/// The SQLite feed polls `PRAGMA data_version` through a cached
/// statement: a second store on the same file must still see every change.
#[test]
fn propagation_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    propagation(&|o| format!("sqlite://{}?{o}", path.display()), "sqlite");
}

#[test]
fn propagation_redis() {
    let Some(base) = service_url("PORTCULLIS_TEST_REDIS").unwrap() else {
        return;
    };
    let p = RedisPrefix::new(&base, "prop");
    propagation(&|o| p.url(o), "redis");
}

#[test]
fn propagation_postgres() {
    let Some(base) = service_url("PORTCULLIS_TEST_POSTGRES").unwrap() else {
        return;
    };
    let s = PgSchema::new(&base, "prop");
    propagation(&|o| s.url(o), "postgres");
}

#[test]
fn the_store_is_a_jti_denylist() {
    use portcullis_engine::credential::jwt::JtiDenylist;
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&format!("sqlite://{}", dir.path().join("k.db").display())).unwrap();
    s.deny_jti("abc", model::now_unix() + 60).unwrap();
    let d: &dyn JtiDenylist = &*s;
    assert!(d.is_denied("abc"));
    assert!(!d.is_denied("abd"));
    assert!(matches!(s.deny_jti("", 0), Err(OpError::Invalid(_))));
}
