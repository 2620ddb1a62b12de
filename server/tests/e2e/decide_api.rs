use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_deny_and_explain() {
    let fx = Fixture::new();
    let p = Portcullis::start(&fx);

    let r = decide(
        p.addr,
        &json!({"method": "GET", "path": "/v1/charges/ch_1?expand=customer", "host": "API.example.com:443",
                "headers": {"X-Api-Key": fx.keys.read}, "source_ip": "203.0.113.9"}),
    )
    .await;
    assert_eq!(r.status, 200);
    let d = r.json();
    assert_eq!(d["allow"], true, "{d}");
    assert_eq!(d["reason"], "allowed");
    assert_eq!(d["route"], "charges.read");
    assert_eq!(d["credential"], "partner_key");
    assert_eq!(d["principal"]["id"], "key_read");
    assert_eq!(d["headers"]["x-auth-consumer"], "acme");
    assert!(d.get("trace").is_none());

    let r = decide(
        p.addr,
        &json!({"method": "GET", "path": "/v1/charges/ch_1", "host": "api.example.com",
                "headers": {"x-api-key": fx.keys.noscope}}),
    )
    .await;
    assert_eq!(r.status, 200, "a well-formed question is answered 200");
    let d = r.json();
    assert_eq!(
        (d["allow"].clone(), d["status"].clone()),
        (json!(false), json!(403))
    );
    assert_eq!(d["reason"], "insufficient_scope");

    let r = decide(
        p.addr,
        &json!({"method": "GET", "path": "/v1/charges/ch_1", "host": "api.example.com"}),
    )
    .await;
    let d = r.json();
    assert_eq!(d["status"], 401);
    assert_eq!(d["reason"], "credential_missing");
    assert!(d["headers"]["www-authenticate"].is_string(), "{d}");

    let r = send(
        p.addr,
        "POST",
        "/v1/decide?explain=true",
        &[],
        &json!({"method": "GET", "path": "/v1/charges/ch_1", "host": "api.example.com",
                "headers": {"authorization": format!("Bearer {}", fx.keys.read)}})
        .to_string(),
    )
    .await;
    let d = r.json();
    assert_eq!(d["allow"], true);
    assert!(!d["trace"].as_array().unwrap().is_empty(), "{d}");
    // Explain traces show fingerprints, never the key.
    assert!(!r.text().contains(&fx.keys.read));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_questions_get_400() {
    let fx = Fixture::new();
    let p = Portcullis::start(&fx);
    for body in [
        "not json".to_string(),
        json!({"path": "/x"}).to_string(),
        json!({"method": "GET"}).to_string(),
        json!({"method": "GET", "path": "/x", "source_ip": "nope"}).to_string(),
        json!({"method": "GET", "path": "/x", "extra": 1}).to_string(),
    ] {
        let r = send(p.addr, "POST", "/v1/decide", &[], &body).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(r.json()["error"].is_string());
    }
    let big = json!({"method": "GET", "path": "/x", "headers": {"x-pad": "a".repeat(70 * 1024)}});
    let r = send(p.addr, "POST", "/v1/decide", &[], &big.to_string()).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("65536"));

    let r = send(p.addr, "GET", "/v1/decide", &[], "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = send(p.addr, "GET", "/nope", &[], "").await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics() {
    let fx = Fixture::new();
    let p = Portcullis::start(&fx);
    let r = send(p.addr, "GET", "/healthz", &[], "").await;
    assert_eq!(r.status, 200);
    let r = send(p.addr, "GET", "/readyz", &[], "").await;
    assert_eq!(r.status, 200);
    let ready = r.json();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["policy"]["generation"], 1);
    assert_eq!(ready["policy"]["routes"], 4);
    assert!(ready["last_reload"].is_null());

    decide(
        p.addr,
        &json!({"method": "GET", "path": "/v1/charges/ch_1", "host": "api.example.com",
                "headers": {"x-api-key": fx.keys.read}}),
    )
    .await;
    send(p.addr, "POST", "/v1/decide", &[], "{").await;
    let m = send(p.addr, "GET", "/metrics", &[], "").await;
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = m.text();
    for needle in [
        r#"portcullis_decisions_total{endpoint="decide",verdict="allow",reason="allowed",route="charges.read",credential="partner_key"} 1"#,
        r#"portcullis_decision_duration_seconds_count{endpoint="decide"} 1"#,
        r#"portcullis_bad_requests_total{endpoint="decide",kind="malformed"} 1"#,
        "portcullis_policy_generation 1",
        r#"portcullis_open_connections{listener="decision"}"#,
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_and_h2c() {
    let fx = Fixture::new();
    let p = Portcullis::start(&fx);
    let q = json!({"method": "GET", "path": "/v1/charges/ch_1", "host": "api.example.com",
                   "headers": {"x-api-key": fx.keys.read}})
    .to_string();
    let mut c = Client::connect(p.addr).await;
    for _ in 0..20 {
        let r = c
            .send(req("POST", "/v1/decide", &[("host", b"p")], &q))
            .await;
        assert_eq!(r.json()["allow"], true);
    }
    let mut h2 = H2Client::connect(p.addr).await;
    for _ in 0..5 {
        let r = h2
            .send(req(
                "POST",
                &format!("http://{}/v1/decide", p.addr),
                &[],
                &q,
            ))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["allow"], true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_logs_are_structured_and_hold_no_secret() {
    let fx = Fixture::new();
    let p = Portcullis::start(&fx);
    for key in fx.all_keys() {
        decide(
            p.addr,
            &json!({"method": "GET", "path": "/v1/charges/ch_1?token=querysecret", "host": "api.example.com",
                    "headers": {"x-api-key": key, "authorization": "Bearer pk_test_garbage"}}),
        )
        .await;
    }
    // One plain request per key: each decision names its key by fingerprint.
    for key in fx.all_keys() {
        decide(
            p.addr,
            &json!({"method": "GET", "path": "/v1/charges/ch_1", "host": "api.example.com",
                    "headers": {"x-api-key": key}}),
        )
        .await;
    }
    let expected = 2 * fx.all_keys().len();
    // The background writer flushes quickly; give it a moment.
    let mut logs = String::new();
    for _ in 0..100 {
        logs = p.logs();
        if logs.matches("\"decision\"").count() >= expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let decisions: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "portcullis::decision")
        .collect();
    assert_eq!(decisions.len(), expected, "{logs}");
    let keyed: Vec<&str> = decisions[fx.all_keys().len()..]
        .iter()
        .map(|d| d["key"].as_str().unwrap_or(""))
        .collect();
    let fingerprints: Vec<String> = fx
        .all_keys()
        .iter()
        .map(|k| portcullis_engine::credential::apikey::fingerprint(k))
        .collect();
    assert_eq!(keyed, fingerprints, "{logs}");
    let any = &decisions[0];
    for field in [
        "endpoint",
        "verdict",
        "reason",
        "status",
        "route",
        "credential",
        "key",
        "latency_us",
    ] {
        assert!(any.get(field).is_some(), "no `{field}` in {any}");
    }
    for key in fx.all_keys() {
        assert!(!logs.contains(key), "a key reached the logs");
    }
    assert!(
        !logs.contains("querysecret"),
        "the query string reached the logs"
    );
    assert!(!logs.contains("pk_test_garbage"));
}
