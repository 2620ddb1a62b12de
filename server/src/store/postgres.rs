//! The shared backend on PostgreSQL: a pool (deadpool-postgres), versioned
//! migrations under an advisory lock (instances may start together), and
//! `LISTEN/NOTIFY` so every instance hears each change: the notification
//! is sent inside the writing transaction, so it is delivered exactly when
//! the change commits. A feed that loses its connection reconnects and
//! asks for a full resync (notifications sent meanwhile are lost).

use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::StreamExt;
use portcullis_engine::credential::apikey::{KeyDigest, KeyEntry};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls, Row};

use super::backend::{bounded, within, Backend, FeedEvent, FeedGuard, NetRuntime};
use super::codec::{assemble, RecordRow, VersionCols};
use super::config::StoreConfig;
use super::model::{now_unix, OpError, StoredRecord, VersionRow};

const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "keys, consumers, jti denylist",
    "CREATE TABLE consumers (
        name TEXT PRIMARY KEY,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE key_records (
        id TEXT PRIMARY KEY,
        consumer TEXT NOT NULL REFERENCES consumers(name),
        scopes TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        not_before BIGINT,
        revoked_at BIGINT,
        allowed_cidrs TEXT NOT NULL,
        metadata TEXT NOT NULL,
        rate_limit TEXT,
        rev BIGINT NOT NULL
    );
    CREATE INDEX key_records_consumer ON key_records(consumer, id);
    CREATE TABLE key_versions (
        digest TEXT PRIMARY KEY,
        record_id TEXT NOT NULL REFERENCES key_records(id),
        prefix TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT
    );
    CREATE INDEX key_versions_record ON key_versions(record_id);
    CREATE TABLE jti_denylist (
        jti TEXT PRIMARY KEY,
        until BIGINT NOT NULL
    );",
)];

/// Serialises migrations of concurrently starting instances.
const MIGRATION_LOCK: i64 = 0x706f_7274_6375_6c6c;

const RECORD_COLS: &str = "r.id, r.consumer, r.scopes, r.created_at, r.expires_at, r.not_before, \
     r.revoked_at, r.allowed_cidrs, r.metadata, r.rate_limit, r.rev";
const VERSION_COLS: &str = "record_id, digest, prefix, fingerprint, created_at, expires_at";

fn pg_err(e: impl std::fmt::Display) -> OpError {
    OpError::Unavailable(format!("postgres: {e}"))
}

fn record_row(row: &Row, at: usize) -> Result<RecordRow, OpError> {
    let g = |e: tokio_postgres::Error| OpError::Corrupt(format!("key record: {e}"));
    Ok(RecordRow {
        id: row.try_get(at).map_err(g)?,
        consumer: row.try_get(at + 1).map_err(g)?,
        scopes: row.try_get(at + 2).map_err(g)?,
        created_at: row.try_get(at + 3).map_err(g)?,
        expires_at: row.try_get(at + 4).map_err(g)?,
        not_before: row.try_get(at + 5).map_err(g)?,
        revoked_at: row.try_get(at + 6).map_err(g)?,
        allowed_cidrs: row.try_get(at + 7).map_err(g)?,
        metadata: row.try_get(at + 8).map_err(g)?,
        rate_limit: row.try_get(at + 9).map_err(g)?,
        rev: row.try_get(at + 10).map_err(g)?,
    })
}

fn version_cols(row: &Row) -> Result<VersionCols, OpError> {
    let g = |e: tokio_postgres::Error| OpError::Corrupt(format!("key version: {e}"));
    Ok(VersionCols {
        record_id: row.try_get(0).map_err(g)?,
        digest: row.try_get(1).map_err(g)?,
        prefix: row.try_get(2).map_err(g)?,
        fingerprint: row.try_get(3).map_err(g)?,
        created_at: row.try_get(4).map_err(g)?,
        expires_at: row.try_get(5).map_err(g)?,
    })
}

pub struct PostgresBackend {
    rt: NetRuntime,
    pool: Pool,
    pg: tokio_postgres::Config,
    channel: Arc<str>,
    timeout: Duration,
    heartbeat: Duration,
}

