//! No secret reaches a log. The server runs at the most verbose level
//! (`RUST_LOG=trace`, every decision logged) through forward-auth and
//! `/v1/decide` with valid and invalid API keys, a JWT signed with an HMAC
//! secret from the policy's `secret_env`, right and wrong Basic passwords,
//! admin calls with the right and a wrong token, and a key created through
//! the admin API (whose answer carries a new plaintext key). Then neither
//! stdout nor stderr may contain a plaintext key, a key digest, the token,
//! the HMAC secret, a password or the admin token. Fingerprints may appear.

use self::base64_url as b64;
use portcullis_engine::credential::apikey::{generate, KeyDigest};
use sha2::{Digest, Sha256};

use crate::support::*;

const HMAC_SECRET: &str = "faults-hmac-secret-0123456789abcdef-XYZ";
const PASSWORD: &str = "alice-pw";
const WRONG_PASSWORD: &str = "alice-wrong-pw-5e1f";
const WRONG_ADMIN_TOKEN: &str = "wrong-admin-token-9f8e7d6c5b4a";

/// Base64: unpadded base64url for JWTs, padded standard for Basic.
mod base64_url {
    const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub fn encode(data: &[u8]) -> String {
        encode_with(data, URL)
    }

    pub fn encode_standard(data: &[u8]) -> String {
        let mut abc = *URL;
        abc[62] = b'+';
        abc[63] = b'/';
        let mut out = encode_with(data, &abc);
        while out.len() % 4 != 0 {
            out.push('=');
        }
        out
    }

