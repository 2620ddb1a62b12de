use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;

const BROKEN: &str = "version: 1\nroutes:\n  - name: broken\n    match: {path: /broken}\n    require: no_such_credential\n";

/// Waits (15 s at most) until `$cond` holds.
macro_rules! eventually {
    ($what:expr, $cond:expr) => {{
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if $cond {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for: {}",
                $what
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

/// 20,000+ decisions over 8 keep-alive connections while the policy flips
/// between two versions 50+ times: no 5xx, no connection error, and every
/// answer is exactly one version's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_never_mixes_versions() {
    const CONNECTIONS: usize = 8;
    const DECISIONS: usize = 20_000;
    const RELOADS: usize = 50;

    let fx = Fixture::with_policy(&version_a());
    let p = Portcullis::start_with(
        &fx,
        ServeOptions {
            args: vec![
                "--no-watch".into(),
                "--log-sample-allow".into(),
                "0".into(),
                "--log-sample-deny".into(),
                "0".into(),
            ],
            admin_token: Some(ADMIN_TOKEN),
            ..Default::default()
        },
    );
    let done = Arc::new(AtomicUsize::new(0));
    let reloads = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let q = question(&fx.keys.read);

    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let (done, reloads, seen, q, addr) = (
            Arc::clone(&done),
            Arc::clone(&reloads),
            Arc::clone(&seen),
            q.clone(),
            p.addr,
        );
        clients.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            while done.load(Ordering::Relaxed) < DECISIONS
                || reloads.load(Ordering::Relaxed) < RELOADS
            {
                let r = c
                    .try_send(req("POST", "/v1/decide", &[("host", b"p")], &q))
                    .await
                    .map_err(|e| format!("connection error: {e}"))?;
                if r.status != 200 {
                    return Err(format!("status {}: {}", r.status, r.text()));
                }
                match classify(&r.json())? {
                    'a' => seen[0].fetch_add(1, Ordering::Relaxed),
                    _ => seen[1].fetch_add(1, Ordering::Relaxed),
                };
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), String>(())
        }));
    }

    let reloader = {
        let (reloads, stop, policy) = (Arc::clone(&reloads), Arc::clone(&stop), fx.policy.clone());
        let admin = p.admin.unwrap();
        tokio::spawn(async move {
            let mut generation = 1;
            while !stop.load(Ordering::Relaxed) {
                let text = if generation % 2 == 1 {
                    version_b()
                } else {
                    version_a()
                };
                write_atomic(&policy, &text);
                let r = send(
                    admin,
                    "POST",
                    "/admin/v1/reload",
                    &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
                    "",
                )
                .await;
                assert_eq!(r.status, 200, "{}", r.text());
                generation += 1;
                assert_eq!(r.json()["generation"], generation);
                reloads.fetch_add(1, Ordering::Relaxed);
                // Spread reloads over the run rather than all at its start.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    for c in clients {
        c.await.unwrap().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    reloader.await.unwrap();
    let (a, b) = (
        seen[0].load(Ordering::Relaxed),
        seen[1].load(Ordering::Relaxed),
    );
    assert!(done.load(Ordering::Relaxed) >= DECISIONS);
    assert!(reloads.load(Ordering::Relaxed) >= RELOADS);
    assert!(a > 0 && b > 0, "both versions answered: a={a} b={b}");
    let m = send(p.addr, "GET", "/metrics", &[], "").await.text();
    assert!(m.contains(r#"portcullis_policy_reloads_total{result="ok",trigger="admin"}"#));
    assert!(!m.contains(r#"result="error""#), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_policy_in_the_watched_directory_changes_nothing() {
    let fx = Fixture::new();
    let dir = fx.path("policies");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.yaml"), version_a()).unwrap();
    let p = Portcullis::start_with(
        &fx,
        ServeOptions {
            policy: Some(&dir),
            args: vec!["--watch-debounce".into(), "100ms".into()],
            ..Default::default()
        },
    );
    assert_eq!(current(&p, &fx.keys.read).await, 'a');

    std::fs::write(dir.join("zz_broken.yaml"), BROKEN).unwrap();
    let mut ready: serde_json::Value;
    eventually!("readyz reports the failed reload", {
        ready = send(p.addr, "GET", "/readyz", &[], "").await.json();
        ready["last_reload"]["ok"] == false
    });
    let err = &ready["last_reload"]["errors"][0];
    assert!(
        err["file"].as_str().unwrap().ends_with("zz_broken.yaml"),
        "{ready}"
    );
    assert!(err["line"].as_u64().unwrap() > 0, "{ready}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("no_such_credential"),
        "{ready}"
    );
    assert_eq!(ready["policy"]["generation"], 1);
    assert_eq!(ready["ready"], true);
    // Decisions are unchanged.
    for _ in 0..20 {
        assert_eq!(current(&p, &fx.keys.read).await, 'a');
    }
    let m = send(p.addr, "GET", "/metrics", &[], "").await.text();
    assert!(
        m.contains(r#"portcullis_policy_reloads_total{result="error",trigger="watch"}"#),
        "{m}"
    );
    assert!(m.contains("portcullis_policy_last_reload_success 0"), "{m}");
    // The located error is logged.
    p.wait_log("no_such_credential");

    // Fixing it reloads.
    std::fs::remove_file(dir.join("zz_broken.yaml")).unwrap();
    std::fs::write(dir.join("main.yaml"), version_b()).unwrap();
    eventually!(
        "the fixed policy is served",
        current(&p, &fx.keys.read).await == 'b'
    );
    let ready = send(p.addr, "GET", "/readyz", &[], "").await.json();
    assert_eq!(ready["last_reload"]["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_watch_sighup_and_admin() {
    let fx = Fixture::with_policy(&version_a());
    let p = Portcullis::start_with(
        &fx,
        ServeOptions {
            args: vec!["--watch-debounce".into(), "100ms".into()],
            admin_token: Some(ADMIN_TOKEN),
            ..Default::default()
        },
    );
    // The file watch: an editor-style replace.
    write_atomic(&fx.policy, &version_b());
    eventually!("the watch reloads", current(&p, &fx.keys.read).await == 'b');
    // An in-place rewrite.
    std::fs::write(&fx.policy, version_a()).unwrap();
    eventually!(
        "the watch reloads again",
        current(&p, &fx.keys.read).await == 'a'
    );
    drop(p);

    let p = Portcullis::start_with(
        &fx,
        ServeOptions {
            args: vec!["--no-watch".into()],
            admin_token: Some(ADMIN_TOKEN),
            ..Default::default()
        },
    );
    write_atomic(&fx.policy, &version_b());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        current(&p, &fx.keys.read).await,
        'a',
        "--no-watch does not reload"
    );
    p.signal("HUP");
    eventually!("SIGHUP reloads", current(&p, &fx.keys.read).await == 'b');

    // A broken policy through the admin API: 422 with located errors, nothing changes.
    std::fs::write(&fx.policy, BROKEN).unwrap();
    let r = admin_reload(&p).await;
    assert_eq!(r.status, 422);
    let body = r.json();
    assert_eq!(body["ok"], false);
    assert!(body["errors"][0]["line"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(current(&p, &fx.keys.read).await, 'b');
    let ready = send(p.addr, "GET", "/readyz", &[], "").await.json();
    assert_eq!(ready["last_reload"]["trigger"], "admin");
    assert_eq!(ready["last_reload"]["ok"], false);

    write_atomic(&fx.policy, &version_a());
    let r = admin_reload(&p).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["generation"], 3);
    assert_eq!(current(&p, &fx.keys.read).await, 'a');
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_requires_the_token() {
    let fx = Fixture::new();
    // No token: no admin listener at all.
    let p = Portcullis::start(&fx);
    assert!(p.admin.is_none());
    p.wait_log("admin API off");
    drop(p);

    let p = Portcullis::start_with(
        &fx,
        ServeOptions {
            admin_token: Some(ADMIN_TOKEN),
            ..Default::default()
        },
    );
    let admin = p.admin.unwrap();
    for auth in [
        None,
        Some("Bearer wrong-token-wrong-token".to_string()),
        Some(format!("Basic {ADMIN_TOKEN}")),
        Some(format!("Bearer {ADMIN_TOKEN}x")),
    ] {
        let hs: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let r = send(admin, "POST", "/admin/v1/reload", &hs, "").await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert!(r.header("www-authenticate").is_some());
        // Unknown paths do not reveal themselves without the token either.
        assert_eq!(
            send(admin, "GET", "/admin/v1/nothing", &hs, "")
                .await
                .status,
            401
        );
    }
    let ok = format!("bearer  {ADMIN_TOKEN}");
    let r = send(
        admin,
        "POST",
        "/admin/v1/reload",
        &[("authorization", &ok)],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        send(
            admin,
            "GET",
            "/admin/v1/reload",
            &[("authorization", &ok)],
            ""
        )
        .await
        .status,
        405
    );
    let r = send(
        admin,
        "GET",
        "/admin/v1/keys",
        &[("authorization", &ok)],
        "",
    )
    .await;
    // Key management answers over the configured store (tests/stores.rs covers it).
    assert_eq!(r.status, 200);
    // The admin API is not on the decision listener.
    assert_eq!(
        send(
            p.addr,
            "POST",
            "/admin/v1/reload",
            &[("authorization", &ok)],
            ""
        )
        .await
        .status,
        404
    );
    assert!(
        !p.logs().contains(ADMIN_TOKEN),
        "the token reached the logs"
    );
    drop(p);

    let short = Portcullis::try_start(
        &fx,
        ServeOptions {
            admin_token: Some("short"),
            ..Default::default()
        },
    );
    match short {
        Ok(_) => panic!("started with a short admin token"),
        Err(log) => assert!(log.contains("at least 16"), "{log}"),
    }
}
