//! Revocation lag: from the moment the revoke call returns until every
//! instance denies the key. Each revoked key is created for the purpose,
//! seen allowed by every instance first (which also fills any lookup
//! cache: the worst case), then revoked through the admin API.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::http::{self, Conn};
use super::population::{create_key, question, verdict, Cred};
use super::workload::Endpoint;

/// One revocation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revocation {
    /// Seconds from the revoke call returning until the last instance
    /// denied; `None` when some instance still allowed at the timeout.
    pub lag_s: Option<f64>,
    /// The same per instance.
    pub per_instance_s: Vec<Option<f64>>,
    /// Seconds from the create call returning until every instance allowed
    /// the new key.
    pub visible_s: Option<f64>,
}

/// The poll interval while waiting: fine at first, coarser later, so the
/// precision stays near 1% of the lag without flooding the server.
fn poll_interval(waited: Duration) -> Duration {
    (waited / 100).clamp(Duration::from_millis(1), Duration::from_millis(20))
}

/// Asks `conn` about `req` until the verdict is `want` or `timeout` passes;
/// returns the time waited.
async fn wait_for(
    conn: &mut Conn,
    endpoint: Endpoint,
    req: &[u8],
    want: bool,
    since: Instant,
    timeout: Duration,
) -> Option<Duration> {
    loop {
        if let Ok(r) = conn.send_within(req, Duration::from_secs(5)).await {
            if verdict(endpoint, &r) == Some(want) {
                return Some(since.elapsed());
            }
        }
        let waited = since.elapsed();
        if waited >= timeout {
            return None;
        }
        tokio::time::sleep(poll_interval(waited)).await;
    }
}

/// Creates a key, waits until every instance allows it, revokes it, and
/// measures until every instance denies it.
pub async fn revoke_one(
    admin: SocketAddr,
    token: &str,
    instances: &[SocketAddr],
    endpoint: Endpoint,
    timeout: Duration,
) -> Result<Revocation, String> {
    let mut admin_conn = Conn::new(admin);
    let key = create_key(&mut admin_conn, token, "revoked-partner").await?;
    let created = Instant::now();
    let req = question(endpoint, &Cred::ApiKey(key.key.clone()), 0);
    let mut conns: Vec<Conn> = instances.iter().map(|a| Conn::new(*a)).collect();
    let seen = futures::future::join_all(
        conns
            .iter_mut()
            .map(|c| wait_for(c, endpoint, &req, true, created, timeout)),
    )
    .await;
    let visible_s = seen
        .iter()
        .try_fold(0.0f64, |m, s| s.map(|d| m.max(d.as_secs_f64())));
    if visible_s.is_none() {
        return Err(format!(
            "a new key was not allowed by every instance within {}",
            humantime::format_duration(timeout)
        ));
    }
    let path = format!("/admin/v1/keys/{}/revoke", key.id);
    let r = admin_conn
        .send(&http::json_request("POST", &path, Some(token), None))
        .await
        .map_err(|e| format!("revoke: {e}"))?;
    if r.status != 200 {
        return Err(format!("revoke: admin API answered {}", r.status));
    }
    let revoked = Instant::now();
    let lags = futures::future::join_all(
        conns
            .iter_mut()
            .map(|c| wait_for(c, endpoint, &req, false, revoked, timeout)),
    )
    .await;
    let per_instance_s: Vec<Option<f64>> =
        lags.iter().map(|l| l.map(|d| d.as_secs_f64())).collect();
    let lag_s = per_instance_s
        .iter()
        .try_fold(0.0f64, |m, l| l.map(|v| m.max(v)));
    Ok(Revocation {
        lag_s,
        per_instance_s,
        visible_s,
    })
}

/// `n` revocations, started `spacing` apart and measured concurrently.
pub async fn revoke_many(
    admin: SocketAddr,
    token: &str,
    instances: &[SocketAddr],
    endpoint: Endpoint,
    timeout: Duration,
    n: usize,
    spacing: Duration,
) -> Vec<Result<Revocation, String>> {
    futures::future::join_all((0..n).map(|i| async move {
        tokio::time::sleep(spacing * i as u32).await;
        revoke_one(admin, token, instances, endpoint, timeout).await
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_is_fine_then_coarse() {
        assert_eq!(poll_interval(Duration::ZERO), Duration::from_millis(1));
        assert_eq!(
            poll_interval(Duration::from_millis(500)),
            Duration::from_millis(5)
        );
        assert_eq!(
            poll_interval(Duration::from_secs(60)),
            Duration::from_millis(20)
        );
    }
}
