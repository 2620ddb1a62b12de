//! The shared backend on Redis. Layout under a prefix `P` (default
//! `portcullis:`; tests isolate by prefix):
//!
//! - `P k:{digest}`: hash per key version (`id`, `prefix`, `fp`, `created`, `exp`)
//! - `P r:{id}`: hash per record; `P r:{id}:k`: set of its digests
//! - `P ids`: sorted set of record ids (score 0: ordered by id, for listing)
//! - `P consumers`: set; `P jtis`: sorted set of denied token ids by end time
//! - channel `P changes`: `k:{id}` or `j:{jti}` on every change
//!
//! Multi-key changes run as Lua scripts (atomic, one round trip; EVALSHA
//! with EVAL fallback by the `redis` crate's `Script`), and publish inside
//! the script, so a subscriber hears a change only once it is complete.
//! Scripts name keys they build from the prefix: single Redis (or one
//! cluster slot via a `{hash tag}` prefix), not a cluster spread.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use portcullis_engine::credential::apikey::{KeyDigest, KeyEntry};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};

use super::backend::{bounded, Backend, FeedEvent, FeedGuard, NetRuntime};
use super::codec::{assemble, RecordRow, VersionCols};
use super::config::StoreConfig;
use super::model::{OpError, StoredRecord, VersionRow};
use super::postgres::AbortOnDrop;

const SCHEMA_VERSION: i64 = 1;

const LOOKUP: &str = r"
local v = redis.call('HGETALL', KEYS[1])
if #v == 0 then return false end
local id = redis.call('HGET', KEYS[1], 'id')
return {v, redis.call('HGETALL', ARGV[1] .. 'r:' .. id)}
";