async fn load_records<C: tokio_postgres::GenericClient>(
    c: &C,
    where_sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<StoredRecord>, OpError> {
    let rows = c
        .query(
            &format!("SELECT {RECORD_COLS} FROM key_records r {where_sql}"),
            params,
        )
        .await
        .map_err(pg_err)?;
    let records = rows
        .iter()
        .map(|r| record_row(r, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let versions = c
        .query(
            &format!("SELECT {VERSION_COLS} FROM key_versions WHERE record_id = ANY($1)"),
            &[&ids],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(version_cols)
        .collect::<Result<Vec<_>, _>>()?;
    assemble(records, versions)
}

impl PostgresBackend {
    pub fn open(url: &str, schema: Option<&str>, cfg: &StoreConfig) -> Result<Self, OpError> {
        let mut pg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| OpError::Invalid(format!("postgres url: {e}")))?;
        if let Some(s) = schema {
            // `schema` was checked to be a plain identifier by the URL parser.
            pg.options(format!("-c search_path={s}"));
        }
        pg.connect_timeout(cfg.timeout);
        pg.application_name("portcullis");
        let rt = NetRuntime::new("portcullis-pg")?;
        let mgr = Manager::from_config(
            pg.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(cfg.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(cfg.timeout))
            .create_timeout(Some(cfg.timeout))
            .recycle_timeout(Some(cfg.timeout))
            .build()
            .map_err(|e| OpError::Invalid(format!("postgres pool: {e}")))?;
        let channel: Arc<str> = match schema {
            Some(s) => format!("portcullis_keys_{s}").into(),
            None => "portcullis_keys".into(),
        };
        let b = Self {
            rt,
            pool,
            pg,
            channel,
            timeout: cfg.timeout,
            heartbeat: cfg.heartbeat,
        };
        b.migrate(schema)?;
        Ok(b)
    }

    fn migrate(&self, schema: Option<&str>) -> Result<(), OpError> {
        let pool = self.pool.clone();
        let schema = schema.map(str::to_string);
        self.rt.block(within(
            self.timeout.saturating_mul(5),
            "postgres migrate",
            async move {
                let mut c = pool.get().await.map_err(pg_err)?;
                if let Some(s) = &schema {
                    c.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
                        .await
                        .map_err(pg_err)?;
                }
                let tx = c.transaction().await.map_err(pg_err)?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                    .await
                    .map_err(pg_err)?;
                tx.batch_execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
                )
                .await
                .map_err(pg_err)?;
                let current: i64 = tx
                    .query_one(
                        "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
                        &[],
                    )
                    .await
                    .map_err(pg_err)?
                    .try_get(0)
                    .map_err(pg_err)?;
                let newest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
                if current > newest {
                    return Err::<(), OpError>(OpError::Corrupt(format!(
                    "the database has schema version {current}; this build knows up to {newest}"
                )));
                }
                for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
                    tx.batch_execute(sql).await.map_err(pg_err)?;
                    tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    &[version, name, &now_unix()],
                )
                .await
                .map_err(pg_err)?;
                }
                tx.commit().await.map_err(pg_err)
            },
        ))
    }

    /// Runs `f` with a pooled client on the backend's runtime, bounded by the timeout.
    fn run<T, F, Fut>(&self, what: &str, f: F) -> Result<T, OpError>
    where
        T: Send,
        F: FnOnce(deadpool_postgres::Object) -> Fut + Send,
        Fut: std::future::Future<Output = Result<T, OpError>> + Send,
    {
        let pool = &self.pool;
        self.rt.block(within(self.timeout, what, async move {
            let c = pool.get().await.map_err(pg_err)?;
            f(c).await
        }))
    }
}

async fn notify(
    tx: &deadpool_postgres::Transaction<'_>,
    channel: &str,
    payload: &str,
) -> Result<(), OpError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
        .await
        .map_err(pg_err)?;
    Ok(())
}

