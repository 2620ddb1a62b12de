//! The credentials a run presents and the prebuilt requests that carry
//! them: keys created through the admin API, tokens signed per run, and a
//! shuffled request set in the workload's valid / invalid / missing mix.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::http::{self, Conn, Response};
use super::mechanism::{KEY_HEADER, KEY_PREFIX, SCOPE};
use super::workload::{Endpoint, Mix};

/// A credential as presented on the wire.
#[derive(Clone)]
pub enum Cred {
    ApiKey(String),
    Bearer(String),
    Nothing,
}

impl std::fmt::Debug for Cred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach Debug output: fingerprints only.
        match self {
            Cred::ApiKey(k) => write!(f, "ApiKey({})", fingerprint(k)),
            Cred::Bearer(t) => write!(f, "Bearer({})", fingerprint(t)),
            Cred::Nothing => write!(f, "Nothing"),
        }
    }
}

fn fingerprint(s: &str) -> String {
    portcullis_engine::credential::apikey::fingerprint(s)
}

/// What a request carries, and so what the server must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Valid,
    Invalid,
    Missing,
}

impl Kind {
    pub fn expect_allow(self) -> bool {
        self == Kind::Valid
    }
}

/// One ready-to-send request.
pub struct Prepared {
    pub bytes: Vec<u8>,
    pub kind: Kind,
}

/// The request asking about `cred` on the bench route, for `endpoint`.
pub fn question(endpoint: Endpoint, cred: &Cred, item: usize) -> Vec<u8> {
    let path = format!("/v1/items/it_{item}");
    let (name, value) = match cred {
        Cred::ApiKey(k) => (KEY_HEADER, k.clone()),
        Cred::Bearer(t) => ("authorization", format!("Bearer {t}")),
        Cred::Nothing => ("", String::new()),
    };
    match endpoint {
        Endpoint::Decide => {
            let mut headers = serde_json::Map::new();
            if !name.is_empty() {
                headers.insert(name.into(), serde_json::Value::String(value));
            }
            let body = serde_json::json!({
                "method": "GET", "path": path, "host": "api.bench.example",
                "headers": headers, "source_ip": "203.0.113.9",
            })
            .to_string();
            http::request(
                "POST",
                "/v1/decide",
                &[("content-type", "application/json")],
                body.as_bytes(),
            )
        }
        Endpoint::ForwardAuth => {
            let mut headers = vec![
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", path.as_str()),
                ("x-forwarded-host", "api.bench.example"),
                ("x-forwarded-for", "203.0.113.9"),
            ];
            if !name.is_empty() {
                headers.push((name, value.as_str()));
            }
            http::request("GET", "/v1/forward-auth", &headers, b"")
        }
    }
}

/// Whether a response allowed (`Some(true)`), denied (`Some(false)`), or
/// was not a decision at all (`None`: 400, 5xx, unreadable).
pub fn verdict(endpoint: Endpoint, r: &Response) -> Option<bool> {
    match endpoint {
        Endpoint::Decide => {
            if r.status != 200 {
                return None;
            }
            #[derive(Deserialize)]
            struct D {
                allow: bool,
                status: u16,
            }
            let d: D = serde_json::from_slice(&r.body).ok()?;
            // A store outage is a deny, but not the answer being measured.
            (d.status != 503).then_some(d.allow)
        }
        Endpoint::ForwardAuth => match r.status {
            200 => Some(true),
            401 | 403 => Some(false),
            _ => None,
        },
    }
}

/// `n` requests in the workload's mix, shuffled (seeded: the same mix
/// every run). Valid and invalid requests cycle through their pools.
pub fn request_set(
    endpoint: Endpoint,
    valid: &[Cred],
    invalid: &[Cred],
    mix: Mix,
    n: usize,
    seed: u64,
) -> Vec<Prepared> {
    let n = n.max(1);
    let n_valid = if valid.is_empty() {
        0
    } else {
        (n as f64 * mix.valid).round() as usize
    };
    let n_invalid = if invalid.is_empty() {
        0
    } else {
        ((n as f64 * mix.invalid).round() as usize).min(n - n_valid.min(n))
    };
    let n_missing = n.saturating_sub(n_valid + n_invalid);
    let mut out = Vec::with_capacity(n);
    for (i, cred) in valid.iter().cycle().take(n_valid).enumerate() {
        out.push(Prepared {
            bytes: question(endpoint, cred, i),
            kind: Kind::Valid,
        });
    }
    for (i, cred) in invalid.iter().cycle().take(n_invalid).enumerate() {
        out.push(Prepared {
            bytes: question(endpoint, cred, i),
            kind: Kind::Invalid,
        });
    }
    for i in 0..n_missing {
        out.push(Prepared {
            bytes: question(endpoint, &Cred::Nothing, i),
            kind: Kind::Missing,
        });
    }
    fastrand::Rng::with_seed(seed).shuffle(&mut out);
    out
}

/// A key created through the admin API.
#[derive(Clone)]
pub struct CreatedKey {
    pub id: String,
    pub key: String,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CreatedKey({}, {})", self.id, fingerprint(&self.key))
    }
}

