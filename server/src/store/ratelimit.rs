//! Fleet-wide rate limits through Redis (`--redis URL`): the engine's GCRA,
//! run atomically in a Lua script on Redis's clock, so any number of
//! instances share one bucket per key.
//!
//! When Redis cannot answer, `on_error` chooses: `local` (default: this
//! instance's own GCRA, so the fleet allows at most N times the limit) or
//! `deny`. Either way the event is logged once per outage and counted
//! ([`RedisLimiter::fallbacks`]); after a failure Redis is retried at most
//! every `retry`, so an outage does not add a timeout to every decision.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use percent_encoding::percent_decode_str;
use portcullis_engine::ratelimit::{BucketKey, LimitSpec, Limiter, RateLimiter, RateResult};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::backend::{bounded, NetRuntime};
use super::config::redact;
use super::model::OpError;

/// GCRA in microseconds on Redis's clock. ARGV: emission interval (µs), burst.
/// Returns {allowed, remaining, reset_after_us, retry_after_us}.
/// Numbers are written with `%.0f`: Lua's default number formatting keeps
/// only 14 significant digits, too few for microsecond timestamps.
const GCRA: &str = r"
local t = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tau = t * burst
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now_us)
if tat < now_us then tat = now_us end
local new_tat = tat + t
local used = new_tat - now_us
if used > tau then
  return {0, 0, string.format('%.0f', tat - now_us), string.format('%.0f', used - tau)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', math.ceil(used / 1000) + 1))
return {1, string.format('%.0f', math.floor((tau - used) / t)), string.format('%.0f', used), '0'}
";

/// What to do when Redis cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Count locally (each instance enforces the limit on its own).
    Local,
    /// Refuse the request (429).
    Deny,
}

/// Parsed `--redis URL` options.
#[derive(Clone, PartialEq, Eq)]
pub struct LimiterConfig {
    pub url: String,
    pub prefix: String,
    pub on_error: OnError,
    pub timeout: Duration,
    pub retry: Duration,
}

impl std::fmt::Debug for LimiterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimiterConfig")
            .field("url", &redact(&self.url))
            .field("prefix", &self.prefix)
            .field("on_error", &self.on_error)
            .finish_non_exhaustive()
    }
}

impl LimiterConfig {
    /// `redis://HOST[:PORT][/DB]?prefix=...&on_error=local|deny&timeout=100ms&retry=1s`.
    pub fn parse(url: &str) -> Result<Self, String> {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(format!("--redis `{}`: use redis://HOST:PORT", redact(url)));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut c = LimiterConfig {
            url: base.to_string(),
            prefix: "portcullis:".into(),
            on_error: OnError::Local,
            timeout: Duration::from_millis(100),
            retry: Duration::from_secs(1),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode_str(raw).decode_utf8_lossy();
            let dur = |v: &str| {
                humantime::parse_duration(v)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        format!("--redis option `{k}`: `{v}` is not a positive duration")
                    })
            };
            match k {
                "prefix" => c.prefix = v.into_owned(),
                "on_error" => {
                    c.on_error = match &*v {
                        "local" => OnError::Local,
                        "deny" => OnError::Deny,
                        other => {
                            return Err(format!(
                                "--redis option `on_error`: `{other}` is not `local` or `deny`"
                            ))
                        }
                    }
                }
                "timeout" => c.timeout = dur(&v)?,
                "retry" => c.retry = dur(&v)?,
                other => return Err(format!("--redis: unknown option `{other}`")),
            }
        }
        Ok(c)
    }
}

