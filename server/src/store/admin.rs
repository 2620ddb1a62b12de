//! The admin API's key endpoints, independent of the HTTP plumbing: the
//! admin router authenticates, reads the body, and hands over method,
//! path, query and body; the answer is a status and a JSON body.
//!
//! - `POST /admin/v1/keys` → 201 with the key (shown once)
//! - `GET /admin/v1/keys[?consumer=&after=&limit=]` → `{"keys": [...]}`
//! - `GET /admin/v1/keys/{id}` → the record (fingerprints only)
//! - `POST /admin/v1/keys/{id}/revoke` → the record, revoked now
//! - `POST /admin/v1/keys/{id}/rotate` `{"overlap": "24h"}` → 200 with the new key

use std::collections::BTreeMap;
use std::sync::Arc;

use ipnet::IpNet;
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::{json, Value};

use super::model::{now_unix, parse_rate, parse_time, secs};
use super::{NewKey, OpError, Store};

/// Where the key endpoints live.
pub const PREFIX: &str = "/admin/v1/keys";

/// An answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

fn error(status: u16, message: impl Into<String>) -> Reply {
    Reply {
        status,
        body: json!({ "error": message.into() }),
    }
}

fn from_op(e: &OpError) -> Reply {
    let status = match e {
        OpError::Invalid(_) => 400,
        OpError::NotFound(_) => 404,
        OpError::Conflict(_) => 409,
        OpError::Unavailable(_) => 503,
        _ => 500,
    };
    error(status, e.to_string())
}

/// A time as JSON: RFC 3339 string or unix seconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum When {
    Unix(i64),
    Text(String),
}

impl When {
    fn unix(&self) -> Result<i64, String> {
        match self {
            When::Unix(n) => Ok(*n),
            When::Text(s) => parse_time(s),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    consumer: String,
    #[serde(default)]
    scopes: Vec<String>,
    prefix: String,
    expires_in: Option<String>,
    expires_at: Option<When>,
    not_before: Option<When>,
    #[serde(default)]
    cidrs: Vec<IpNet>,
    rate_limit: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    overlap: Option<String>,
    prefix: Option<String>,
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| error(400, format!("bad request body: {e}")))
}

fn create_request(b: CreateBody) -> Result<NewKey, String> {
    let expires_at = match (&b.expires_in, &b.expires_at) {
        (Some(_), Some(_)) => return Err("give expires_in or expires_at, not both".into()),
        (Some(d), None) => {
            let d = humantime::parse_duration(d).map_err(|e| format!("expires_in `{d}`: {e}"))?;
            Some(now_unix().saturating_add(secs(d)))
        }
        (None, Some(t)) => Some(t.unix()?),
        (None, None) => None,
    };
    Ok(NewKey {
        consumer: b.consumer,
        scopes: b.scopes,
        prefix: b.prefix,
        expires_at,
        not_before: b.not_before.map(|t| t.unix()).transpose()?,
        allowed_cidrs: b.cidrs,
        metadata: b.metadata,
        rate_limit: b.rate_limit.as_deref().map(parse_rate).transpose()?,
    })
}

fn query_params(q: Option<&str>) -> BTreeMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode_str(k).decode_utf8_lossy().into_owned(),
                percent_decode_str(v).decode_utf8_lossy().into_owned(),
            )
        })
        .collect()
}