/// Creates one key (`POST /admin/v1/keys`) on an open admin connection.
pub async fn create_key(
    conn: &mut Conn,
    token: &str,
    consumer: &str,
) -> Result<CreatedKey, String> {
    let body = serde_json::json!({"consumer": consumer, "scopes": [SCOPE], "prefix": KEY_PREFIX});
    let r = conn
        .send(&http::json_request(
            "POST",
            "/admin/v1/keys",
            Some(token),
            Some(&body),
        ))
        .await
        .map_err(|e| format!("create key: {e}"))?;
    if r.status != 201 && r.status != 200 {
        return Err(format!(
            "create key: admin API answered {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
                .chars()
                .take(200)
                .collect::<String>()
        ));
    }
    let v = r.json();
    match (
        v.get("id").and_then(|x| x.as_str()),
        v.get("key").and_then(|x| x.as_str()),
    ) {
        (Some(id), Some(key)) => Ok(CreatedKey {
            id: id.to_string(),
            key: key.to_string(),
        }),
        _ => Err("create key: the answer has no `id` and `key`".into()),
    }
}

/// Creates `n` keys over `parallel` admin connections, calling `tick`
/// after each.
pub async fn create_keys(
    admin: SocketAddr,
    token: &str,
    n: usize,
    parallel: usize,
    tick: &(dyn Fn() + Sync),
) -> Result<Vec<CreatedKey>, String> {
    let parallel = parallel.clamp(1, 64);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = (0..parallel).map(|_| async {
        let mut conn = Conn::new(admin);
        let mut mine = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= n {
                return Ok::<_, String>(mine);
            }
            mine.push(create_key(&mut conn, token, &format!("partner-{}", i % 100)).await?);
            tick();
        }
    });
    let mut all = Vec::with_capacity(n);
    for r in futures::future::join_all(work).await {
        all.extend(r?);
    }
    Ok(all)
}

/// `n` well-formed keys (valid checksum) that no store holds.
pub fn unknown_keys(n: usize) -> Vec<Cred> {
    (0..n)
        .filter_map(|_| portcullis_engine::credential::apikey::generate(KEY_PREFIX).ok())
        .map(Cred::ApiKey)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(v: f64, i: f64, m: f64) -> Mix {
        Mix {
            valid: v,
            invalid: i,
            missing: m,
        }
    }

    #[test]
    fn the_mix_is_exact_and_shuffled() {
        let valid = vec![
            Cred::ApiKey("pk_live_a".into()),
            Cred::ApiKey("pk_live_b".into()),
        ];
        let invalid = unknown_keys(3);
        let set = request_set(
            Endpoint::Decide,
            &valid,
            &invalid,
            mix(0.7, 0.2, 0.1),
            1000,
            7,
        );
        assert_eq!(set.len(), 1000);
        let count = |k| set.iter().filter(|p| p.kind == k).count();
        assert_eq!(count(Kind::Valid), 700);
        assert_eq!(count(Kind::Invalid), 200);
        assert_eq!(count(Kind::Missing), 100);
        // Shuffled: the first hundred are not all valid.
        assert!(set.iter().take(100).any(|p| p.kind != Kind::Valid));
        let same = request_set(
            Endpoint::Decide,
            &valid,
            &invalid,
            mix(0.7, 0.2, 0.1),
            1000,
            7,
        );
        assert!(set.iter().zip(&same).all(|(a, b)| a.kind == b.kind));
    }

    #[test]
    fn questions_carry_the_credential() {
        let q = question(Endpoint::Decide, &Cred::ApiKey("pk_live_x".into()), 3);
        let s = String::from_utf8(q).unwrap();
        let body: serde_json::Value =
            serde_json::from_str(s.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["headers"]["x-api-key"], "pk_live_x");
        assert_eq!(body["path"], "/v1/items/it_3");
        let q = question(Endpoint::ForwardAuth, &Cred::Bearer("t.o.k".into()), 1);
        let s = String::from_utf8(q).unwrap();
        assert!(s.starts_with("GET /v1/forward-auth HTTP/1.1\r\n"));
        assert!(s.contains("authorization: Bearer t.o.k\r\n"));
        assert!(s.contains("x-forwarded-uri: /v1/items/it_1\r\n"));
        let q = question(Endpoint::Decide, &Cred::Nothing, 1);
        assert!(String::from_utf8(q).unwrap().contains("\"headers\":{}"));
    }

    #[test]
    fn verdicts() {
        let r = |status, body: &str| Response {
            status,
            body: body.as_bytes().to_vec(),
        };
        let d = Endpoint::Decide;
        assert_eq!(
            verdict(d, &r(200, r#"{"allow":true,"status":200}"#)),
            Some(true)
        );
        assert_eq!(
            verdict(d, &r(200, r#"{"allow":false,"status":401}"#)),
            Some(false)
        );
        assert_eq!(verdict(d, &r(200, r#"{"allow":false,"status":503}"#)), None);
        assert_eq!(verdict(d, &r(400, r#"{"error":"x"}"#)), None);
        let f = Endpoint::ForwardAuth;
        assert_eq!(verdict(f, &r(200, "")), Some(true));
        assert_eq!(verdict(f, &r(403, "")), Some(false));
        assert_eq!(verdict(f, &r(503, "")), None);
    }

    #[test]
    fn debug_hides_credentials() {
        let k = portcullis_engine::credential::apikey::generate(KEY_PREFIX).unwrap();
        let d = format!("{:?}", Cred::ApiKey(k.clone()));
        assert!(!d.contains(&k));
        let d = format!(
            "{:?}",
            CreatedKey {
                id: "key_1".into(),
                key: k.clone()
            }
        );
        assert!(!d.contains(&k));
    }
}