impl Backend for PostgresBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn ping(&self) -> Result<(), OpError> {
        self.run("postgres ping", |c| async move {
            c.simple_query("SELECT 1").await.map_err(pg_err)?;
            Ok(())
        })
    }

    fn lookup(&self, digest: &KeyDigest) -> Result<Option<KeyEntry>, OpError> {
        let hex = digest.to_hex();
        self.run("postgres lookup", |c| async move {
            let st = c
                .prepare_cached(&format!(
                    "SELECT v.fingerprint, v.expires_at, {RECORD_COLS} FROM key_versions v \
                     JOIN key_records r ON r.id = v.record_id WHERE v.digest = $1"
                ))
                .await
                .map_err(pg_err)?;
            let Some(row) = c.query_opt(&st, &[&hex]).await.map_err(pg_err)? else {
                return Ok(None);
            };
            let fp: String = row.try_get(0).map_err(pg_err)?;
            let exp: Option<i64> = row.try_get(1).map_err(pg_err)?;
            let rec = record_row(&row, 2)?.decode()?;
            Ok(Some(KeyEntry {
                record: Arc::new(rec),
                fingerprint: Arc::from(fp.as_str()),
                key_expires_at: exp,
            }))
        })
    }

    fn load_all(&self) -> Result<Vec<StoredRecord>, OpError> {
        let pool = &self.pool;
        // A full load may take longer than one lookup: give it room.
        self.rt.block(within(
            self.timeout.saturating_mul(10),
            "postgres load",
            async move {
                let mut c = pool.get().await.map_err(pg_err)?;
                let tx = c
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .await
                    .map_err(pg_err)?;
                let records = tx
                    .query(&format!("SELECT {RECORD_COLS} FROM key_records r"), &[])
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(|r| record_row(r, 0))
                    .collect::<Result<Vec<_>, _>>()?;
                let versions = tx
                    .query(&format!("SELECT {VERSION_COLS} FROM key_versions"), &[])
                    .await
                    .map_err(pg_err)?
                    .iter()
                    .map(version_cols)
                    .collect::<Result<Vec<_>, _>>()?;
                tx.commit().await.map_err(pg_err)?;
                assemble(records, versions)
            },
        ))
    }

    fn load_record(&self, id: &str) -> Result<Option<StoredRecord>, OpError> {
        // One statement (one snapshot, one round trip): a replica reads a
        // changed record back on every notification.
        self.run("postgres read", |c| async move {
            let st = c
                .prepare_cached(&format!(
                    "SELECT {RECORD_COLS}, v.record_id, v.digest, v.prefix, v.fingerprint, \
                     v.created_at, v.expires_at FROM key_records r \
                     LEFT JOIN key_versions v ON v.record_id = r.id WHERE r.id = $1"
                ))
                .await
                .map_err(pg_err)?;
            let rows = c.query(&st, &[&id]).await.map_err(pg_err)?;
            let Some(first) = rows.first() else {
                return Ok(None);
            };
            let record = record_row(first, 0)?;
            let mut versions = Vec::with_capacity(rows.len());
            for row in &rows {
                let digest: Option<String> = row.try_get(12).map_err(pg_err)?;
                if digest.is_some() {
                    versions.push(VersionCols {
                        record_id: row.try_get(11).map_err(pg_err)?,
                        digest: row.try_get(12).map_err(pg_err)?,
                        prefix: row.try_get(13).map_err(pg_err)?,
                        fingerprint: row.try_get(14).map_err(pg_err)?,
                        created_at: row.try_get(15).map_err(pg_err)?,
                        expires_at: row.try_get(16).map_err(pg_err)?,
                    });
                }
            }
            Ok(assemble(vec![record], versions)?.into_iter().next())
        })
    }

    fn insert(&self, rec: &StoredRecord) -> Result<(), OpError> {
        let row = RecordRow::encode(&rec.record, rec.rev);
        let channel = &*self.channel;
        self.run("postgres insert", |mut c| async move {
            let tx = c.transaction().await.map_err(pg_err)?;
            tx.execute(
                "INSERT INTO consumers (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&row.consumer, &row.created_at],
            )
            .await
            .map_err(pg_err)?;
            tx.execute(
                "INSERT INTO key_records (id, consumer, scopes, created_at, expires_at, not_before, \
                 revoked_at, allowed_cidrs, metadata, rate_limit, rev) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                &[
                    &row.id, &row.consumer, &row.scopes, &row.created_at, &row.expires_at,
                    &row.not_before, &row.revoked_at, &row.allowed_cidrs, &row.metadata,
                    &row.rate_limit, &row.rev,
                ],
            )
            .await
            .map_err(pg_err)?;
            for v in &rec.versions {
                tx.execute(
                    "INSERT INTO key_versions (digest, record_id, prefix, fingerprint, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&v.digest.to_hex(), &row.id, &v.prefix, &v.fingerprint, &v.created_at, &v.expires_at],
                )
                .await
                .map_err(pg_err)?;
            }
            notify(&tx, channel, &format!("k:{}", row.id)).await?;
            tx.commit().await.map_err(pg_err)
        })
    }

    fn insert_batch(&self, recs: &[StoredRecord]) -> Result<(), OpError> {
        // Arrays unnested server-side: one statement per table, not per row.
        let channel = &*self.channel;
        for chunk in recs.chunks(5000) {
            let rows: Vec<RecordRow> = chunk
                .iter()
                .map(|r| RecordRow::encode(&r.record, r.rev))
                .collect();
            let col = |f: fn(&RecordRow) -> String| rows.iter().map(f).collect::<Vec<String>>();
            let ocol =
                |f: fn(&RecordRow) -> Option<i64>| rows.iter().map(f).collect::<Vec<Option<i64>>>();
            let (ids, consumers, scopes, cidrs, meta) = (
                col(|r| r.id.clone()),
                col(|r| r.consumer.clone()),
                col(|r| r.scopes.clone()),
                col(|r| r.allowed_cidrs.clone()),
                col(|r| r.metadata.clone()),
            );
            let created: Vec<i64> = rows.iter().map(|r| r.created_at).collect();
            let revs: Vec<i64> = rows.iter().map(|r| r.rev).collect();
            let (exp, nb, rev_at) = (
                ocol(|r| r.expires_at),
                ocol(|r| r.not_before),
                ocol(|r| r.revoked_at),
            );
            let rl: Vec<Option<String>> = rows.iter().map(|r| r.rate_limit.clone()).collect();
            let vs: Vec<(&str, &VersionRow)> = chunk
                .iter()
                .flat_map(|r| r.versions.iter().map(move |v| (&*r.record.id, v)))
                .collect();
            let v_digest: Vec<String> = vs.iter().map(|(_, v)| v.digest.to_hex()).collect();
            let v_rec: Vec<&str> = vs.iter().map(|(id, _)| *id).collect();
            let v_prefix: Vec<&str> = vs.iter().map(|(_, v)| v.prefix.as_str()).collect();
            let v_fp: Vec<&str> = vs.iter().map(|(_, v)| v.fingerprint.as_str()).collect();
            let v_created: Vec<i64> = vs.iter().map(|(_, v)| v.created_at).collect();
            let v_exp: Vec<Option<i64>> = vs.iter().map(|(_, v)| v.expires_at).collect();
            self.run("postgres import", |mut c| async move {
                let tx = c.transaction().await.map_err(pg_err)?;
                tx.execute(
                    "INSERT INTO consumers (name, created_at) \
                     SELECT DISTINCT ON (n) n, t FROM UNNEST($1::text[], $2::bigint[]) AS u(n, t) \
                     ON CONFLICT DO NOTHING",
                    &[&consumers, &created],
                )
                .await
                .map_err(pg_err)?;
                tx.execute(
                    "INSERT INTO key_records (id, consumer, scopes, created_at, expires_at, not_before, \
                     revoked_at, allowed_cidrs, metadata, rate_limit, rev) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], \
                     $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::text[], $11::bigint[])",
                    &[&ids, &consumers, &scopes, &created, &exp, &nb, &rev_at, &cidrs, &meta, &rl, &revs],
                )
                .await
                .map_err(pg_err)?;
                tx.execute(
                    "INSERT INTO key_versions (digest, record_id, prefix, fingerprint, created_at, expires_at) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])",
                    &[&v_digest, &v_rec, &v_prefix, &v_fp, &v_created, &v_exp],
                )
                .await
                .map_err(pg_err)?;
                // Replicas reload once rather than read back every record.
                notify(&tx, channel, "r:").await?;
                tx.commit().await.map_err(pg_err)
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run("postgres list", |mut c| async move {
            let tx = c
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(pg_err)?;
            let mut r = load_records(
                &*tx,
                "WHERE ($1::text IS NULL OR r.consumer = $1) AND ($2::text IS NULL OR r.id > $2) \
                 ORDER BY r.id LIMIT $3",
                &[&consumer, &after, &limit],
            )
            .await?;
            tx.commit().await.map_err(pg_err)?;
            r.sort_by(|a, b| a.record.id.cmp(&b.record.id));
            Ok(r)
        })
    }

    fn revoke(&self, id: &str, at: i64) -> Result<StoredRecord, OpError> {
        let channel = &*self.channel;
        self.run("postgres revoke", |mut c| async move {
            let tx = c.transaction().await.map_err(pg_err)?;
            let n = tx
                .execute(
                    "UPDATE key_records SET revoked_at = $1, rev = rev + 1 WHERE id = $2 AND revoked_at IS NULL",
                    &[&at, &id],
                )
                .await
                .map_err(pg_err)?;
            if n > 0 {
                notify(&tx, channel, &format!("k:{id}")).await?;
            }
            let rec = load_records(&*tx, "WHERE r.id = $1", &[&id])
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| OpError::NotFound(id.to_string()))?;
            tx.commit().await.map_err(pg_err)?;
            Ok(rec)
        })
    }

    fn rotate(
        &self,
        id: &str,
        new: &VersionRow,
        old_expire_at: i64,
    ) -> Result<StoredRecord, OpError> {
        let channel = &*self.channel;
        self.run("postgres rotate", |mut c| async move {
            let tx = c.transaction().await.map_err(pg_err)?;
            let row = tx
                .query_opt("SELECT revoked_at FROM key_records WHERE id = $1 FOR UPDATE", &[&id])
                .await
                .map_err(pg_err)?
                .ok_or_else(|| OpError::NotFound(id.to_string()))?;
            let revoked: Option<i64> = row.try_get(0).map_err(pg_err)?;
            if revoked.is_some() {
                return Err(OpError::Conflict(format!("key `{id}` is revoked; create a new one")));
            }
            tx.execute(
                "UPDATE key_versions SET expires_at = $1 WHERE record_id = $2 \
                 AND (expires_at IS NULL OR expires_at > $1)",
                &[&old_expire_at, &id],
            )
            .await
            .map_err(pg_err)?;
            tx.execute(
                "INSERT INTO key_versions (digest, record_id, prefix, fingerprint, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&new.digest.to_hex(), &id, &new.prefix, &new.fingerprint, &new.created_at, &new.expires_at],
            )
            .await
            .map_err(pg_err)?;
            tx.execute("UPDATE key_records SET rev = rev + 1 WHERE id = $1", &[&id])
                .await
                .map_err(pg_err)?;
            notify(&tx, channel, &format!("k:{id}")).await?;
            let rec = load_records(&*tx, "WHERE r.id = $1", &[&id])
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| OpError::NotFound(id.to_string()))?;
            tx.commit().await.map_err(pg_err)?;
            Ok(rec)
        })
    }

    fn deny_jti(&self, jti: &str, until: i64) -> Result<(), OpError> {
        let channel = &*self.channel;
        self.run("postgres deny jti", |mut c| async move {
            let tx = c.transaction().await.map_err(pg_err)?;
            tx.execute(
                "INSERT INTO jti_denylist (jti, until) VALUES ($1, $2) \
                 ON CONFLICT (jti) DO UPDATE SET until = GREATEST(jti_denylist.until, EXCLUDED.until)",
                &[&jti, &until],
            )
            .await
            .map_err(pg_err)?;
            notify(&tx, channel, &format!("j:{jti}")).await?;
            tx.commit().await.map_err(pg_err)
        })
    }

    fn jti_until(&self, jti: &str) -> Result<Option<i64>, OpError> {
        self.run("postgres jti", |c| async move {
            let st = c
                .prepare_cached("SELECT until FROM jti_denylist WHERE jti = $1")
                .await
                .map_err(pg_err)?;
            match c.query_opt(&st, &[&jti]).await.map_err(pg_err)? {
                Some(r) => Ok(Some(r.try_get(0).map_err(pg_err)?)),
                None => Ok(None),
            }
        })
    }

    fn load_denylist(&self, now: i64) -> Result<Vec<(String, i64)>, OpError> {
        self.run("postgres denylist", |c| async move {
            c.query(
                "SELECT jti, until FROM jti_denylist WHERE until > $1",
                &[&now],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| Ok((r.try_get(0).map_err(pg_err)?, r.try_get(1).map_err(pg_err)?)))
            .collect()
        })
    }

    fn purge_jti(&self, now: i64) -> Result<u64, OpError> {
        self.run("postgres purge", |c| async move {
            c.execute("DELETE FROM jti_denylist WHERE until <= $1", &[&now])
                .await
                .map_err(pg_err)
        })
    }

    fn consumers(&self) -> Result<Vec<String>, OpError> {
        self.run("postgres consumers", |c| async move {
            c.query("SELECT name FROM consumers ORDER BY name", &[])
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| r.try_get(0).map_err(pg_err))
                .collect()
        })
    }

    fn watch(&self, tx: Sender<FeedEvent>) -> Result<Box<dyn FeedGuard>, OpError> {
        let feed = Feed {
            pg: self.pg.clone(),
            channel: Arc::clone(&self.channel),
            tx,
            heartbeat: self.heartbeat,
            timeout: self.timeout,
        };
        let task = self.rt.handle().spawn(feed.run());
        Ok(Box::new(AbortOnDrop(task)))
    }
}