/// Runs a blocking store call off the async workers.
async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> Result<T, OpError> + Send + 'static,
) -> Result<T, Reply> {
    let s = Arc::clone(store);
    match tokio::task::spawn_blocking(move || f(&s)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(from_op(&e)),
        Err(_) => Err(error(500, "key operation failed")),
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Answers one request under [`PREFIX`] (already authenticated).
pub async fn handle(
    store: &Arc<Store>,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Reply {
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return error(404, "not found");
    };
    let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let result = match (method, parts.as_slice()) {
        ("POST", []) => {
            let req = match parse_body::<CreateBody>(body)
                .and_then(|b| create_request(b).map_err(|e| error(400, e)))
            {
                Ok(r) => r,
                Err(r) => return r,
            };
            blocking(store, move |s| s.create(req))
                .await
                .map(|i| Reply {
                    status: 201,
                    body: to_value(&i),
                })
        }
        ("GET", []) => {
            let q = query_params(query);
            let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
                None => 100,
                Some(Ok(n)) if (1..=10_000).contains(&n) => n,
                Some(_) => return error(400, "limit must be 1 to 10000"),
            };
            let consumer = q.get("consumer").cloned();
            let after = q.get("after").cloned();
            blocking(store, move |s| {
                s.list(consumer.as_deref(), after.as_deref(), limit)
            })
            .await
            .map(|keys| {
                let next = (keys.len() == limit)
                    .then(|| keys.last().map(|k| k.id.clone()))
                    .flatten();
                Reply {
                    status: 200,
                    body: json!({ "keys": keys, "next_after": next }),
                }
            })
        }
        ("GET", [id]) => {
            let id = (*id).to_string();
            blocking(store, move |s| s.show(&id)).await.map(|k| Reply {
                status: 200,
                body: to_value(&k),
            })
        }
        ("POST", [id, "revoke"]) => {
            let id = (*id).to_string();
            blocking(store, move |s| s.revoke(&id))
                .await
                .map(|k| Reply {
                    status: 200,
                    body: to_value(&k),
                })
        }
        ("POST", [id, "rotate"]) => {
            let b: RotateBody = if body.iter().all(u8::is_ascii_whitespace) {
                RotateBody::default()
            } else {
                match parse_body(body) {
                    Ok(b) => b,
                    Err(r) => return r,
                }
            };
            let overlap = match b.overlap.as_deref().map(humantime::parse_duration) {
                None => std::time::Duration::from_secs(86_400),
                Some(Ok(d)) => d,
                Some(Err(e)) => return error(400, format!("overlap: {e}")),
            };
            let id = (*id).to_string();
            blocking(store, move |s| s.rotate(&id, b.prefix.as_deref(), overlap))
                .await
                .map(|i| Reply {
                    status: 200,
                    body: to_value(&i),
                })
        }
        (_, [] | [_] | [_, "revoke" | "rotate"]) => Err(error(405, "method not allowed")),
        _ => Err(error(404, "not found")),
    };
    result.unwrap_or_else(|r| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn endpoints() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::open(&format!("sqlite://{}", dir.path().join("k.db").display())).unwrap();
        let r = handle(&store, "POST", PREFIX, None,
            br#"{"consumer":"acme","scopes":["charges:read"],"prefix":"pk_live_","expires_in":"90d","cidrs":["10.0.0.0/8"],"rate_limit":"10/1s","metadata":{"a":"b"}}"#).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let key = r.body["key"].as_str().unwrap().to_string();
        let id = r.body["id"].as_str().unwrap().to_string();
        assert!(key.starts_with("pk_live_"));
        assert!(r.body["expires_at"].is_string());

        let list = handle(&store, "GET", PREFIX, Some("consumer=acme"), b"").await;
        assert_eq!(list.status, 200);
        assert_eq!(list.body["keys"].as_array().unwrap().len(), 1);
        assert!(!list.body.to_string().contains(&key));

        let show = handle(&store, "GET", &format!("{PREFIX}/{id}"), None, b"").await;
        assert_eq!(show.status, 200);
        assert_eq!(show.body["status"], "active");
        assert!(!show.body.to_string().contains(&key));

        let rot = handle(
            &store,
            "POST",
            &format!("{PREFIX}/{id}/rotate"),
            None,
            br#"{"overlap":"1h"}"#,
        )
        .await;
        assert_eq!(rot.status, 200, "{:?}", rot.body);
        assert_ne!(rot.body["key"], key.as_str());
        assert!(rot.body["previous_keys_expire_at"].is_string());

        let rev = handle(&store, "POST", &format!("{PREFIX}/{id}/revoke"), None, b"").await;
        assert_eq!(rev.status, 200);
        assert_eq!(rev.body["status"], "revoked");
        let again = handle(&store, "POST", &format!("{PREFIX}/{id}/rotate"), None, b"").await;
        assert_eq!(again.status, 409);

        assert_eq!(
            handle(&store, "GET", &format!("{PREFIX}/key_nope"), None, b"")
                .await
                .status,
            404
        );
        assert_eq!(
            handle(&store, "DELETE", &format!("{PREFIX}/{id}"), None, b"")
                .await
                .status,
            405
        );
        assert_eq!(handle(&store, "POST", PREFIX, None, b"{").await.status, 400);
        assert_eq!(
            handle(
                &store,
                "POST",
                PREFIX,
                None,
                br#"{"consumer":"a","prefix":"p_","bogus":1}"#
            )
            .await
            .status,
            400
        );
        assert_eq!(
            handle(
                &store,
                "POST",
                PREFIX,
                None,
                br#"{"consumer":"a","prefix":"p p"}"#
            )
            .await
            .status,
            400
        );
        assert_eq!(
            handle(&store, "GET", PREFIX, Some("limit=0"), b"")
                .await
                .status,
            400
        );
        assert_eq!(
            handle(
                &store,
                "POST",
                &format!("{PREFIX}/{id}/rotate"),
                None,
                br#"{"overlap":"soon"}"#
            )
            .await
            .status,
            400
        );
    }
}