pub struct RedisLimiter {
    rt: NetRuntime,
    conn: ConnectionManager,
    script: Script,
    config: LimiterConfig,
    local: RateLimiter,
    /// Milliseconds after `base` before which Redis is not tried again.
    down_until_ms: AtomicU64,
    down: AtomicBool,
    base: Instant,
    fallbacks: AtomicU64,
    counter: Option<prometheus_client::metrics::counter::Counter>,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn bucket_key(prefix: &str, spec: &LimitSpec, key: &BucketKey) -> String {
    // The definition's own fields, not the process-local hash: instances of
    // different builds must agree on the bucket.
    let k = match key {
        BucketKey::Text(t) => format!("t:{t}"),
        BucketKey::Ip(ip) => format!("i:{ip}"),
        BucketKey::UnknownIp => "u".to_string(),
    };
    format!(
        "{prefix}rl:{}:{}:{}:{}:{k}",
        spec.name,
        spec.limit,
        spec.per.as_micros(),
        spec.burst
    )
}

impl RedisLimiter {
    pub fn open(url: &str) -> Result<Self, OpError> {
        let config = LimiterConfig::parse(url).map_err(OpError::Invalid)?;
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| OpError::Invalid(format!("redis url: {e}")))?;
        let rt = NetRuntime::new("portcullis-ratelimit")?;
        let mgr_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout.max(Duration::from_millis(500))))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let timeout = config.timeout.max(Duration::from_secs(1));
        let conn = rt.block(bounded(timeout, "redis connect", async move {
            client.get_connection_manager_with_config(mgr_config).await
        }))?;
        let script = Script::new(GCRA);
        // Load once up front; later calls use EVALSHA (falling back to EVAL).
        let mut c = conn.clone();
        let load = script.prepare_invoke();
        rt.block(bounded(timeout, "redis script load", async move {
            load.load_async(&mut c).await
        }))?;
        tracing::info!(redis = %redact(&config.url), on_error = ?config.on_error, "rate limits shared through redis");
        Ok(Self {
            rt,
            conn,
            script,
            config,
            local: RateLimiter::new(),
            down_until_ms: AtomicU64::new(0),
            down: AtomicBool::new(false),
            base: Instant::now(),
            fallbacks: AtomicU64::new(0),
            counter: None,
        })
    }

    /// Also counts fallbacks in this metric (`portcullis_ratelimit_fallbacks_total`).
    pub fn with_fallback_counter(
        mut self,
        c: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        self.counter = Some(c);
        self
    }

    /// Decisions answered without Redis (by the local limiter or by denying).
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    pub fn on_error(&self) -> OnError {
        self.config.on_error
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn remote(&self, spec: &LimitSpec, key: &BucketKey) -> Result<RateResult, OpError> {
        let per_us = u64::try_from(spec.per.as_micros()).unwrap_or(u64::MAX);
        let t = (per_us / spec.limit.max(1)).max(1);
        let burst = spec.burst.max(1);
        let mut inv = self.script.key(bucket_key(&self.config.prefix, spec, key));
        inv.arg(t).arg(burst);
        let mut c = self.conn.clone();
        let (allowed, remaining, reset_us, retry_us): (i64, u64, u64, u64) = self.rt.block(
            bounded(self.config.timeout, "redis rate limit", async move {
                inv.invoke_async(&mut c).await
            }),
        )?;
        Ok(RateResult {
            allowed: allowed == 1,
            limit: burst,
            remaining,
            reset_after: Duration::from_micros(reset_us),
            retry_after: Duration::from_micros(retry_us),
        })
    }

    fn fallback(&self, spec: &LimitSpec, spec_id: u64, key: &BucketKey) -> RateResult {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = &self.counter {
            c.inc();
        }
        match self.config.on_error {
            OnError::Local => self.local.check(spec, spec_id, key),
            OnError::Deny => RateResult {
                allowed: false,
                limit: spec.burst.max(1),
                remaining: 0,
                reset_after: spec.per,
                retry_after: spec.per,
            },
        }
    }
}

impl Limiter for RedisLimiter {
    fn check(&self, spec: &LimitSpec, spec_id: u64, key: &BucketKey) -> RateResult {
        if self.down.load(Ordering::Relaxed)
            && self.now_ms() < self.down_until_ms.load(Ordering::Relaxed)
        {
            return self.fallback(spec, spec_id, key);
        }
        match self.remote(spec, key) {
            Ok(r) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("redis rate limits back");
                }
                r
            }
            Err(e) => {
                let retry_ms = u64::try_from(self.config.retry.as_millis()).unwrap_or(u64::MAX);
                self.down_until_ms
                    .store(self.now_ms().saturating_add(retry_ms), Ordering::Relaxed);
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, on_error = ?self.config.on_error, "redis rate limits unavailable; falling back");
                }
                self.fallback(spec, spec_id, key)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let c =
            LimiterConfig::parse("redis://h:6379/0?prefix=t:&on_error=deny&timeout=50ms").unwrap();
        assert_eq!(c.url, "redis://h:6379/0");
        assert_eq!(c.prefix, "t:");
        assert_eq!(c.on_error, OnError::Deny);
        assert_eq!(c.timeout, Duration::from_millis(50));
        assert!(LimiterConfig::parse("redis://h?on_error=maybe").is_err());
        assert!(LimiterConfig::parse("redis://h?x=1").is_err());
        assert!(LimiterConfig::parse("http://h").is_err());
        assert!(!format!("{:?}", LimiterConfig::parse("redis://:pw@h").unwrap()).contains("pw"));
    }

    #[test]
    fn bucket_keys_are_stable_and_distinct() {
        let s = LimitSpec {
            name: "p".into(),
            limit: 10,
            per: Duration::from_secs(1),
            burst: 20,
        };
        assert_eq!(
            bucket_key("x:", &s, &BucketKey::Text("acme".into())),
            "x:rl:p:10:1000000:20:t:acme"
        );
        assert_ne!(
            bucket_key("x:", &s, &BucketKey::UnknownIp),
            bucket_key("x:", &s, &BucketKey::Ip("127.0.0.1".parse().unwrap()))
        );
    }
}