/// ARGV: prefix, id...; per id `false` or `{record, {digest, version}...}`.
const LOAD: &str = r"
local out = {}
for i = 2, #ARGV do
  local rk = ARGV[1] .. 'r:' .. ARGV[i]
  local r = redis.call('HGETALL', rk)
  if #r == 0 then
    out[#out + 1] = false
  else
    local one = {r}
    for _, d in ipairs(redis.call('SMEMBERS', rk .. ':k')) do
      one[#one + 1] = {d, redis.call('HGETALL', ARGV[1] .. 'k:' .. d)}
    end
    out[#out + 1] = one
  end
end
return out
";

/// ARGV: prefix, id, at, channel. 0: no such record.
const REVOKE: &str = r"
local rk = ARGV[1] .. 'r:' .. ARGV[2]
if redis.call('EXISTS', rk) == 0 then return 0 end
local cur = redis.call('HGET', rk, 'revoked_at')
if cur == false or cur == '' then
  redis.call('HSET', rk, 'revoked_at', ARGV[3])
  redis.call('HINCRBY', rk, 'rev', 1)
  redis.call('PUBLISH', ARGV[4], 'k:' .. ARGV[2])
end
return 1
";

/// ARGV: prefix, id, old_until, channel, digest, key prefix, fingerprint, created.
/// 0: no such record; -1: revoked.
const ROTATE: &str = r"
local rk = ARGV[1] .. 'r:' .. ARGV[2]
if redis.call('EXISTS', rk) == 0 then return 0 end
local rv = redis.call('HGET', rk, 'revoked_at')
if rv ~= false and rv ~= '' then return -1 end
local lim = tonumber(ARGV[3])
for _, d in ipairs(redis.call('SMEMBERS', rk .. ':k')) do
  local kk = ARGV[1] .. 'k:' .. d
  local e = redis.call('HGET', kk, 'exp')
  if e == false or e == '' or tonumber(e) > lim then
    redis.call('HSET', kk, 'exp', ARGV[3])
  end
end
redis.call('HSET', ARGV[1] .. 'k:' .. ARGV[5], 'id', ARGV[2], 'prefix', ARGV[6], 'fp', ARGV[7], 'created', ARGV[8], 'exp', '')
redis.call('SADD', rk .. ':k', ARGV[5])
redis.call('HINCRBY', rk, 'rev', 1)
redis.call('PUBLISH', ARGV[4], 'k:' .. ARGV[2])
return 1
";

/// ARGV: prefix, jti, until, channel. Keeps the later end time.
const DENY: &str = r"
local z = ARGV[1] .. 'jtis'
local cur = redis.call('ZSCORE', z, ARGV[2])
if cur == false or tonumber(cur) < tonumber(ARGV[3]) then
  redis.call('ZADD', z, ARGV[3], ARGV[2])
end
redis.call('PUBLISH', ARGV[4], 'j:' .. ARGV[2])
return 1
";

struct Scripts {
    lookup: Script,
    load: Script,
    revoke: Script,
    rotate: Script,
    deny: Script,
}

pub struct RedisBackend {
    rt: NetRuntime,
    client: redis::Client,
    conn: ConnectionManager,
    prefix: Arc<str>,
    channel: Arc<str>,
    scripts: Arc<Scripts>,
    timeout: Duration,
    heartbeat: Duration,
}

fn corrupt(what: &str) -> OpError {
    OpError::Corrupt(format!("redis: unexpected {what}"))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn items(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        _ => None,
    }
}

/// A flat `field, value, ...` reply as a map.
fn hash(v: &Value) -> Result<HashMap<String, String>, OpError> {
    let a = items(v).ok_or_else(|| corrupt("hash reply"))?;
    let mut m = HashMap::with_capacity(a.len() / 2);
    for pair in a.chunks(2) {
        if let [k, v] = pair {
            m.insert(
                text(k).ok_or_else(|| corrupt("field"))?,
                text(v).ok_or_else(|| corrupt("value"))?,
            );
        }
    }
    Ok(m)
}

fn opt_int(m: &HashMap<String, String>, k: &str) -> Result<Option<i64>, OpError> {
    match m.get(k).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| corrupt(k)),
    }
}

fn int(m: &HashMap<String, String>, k: &str) -> Result<i64, OpError> {
    opt_int(m, k)?.ok_or_else(|| corrupt(k))
}

fn field(m: &HashMap<String, String>, k: &str) -> Result<String, OpError> {
    m.get(k).cloned().ok_or_else(|| corrupt(k))
}

fn record_row(id: &str, m: &HashMap<String, String>) -> Result<RecordRow, OpError> {
    Ok(RecordRow {
        id: id.to_string(),
        consumer: field(m, "consumer")?,
        scopes: field(m, "scopes")?,
        created_at: int(m, "created_at")?,
        expires_at: opt_int(m, "expires_at")?,
        not_before: opt_int(m, "not_before")?,
        revoked_at: opt_int(m, "revoked_at")?,
        allowed_cidrs: field(m, "allowed_cidrs")?,
        metadata: field(m, "metadata")?,
        rate_limit: m.get("rate_limit").filter(|s| !s.is_empty()).cloned(),
        rev: int(m, "rev")?,
    })
}

fn version_cols(
    record_id: &str,
    digest: &str,
    m: &HashMap<String, String>,
) -> Result<VersionCols, OpError> {
    Ok(VersionCols {
        record_id: record_id.to_string(),
        digest: digest.to_string(),
        prefix: field(m, "prefix")?,
        fingerprint: field(m, "fp")?,
        created_at: int(m, "created")?,
        expires_at: opt_int(m, "exp")?,
    })
}

fn opt_text(v: Option<i64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_default()
}

/// One entry of the `LOAD` reply.
fn decode_loaded(id: &str, v: &Value) -> Result<Option<(RecordRow, Vec<VersionCols>)>, OpError> {
    let Some(parts) = items(v) else {
        return Ok(None);
    };
    let (first, rest) = parts.split_first().ok_or_else(|| corrupt("record reply"))?;
    let row = record_row(id, &hash(first)?)?;
    let mut versions = Vec::with_capacity(rest.len());
    for p in rest {
        match items(p) {
            Some([d, h]) => {
                let d = text(d).ok_or_else(|| corrupt("digest"))?;
                versions.push(version_cols(id, &d, &hash(h)?)?);
            }
            _ => return Err(corrupt("version reply")),
        }
    }
    Ok(Some((row, versions)))
}

impl RedisBackend {
    pub fn open(url: &str, prefix: &str, cfg: &StoreConfig) -> Result<Self, OpError> {
        let client =
            redis::Client::open(url).map_err(|e| OpError::Invalid(format!("redis url: {e}")))?;
        let rt = NetRuntime::new("portcullis-redis")?;
        let conn = connect_manager(&rt, &client, cfg.timeout)?;
        let prefix: Arc<str> = Arc::from(prefix);
        let b = Self {
            rt,
            client,
            conn,
            channel: format!("{prefix}changes").into(),
            prefix,
            scripts: Arc::new(Scripts {
                lookup: Script::new(LOOKUP),
                load: Script::new(LOAD),
                revoke: Script::new(REVOKE),
                rotate: Script::new(ROTATE),
                deny: Script::new(DENY),
            }),
            timeout: cfg.timeout,
            heartbeat: cfg.heartbeat,
        };
        b.check_schema()?;
        Ok(b)
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    fn check_schema(&self) -> Result<(), OpError> {
        let k = self.key("schema");
        let (set, current): (bool, i64) = self.cmd("redis schema", move |mut c| async move {
            redis::pipe()
                .cmd("SET")
                .arg(&k)
                .arg(SCHEMA_VERSION)
                .arg("NX")
                .cmd("GET")
                .arg(&k)
                .query_async::<(Option<String>, i64)>(&mut c)
                .await
                .map(|(s, v)| (s.is_some(), v))
        })?;
        let _ = set;
        if current > SCHEMA_VERSION {
            return Err(OpError::Corrupt(format!(
                "redis has schema version {current} under this prefix; this build knows up to {SCHEMA_VERSION}"
            )));
        }
        Ok(())
    }

    /// Runs a command future on the backend's runtime with a cloned connection, bounded.
    fn cmd<T, F, Fut>(&self, what: &str, f: F) -> Result<T, OpError>
    where
        T: Send,
        F: FnOnce(ConnectionManager) -> Fut + Send,
        Fut: std::future::Future<Output = redis::RedisResult<T>> + Send,
    {
        let c = self.conn.clone();
        self.rt.block(bounded(self.timeout, what, f(c)))
    }

    fn load_ids(&self, ids: &[String], timeout: Duration) -> Result<Vec<StoredRecord>, OpError> {
        let mut records = Vec::new();
        let mut versions = Vec::new();
        for chunk in ids.chunks(500) {
            let mut inv = self.scripts.load.prepare_invoke();
            inv.arg(&*self.prefix);
            for id in chunk {
                inv.arg(id);
            }
            let c = self.conn.clone();
            let reply: Value = self.rt.block(bounded(timeout, "redis load", async move {
                let mut c = c;
                inv.invoke_async::<Value>(&mut c).await
            }))?;
            let parts = items(&reply).ok_or_else(|| corrupt("load reply"))?;
            for (id, v) in chunk.iter().zip(parts) {
                if let Some((r, vs)) = decode_loaded(id, v)? {
                    records.push(r);
                    versions.extend(vs);
                }
            }
        }
        assemble(records, versions)
    }
}

fn connect_manager(
    rt: &NetRuntime,
    client: &redis::Client,
    timeout: Duration,
) -> Result<ConnectionManager, OpError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    let client = client.clone();
    rt.block(bounded(
        timeout.saturating_mul(2),
        "redis connect",
        async move { client.get_connection_manager_with_config(config).await },
    ))
}

impl RedisBackend {
    /// Queues the writes of one new record on `p`.
    fn add_insert(&self, p: &mut redis::Pipeline, rec: &StoredRecord) {
        let row = RecordRow::encode(&rec.record, rec.rev);
        let rk = self.key(&format!("r:{}", row.id));
        p.cmd("HSET")
            .arg(&rk)
            .arg("consumer")
            .arg(&row.consumer)
            .arg("scopes")
            .arg(&row.scopes)
            .arg("created_at")
            .arg(row.created_at)
            .arg("expires_at")
            .arg(opt_text(row.expires_at))
            .arg("not_before")
            .arg(opt_text(row.not_before))
            .arg("revoked_at")
            .arg(opt_text(row.revoked_at))
            .arg("allowed_cidrs")
            .arg(&row.allowed_cidrs)
            .arg("metadata")
            .arg(&row.metadata)
            .arg("rate_limit")
            .arg(row.rate_limit.clone().unwrap_or_default())
            .arg("rev")
            .arg(row.rev)
            .ignore();
        for v in &rec.versions {
            let d = v.digest.to_hex();
            p.cmd("HSET")
                .arg(self.key(&format!("k:{d}")))
                .arg("id")
                .arg(&row.id)
                .arg("prefix")
                .arg(&v.prefix)
                .arg("fp")
                .arg(&v.fingerprint)
                .arg("created")
                .arg(v.created_at)
                .arg("exp")
                .arg(opt_text(v.expires_at))
                .ignore();
            p.cmd("SADD").arg(format!("{rk}:k")).arg(d).ignore();
        }
        p.cmd("ZADD")
            .arg(self.key("ids"))
            .arg(0)
            .arg(&row.id)
            .ignore();
        p.cmd("SADD")
            .arg(self.key("consumers"))
            .arg(&row.consumer)
            .ignore();
    }
}

impl Backend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn ping(&self) -> Result<(), OpError> {
        self.cmd("redis ping", |mut c| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .map(|_| ())
        })
    }

    fn lookup(&self, digest: &KeyDigest) -> Result<Option<KeyEntry>, OpError> {
        let k = self.key(&format!("k:{}", digest.to_hex()));
        let prefix = Arc::clone(&self.prefix);
        let scripts = Arc::clone(&self.scripts);
        let reply: Value = self.cmd("redis lookup", move |mut c| async move {
            scripts
                .lookup
                .key(k)
                .arg(&*prefix)
                .invoke_async::<Value>(&mut c)
                .await
        })?;
        let Some([v, r]) = items(&reply) else {
            return Ok(None);
        };
        let v = hash(v)?;
        let id = field(&v, "id")?;
        let r = hash(r)?;
        if r.is_empty() {
            return Ok(None);
        }
        let rec = record_row(&id, &r)?.decode()?;
        Ok(Some(KeyEntry {
            record: Arc::new(rec),
            fingerprint: Arc::from(field(&v, "fp")?.as_str()),
            key_expires_at: opt_int(&v, "exp")?,
        }))
    }

    fn load_all(&self) -> Result<Vec<StoredRecord>, OpError> {
        let k = self.key("ids");
        let ids: Vec<String> = self.cmd("redis ids", move |mut c| async move {
            redis::cmd("ZRANGE")
                .arg(k)
                .arg(0)
                .arg(-1)
                .query_async(&mut c)
                .await
        })?;
        self.load_ids(&ids, self.timeout.saturating_mul(5))
    }

    fn load_record(&self, id: &str) -> Result<Option<StoredRecord>, OpError> {
        Ok(self
            .load_ids(&[id.to_string()], self.timeout)?
            .into_iter()
            .next())
    }

    fn insert(&self, rec: &StoredRecord) -> Result<(), OpError> {
        self.insert_batch(std::slice::from_ref(rec))
    }

    fn insert_batch(&self, recs: &[StoredRecord]) -> Result<(), OpError> {
        for chunk in recs.chunks(1000) {
            let mut p = redis::pipe();
            p.atomic();
            for rec in chunk {
                self.add_insert(&mut p, rec);
            }
            // One record: its own change; a bulk import: replicas reload once.
            let change = match chunk {
                [one] => format!("k:{}", one.record.id),
                _ => "r:".to_string(),
            };
            p.cmd("PUBLISH").arg(&*self.channel).arg(change).ignore();
            self.cmd("redis insert", move |mut c| async move {
                p.query_async::<()>(&mut c).await
            })?;
        }
        Ok(())
    }
    fn list(
        &self,
        consumer: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, OpError> {
        let k = self.key("ids");
        let mut out = Vec::new();
        let mut cursor = after.map(str::to_string);
        // Filtering by consumer happens here: page through ids until enough match.
        loop {
            let min = match &cursor {
                Some(c) => format!("({c}"),
                None => "-".to_string(),
            };
            let page = limit.clamp(1, 1000);
            let k2 = k.clone();
            let ids: Vec<String> = self.cmd("redis list", move |mut c| async move {
                redis::cmd("ZRANGEBYLEX")
                    .arg(k2)
                    .arg(min)
                    .arg("+")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(page)
                    .query_async(&mut c)
                    .await
            })?;
            let done = ids.len() < page;
            cursor = ids.last().cloned();
            for r in self.load_ids(&ids, self.timeout)? {
                if consumer.is_none_or(|c| &*r.record.consumer == c) && out.len() < limit {
                    out.push(r);
                }
            }
            if done || out.len() >= limit {
                return Ok(out);
            }
        }
    }

    fn revoke(&self, id: &str, at: i64) -> Result<StoredRecord, OpError> {
        let mut inv = self.scripts.revoke.prepare_invoke();
        inv.arg(&*self.prefix).arg(id).arg(at).arg(&*self.channel);
        let n: i64 = self.cmd("redis revoke", move |mut c| async move {
            inv.invoke_async(&mut c).await
        })?;
        if n == 0 {
            return Err(OpError::NotFound(id.to_string()));
        }
        self.load_record(id)?
            .ok_or_else(|| OpError::NotFound(id.to_string()))
    }

    fn rotate(
        &self,
        id: &str,
        new: &VersionRow,
        old_expire_at: i64,
    ) -> Result<StoredRecord, OpError> {
        let mut inv = self.scripts.rotate.prepare_invoke();
        inv.arg(&*self.prefix)
            .arg(id)
            .arg(old_expire_at)
            .arg(&*self.channel)
            .arg(new.digest.to_hex())
            .arg(&new.prefix)
            .arg(&new.fingerprint)
            .arg(new.created_at);
        let n: i64 = self.cmd("redis rotate", move |mut c| async move {
            inv.invoke_async(&mut c).await
        })?;
        match n {
            0 => Err(OpError::NotFound(id.to_string())),
            -1 => Err(OpError::Conflict(format!(
                "key `{id}` is revoked; create a new one"
            ))),
            _ => self
                .load_record(id)?
                .ok_or_else(|| OpError::NotFound(id.to_string())),
        }
    }

    fn deny_jti(&self, jti: &str, until: i64) -> Result<(), OpError> {
        let mut inv = self.scripts.deny.prepare_invoke();
        inv.arg(&*self.prefix)
            .arg(jti)
            .arg(until)
            .arg(&*self.channel);
        self.cmd("redis deny jti", move |mut c| async move {
            inv.invoke_async::<i64>(&mut c).await
        })
        .map(|_| ())
    }

    fn jti_until(&self, jti: &str) -> Result<Option<i64>, OpError> {
        let k = self.key("jtis");
        let jti = jti.to_string();
        let s: Option<f64> = self.cmd("redis jti", move |mut c| async move {
            redis::cmd("ZSCORE")
                .arg(k)
                .arg(jti)
                .query_async(&mut c)
                .await
        })?;
        // Scores are whole seconds, well inside f64's exact integers.
        #[allow(clippy::cast_possible_truncation)]
        Ok(s.map(|f| f as i64))
    }

    fn load_denylist(&self, now: i64) -> Result<Vec<(String, i64)>, OpError> {
        let k = self.key("jtis");
        let v: Vec<(String, f64)> = self.cmd("redis denylist", move |mut c| async move {
            redis::cmd("ZRANGEBYSCORE")
                .arg(k)
                .arg(format!("({now}"))
                .arg("+inf")
                .arg("WITHSCORES")
                .query_async(&mut c)
                .await
        })?;
        #[allow(clippy::cast_possible_truncation)]
        Ok(v.into_iter().map(|(j, s)| (j, s as i64)).collect())
    }

    fn purge_jti(&self, now: i64) -> Result<u64, OpError> {
        let k = self.key("jtis");
        self.cmd("redis purge", move |mut c| async move {
            redis::cmd("ZREMRANGEBYSCORE")
                .arg(k)
                .arg("-inf")
                .arg(now)
                .query_async(&mut c)
                .await
        })
    }

    fn consumers(&self) -> Result<Vec<String>, OpError> {
        let k = self.key("consumers");
        let mut v: Vec<String> = self.cmd("redis consumers", move |mut c| async move {
            redis::cmd("SMEMBERS").arg(k).query_async(&mut c).await
        })?;
        v.sort();
        Ok(v)
    }

    fn watch(&self, tx: Sender<FeedEvent>) -> Result<Box<dyn FeedGuard>, OpError> {
        let feed = Feed {
            client: self.client.clone(),
            channel: Arc::clone(&self.channel),
            tx,
            heartbeat: self.heartbeat,
            timeout: self.timeout,
        };
        Ok(Box::new(AbortOnDrop(self.rt.handle().spawn(feed.run()))))
    }
}