/// Stops a feed task when dropped.
pub struct AbortOnDrop(pub JoinHandle<()>);

impl FeedGuard for AbortOnDrop {}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Feed {
    pg: tokio_postgres::Config,
    channel: Arc<str>,
    tx: Sender<FeedEvent>,
    heartbeat: Duration,
    timeout: Duration,
}

/// Why a feed session ended.
enum End {
    /// The consumer is gone: stop for good.
    Closed,
    /// The connection failed: reconnect. The flag: the session had been
    /// established (listening), so the backoff starts over.
    Lost(String, bool),
}

fn parse_payload(p: &str) -> Option<FeedEvent> {
    match p.split_once(':') {
        Some(("k", id)) => Some(FeedEvent::Record(id.to_string())),
        Some(("j", jti)) => Some(FeedEvent::Jti(jti.to_string())),
        Some(("r", _)) => Some(FeedEvent::Resync),
        _ => None,
    }
}

impl Feed {
    async fn run(self) {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.session().await {
                End::Closed => return,
                End::Lost(e, connected) => {
                    tracing::warn!(error = %e, "postgres change feed lost; reconnecting");
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
        let (client, mut conn) =
            match bounded(self.timeout, "connect", self.pg.connect(NoTls)).await {
                Ok(c) => c,
                Err(e) => return End::Lost(e.to_string(), false),
            };
        let (ntx, mut nrx) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
        // The connection delivers notifications only while polled: a task drives it.
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(m) = messages.next().await {
                match m {
                    Ok(AsyncMessage::Notification(n)) => {
                        if ntx.send(Some(n.payload().to_string())).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            let _ = ntx.send(None);
        });
        let _driver = AbortOnDrop(driver);
        if let Err(e) = bounded(
            self.timeout,
            "listen",
            client.batch_execute(&format!("LISTEN \"{}\"", self.channel)),
        )
        .await
        {
            return End::Lost(e.to_string(), false);
        }
        // Listening from here on: a full load now misses nothing.
        if self.tx.send(FeedEvent::Resync).is_err() {
            return End::Closed;
        }
        let mut tick = tokio::time::interval(self.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                m = nrx.recv() => match m {
                    Some(Some(payload)) => {
                        if let Some(ev) = parse_payload(&payload) {
                            if self.tx.send(ev).is_err() {
                                return End::Closed;
                            }
                        }
                    }
                    _ => return End::Lost("connection closed".into(), true),
                },
                _ = tick.tick() => {
                    // A round trip on the listening connection: while it
                    // answers, every notification sent so far has arrived.
                    if let Err(e) = bounded(self.timeout, "heartbeat", client.simple_query("SELECT 1")).await {
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