    fn encode_with(data: &[u8], abc: &[u8; 64]) -> String {
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(abc[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let pad = |x: u8| k.iter().map(|b| b ^ x).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn hs256(claims: &serde_json::Value, secret: &str) -> String {
    let head = b64::encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = b64::encode(claims.to_string().as_bytes());
    let signing = format!("{head}.{body}");
    let sig = b64::encode(&hmac_sha256(secret.as_bytes(), signing.as_bytes()));
    format!("{signing}.{sig}")
}

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        b64::encode_standard(format!("{user}:{pw}").as_bytes())
    )
}

fn policy(htpasswd: &std::path::Path) -> String {
    format!(
        r#"{POLICY}  - name: jwt.area
    match: {{path: "/v1/jwt/**"}}
    require: shared_jwt
  - name: ops.area
    match: {{path: "/v1/ops/**"}}
    require: ops
"#
    )
    .replace(
        "rate_limits:",
        &format!(
            r#"  shared_jwt:
    type: jwt
    in: [bearer]
    algorithms: [HS256]
    keys: {{secret_env: FAULTS_HS_SECRET}}
  ops:
    type: basic
    htpasswd_file: {}
rate_limits:"#,
            htpasswd.display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_at_trace_level() {
    let fx = Fixture::new();
    let htpasswd = fx.path("ops.htpasswd");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../engine/tests/data/htpasswd/users.htpasswd"),
        &htpasswd,
    )
    .unwrap();
    write_atomic(&fx.policy, &policy(&htpasswd));
    let p = Portcullis::start_with(
        &fx,
        ServeOptions {
            args: vec!["--log-sample-deny".into(), "1.0".into()],
            admin_token: Some(ADMIN_TOKEN),
            env: vec![
                ("RUST_LOG".into(), "trace".into()),
                ("FAULTS_HS_SECRET".into(), HMAC_SECRET.into()),
            ],
            ..Default::default()
        },
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = hs256(
        &serde_json::json!({"sub": "svc-1", "exp": now + 600}),
        HMAC_SECRET,
    );
    let forged = hs256(
        &serde_json::json!({"sub": "svc-1", "exp": now + 600}),
        "not-the-secret-000000000000000000000",
    );
    let unknown_key = generate("pk_live_").unwrap();
    let mut secrets: Vec<String> = fx.all_keys().iter().map(|k| k.to_string()).collect();
    secrets.extend([
        unknown_key.clone(),
        token.clone(),
        forged.clone(),
        HMAC_SECRET.to_string(),
        PASSWORD.to_string(),
        WRONG_PASSWORD.to_string(),
        basic("alice", PASSWORD),
        ADMIN_TOKEN.to_string(),
        WRONG_ADMIN_TOKEN.to_string(),
    ]);

    let fwd = |uri: &'static str, cred: (&'static str, String)| {
        let addr = p.addr;
        async move {
            send(
                addr,
                "GET",
                "/v1/forward-auth",
                &[
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-host", "api.example.com"),
                    ("x-forwarded-uri", uri),
                    (cred.0, cred.1.as_str()),
                ],
                "",
            )
            .await
            .status
        }
    };
    let ask = |path: &'static str, cred: (&'static str, String)| {
        let addr = p.addr;
        async move {
            let q = serde_json::json!({"method": "GET", "path": path, "host": "api.example.com",
                "headers": {cred.0: cred.1}});
            decide(addr, &q).await.json()["status"].as_u64().unwrap()
        }
    };
    let bearer = |t: &str| ("authorization", format!("Bearer {t}"));
    let charge = "/v1/charges/ch_1";
    assert_eq!(fwd(charge, ("x-api-key", fx.keys.read.clone())).await, 200);
    assert_eq!(fwd(charge, ("x-api-key", unknown_key.clone())).await, 401);
    assert_eq!(fwd(charge, bearer(&fx.keys.read)).await, 200);
    assert_eq!(ask(charge, ("x-api-key", fx.keys.read.clone())).await, 200);
    assert_eq!(ask(charge, ("x-api-key", unknown_key.clone())).await, 401);
    assert_eq!(fwd("/v1/jwt/a", bearer(&token)).await, 200);
    assert_eq!(fwd("/v1/jwt/a", bearer(&forged)).await, 401);
    assert_eq!(ask("/v1/jwt/a", bearer(&token)).await, 200);
    assert_eq!(ask("/v1/jwt/a", bearer(&forged)).await, 401);
    assert_eq!(
        ask("/v1/ops/a", ("authorization", basic("alice", PASSWORD))).await,
        200
    );
    assert_eq!(
        fwd("/v1/ops/a", ("authorization", basic("alice", PASSWORD))).await,
        200
    );
    assert_eq!(
        fwd(
            "/v1/ops/a",
            ("authorization", basic("alice", WRONG_PASSWORD))
        )
        .await,
        401
    );
    assert_eq!(
        ask(
            "/v1/ops/a",
            ("authorization", basic("alice", WRONG_PASSWORD))
        )
        .await,
        401
    );

    let admin = p.admin.unwrap();
    let auth = |t: &str| format!("Bearer {t}");
    let r = send(
        admin,
        "POST",
        "/admin/v1/reload",
        &[("authorization", &auth(WRONG_ADMIN_TOKEN))],
        "",
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = send(
        admin,
        "POST",
        "/admin/v1/reload",
        &[("authorization", &auth(ADMIN_TOKEN))],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send(
        admin,
        "POST",
        "/admin/v1/keys",
        &[
            ("authorization", &auth(ADMIN_TOKEN)),
            ("content-type", "application/json"),
        ],
        r#"{"consumer":"logco","scopes":["charges:read"],"prefix":"pk_live_"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json()["key"].as_str().unwrap().to_string();
    assert_eq!(fwd(charge, ("x-api-key", created.clone())).await, 200);
    secrets.push(created);

    // Digests identify keys as well as the keys do offline: they stay out too.
    let digests: Vec<String> = fx
        .all_keys()
        .iter()
        .map(|k| KeyDigest::of(k).to_hex())
        .collect();
    secrets.extend(digests);

    p.wait_log("reload");
    let logs = format!("{}\n{}", p.logs(), p.stdout());
    assert!(
        logs.lines().count() > 20,
        "trace logging produced almost nothing:\n{logs}"
    );
    eprintln!(
        "secrets in logs: {} log lines checked for {} secrets",
        logs.lines().count(),
        secrets.len()
    );
    if std::env::var_os("FAULTS_DUMP_LOGS").is_some() {
        eprintln!("{logs}");
    }
    let leaked: Vec<&String> = secrets
        .iter()
        .filter(|s| logs.contains(s.as_str()))
        .collect();
    assert!(leaked.is_empty(), "secrets in the logs: {leaked:?}");
    crate::probe::assert_healthy(p.addr).await;
}