struct Feed {
    client: redis::Client,
    channel: Arc<str>,
    tx: Sender<FeedEvent>,
    heartbeat: Duration,
    timeout: Duration,
}

enum End {
    Closed,
    /// Why, and whether the session had been established (resets the backoff).
    Lost(String, bool),
}

impl Feed {
    async fn run(self) {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.session().await {
                End::Closed => return,
                End::Lost(e, connected) => {
                    tracing::warn!(error = %e, "redis change feed lost; reconnecting");
                    if connected {
                        backoff = Duration::from_millis(50);
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    async fn session(&self) -> End {
        let pubsub = match bounded(self.timeout, "connect", self.client.get_async_pubsub()).await {
            Ok(p) => p,
            Err(e) => return End::Lost(e.to_string(), false),
        };
        let (mut sink, mut stream) = pubsub.split();
        if let Err(e) = bounded(self.timeout, "subscribe", sink.subscribe(&*self.channel)).await {
            return End::Lost(e.to_string(), false);
        }
        // Subscribed from here on: a full load now misses nothing.
        if self.tx.send(FeedEvent::Resync).is_err() {
            return End::Closed;
        }
        let mut tick = tokio::time::interval(self.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                m = stream.next() => match m {
                    Some(msg) => {
                        let ev = msg.get_payload::<String>().ok().and_then(|p| match p.split_once(':') {
                            Some(("k", id)) => Some(FeedEvent::Record(id.to_string())),
                            Some(("j", jti)) => Some(FeedEvent::Jti(jti.to_string())),
                            Some(("r", _)) => Some(FeedEvent::Resync),
                            _ => None,
                        });
                        if let Some(ev) = ev {
                            if self.tx.send(ev).is_err() {
                                return End::Closed;
                            }
                        }
                    }
                    None => return End::Lost("connection closed".into(), true),
                },
                _ = tick.tick() => {
                    // In subscribed mode PING answers `["pong", ""]`: any answer will do.
                    if let Err(e) = bounded(self.timeout, "heartbeat", sink.ping::<Value>()).await {
                        return End::Lost(e.to_string(), true);
                    }
                    if self.tx.send(FeedEvent::Alive).is_err() {
                        return End::Closed;
                    }
                }
            }
        }
    }
}
