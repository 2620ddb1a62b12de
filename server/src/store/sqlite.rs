//! The embedded backend: one SQLite file in WAL mode (readers never wait
//! for the writer), a small connection pool, a versioned schema, and a
//! change log that replicas in other processes poll cheaply
//! (`PRAGMA data_version` first, the log only when it moved).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use portcullis_engine::credential::apikey::{KeyDigest, KeyEntry};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::backend::{Backend, FeedEvent, FeedGuard};
use super::codec::{assemble, RecordRow, VersionCols};
use super::model::{now_unix, OpError, StoredRecord, VersionRow};

/// Schema versions, applied in order, each once (recorded in `schema_migrations`).
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "keys, consumers, jti denylist, change log",
    "CREATE TABLE consumers (
        name TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE key_records (
        id TEXT PRIMARY KEY,
        consumer TEXT NOT NULL REFERENCES consumers(name),
        scopes TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        not_before INTEGER,
        revoked_at INTEGER,
        allowed_cidrs TEXT NOT NULL,
        metadata TEXT NOT NULL,
        rate_limit TEXT,
        rev INTEGER NOT NULL
    );
    CREATE INDEX key_records_consumer ON key_records(consumer, id);
    CREATE TABLE key_versions (
        digest TEXT PRIMARY KEY,
        record_id TEXT NOT NULL REFERENCES key_records(id),
        prefix TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER
    );
    CREATE INDEX key_versions_record ON key_versions(record_id);
    CREATE TABLE jti_denylist (
        jti TEXT PRIMARY KEY,
        until INTEGER NOT NULL
    );
    CREATE TABLE changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        ref TEXT NOT NULL,
        at INTEGER NOT NULL
    );",
)];

/// How long the change log is kept; a feed further behind resyncs fully.
const CHANGE_LOG_KEEP_SECS: i64 = 86_400;

fn err(e: rusqlite::Error) -> OpError {
    OpError::Unavailable(format!("sqlite: {e}"))
}

/// Which file a path names (device and inode): an open SQLite connection
/// keeps reading the file it opened, even once that file is deleted or
/// another one is renamed over it, so the path is checked against this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

impl FileId {
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| Self(m.dev(), m.ino()))
    }
}

/// How often the pool checks that its path still names the file it opened.
const FILE_CHECK_EVERY: Duration = Duration::from_millis(100);

/// Whether the pool's connections are still on the file at its path.
struct Attachment {
    /// The file the connections are open on.
    file: Mutex<Option<FileId>>,
    /// The last check said the file is there (and is ours).
    ok: AtomicBool,
    /// When the last check ran, in ms since `epoch`.
    checked_ms: std::sync::atomic::AtomicU64,
    epoch: Instant,
}

/// Written by hand: `r2d2_sqlite` pins its own rusqlite version, and a
/// fixed set of connections tried in turn is all SQLite needs.
struct Pool {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    path: PathBuf,
    timeout: Duration,
    attachment: Attachment,
}

impl Pool {
    /// Fails while the database file is gone, and moves every connection to
    /// a new file renamed or copied over the path (a restore). Without this
    /// a removed database went on answering from the deleted file forever.
    fn attached(&self) -> Result<(), OpError> {
        let a = &self.attachment;
        let now_ms = u64::try_from(a.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = a.checked_ms.load(Ordering::Relaxed);
        let recent = now_ms.saturating_sub(last) < FILE_CHECK_EVERY.as_millis() as u64;
        // One caller checks; the others go by the last answer meanwhile.
        let guard = if recent { None } else { a.file.try_lock() };
        if let Some(mut file) = guard {
            a.checked_ms.store(now_ms, Ordering::Relaxed);
            let ok = match FileId::of(&self.path) {
                None => false,
                Some(id) if Some(id) == *file => true,
                Some(id) => match self.reopen() {
                    Ok(()) => {
                        tracing::warn!(path = %self.path.display(), "sqlite: the database file was replaced; reopened");
                        *file = Some(id);
                        true
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "sqlite: cannot reopen the replaced database file");
                        false
                    }
                },
            };
            if a.ok.swap(ok, Ordering::Relaxed) && !ok {
                tracing::warn!(path = %self.path.display(), "sqlite: the database file is gone; refusing lookups");
            }
        }
        if a.ok.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(OpError::Unavailable(format!(
                "sqlite: database file `{}` was removed",
                self.path.display()
            )))
        }
    }

    fn reopen(&self) -> Result<(), OpError> {
        let mut first = open_existing(&self.path, self.timeout)?;
        migrate(&mut first)?;
        let mut fresh = vec![first];
        for _ in 1..self.conns.len() {
            fresh.push(open_existing(&self.path, self.timeout)?);
        }
        for (slot, c) in self.conns.iter().zip(fresh) {
            *slot.lock() = c;
        }
        Ok(())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, OpError>) -> Result<T, OpError> {
        self.attached()?;
        let n = self.conns.len().max(1);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Some(mut c) = self.conns.get((start + i) % n).and_then(|m| m.try_lock()) {
                return f(&mut c);
            }
        }
        match self.conns.get(start % n) {
            Some(m) => f(&mut m.lock()),
            None => Err(OpError::Unavailable("sqlite: no connections".into())),
        }
    }
}

pub struct SqliteBackend {
    path: PathBuf,
    pool: Pool,
    poll: Duration,
    heartbeat: Duration,
}

fn open_conn(path: &Path, timeout: Duration) -> Result<Connection, OpError> {
    open_with(path, timeout, OpenFlags::SQLITE_OPEN_CREATE)
}

/// Reopening never creates: an empty database in place of a removed one
/// would answer "no such key" for every key instead of "unavailable".
fn open_existing(path: &Path, timeout: Duration) -> Result<Connection, OpError> {
    open_with(path, timeout, OpenFlags::empty())
}

fn open_with(path: &Path, timeout: Duration, extra: OpenFlags) -> Result<Connection, OpError> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | extra,
    )
    .map_err(|e| OpError::Unavailable(format!("cannot open `{}`: {e}", path.display())))?;
    c.busy_timeout(timeout).map_err(err)?;
    c.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
    c.pragma_update(None, "synchronous", "NORMAL")
        .map_err(err)?;
    c.pragma_update(None, "foreign_keys", "ON").map_err(err)?;
    // Reads through a shared memory map: every pooled connection shares
    // the OS page cache instead of each warming its own small cache, and a
    // lookup costs no read syscalls (docs/stores.md has the numbers).
    c.pragma_update(None, "mmap_size", 1i64 << 30)
        .map_err(err)?;
    Ok(c)
}

fn migrate(c: &mut Connection) -> Result<(), OpError> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .map_err(err)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(err)?;
    let newest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > newest {
        return Err(OpError::Corrupt(format!(
            "the database has schema version {current}; this build knows up to {newest}"
        )));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.execute_batch(sql).map_err(err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![version, name, now_unix()],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)
}

const RECORD_COLS: &str = "r.id, r.consumer, r.scopes, r.created_at, r.expires_at, r.not_before, \
     r.revoked_at, r.allowed_cidrs, r.metadata, r.rate_limit, r.rev";

fn record_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<RecordRow> {
    Ok(RecordRow {
        id: row.get(at)?,
        consumer: row.get(at + 1)?,
        scopes: row.get(at + 2)?,
        created_at: row.get(at + 3)?,
        expires_at: row.get(at + 4)?,
        not_before: row.get(at + 5)?,
        revoked_at: row.get(at + 6)?,
        allowed_cidrs: row.get(at + 7)?,
        metadata: row.get(at + 8)?,
        rate_limit: row.get(at + 9)?,
        rev: row.get(at + 10)?,
    })
}

fn version_cols(row: &rusqlite::Row<'_>) -> rusqlite::Result<VersionCols> {
    Ok(VersionCols {
        record_id: row.get(0)?,
        digest: row.get(1)?,
        prefix: row.get(2)?,
        fingerprint: row.get(3)?,
        created_at: row.get(4)?,
        expires_at: row.get(5)?,
    })
}

fn load_one(c: &Connection, id: &str) -> Result<Option<StoredRecord>, OpError> {
    let rec = c
        .prepare_cached(&format!(
            "SELECT {RECORD_COLS} FROM key_records r WHERE r.id = ?1"
        ))
        .map_err(err)?
        .query_row([id], |r| record_row(r, 0))
        .optional()
        .map_err(err)?;
    let Some(rec) = rec else { return Ok(None) };
    let versions = c
        .prepare_cached(
            "SELECT record_id, digest, prefix, fingerprint, created_at, expires_at \
             FROM key_versions WHERE record_id = ?1",
        )
        .map_err(err)?
        .query_map([id], version_cols)
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    Ok(assemble(vec![rec], versions)?.into_iter().next())
}

fn log_change(tx: &rusqlite::Transaction<'_>, kind: &str, r: &str) -> Result<(), OpError> {
    tx.execute(
        "INSERT INTO changes (kind, ref, at) VALUES (?1, ?2, ?3)",
        params![kind, r, now_unix()],
    )
    .map_err(err)?;
    Ok(())
}

impl SqliteBackend {
    pub fn open(
        path: &Path,
        pool_size: usize,
        timeout: Duration,
        poll: Duration,
        heartbeat: Duration,
    ) -> Result<Self, OpError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(OpError::Unavailable(format!(
                    "cannot create `{}`: directory `{}` does not exist",
                    path.display(),
                    dir.display()
                )));
            }
        }
        let mut first = open_conn(path, timeout)?;
        migrate(&mut first)?;
        let mut conns = vec![Mutex::new(first)];
        for _ in 1..pool_size {
            conns.push(Mutex::new(open_conn(path, timeout)?));
        }
        Ok(Self {
            path: path.to_path_buf(),
            pool: Pool {
                conns,
                next: AtomicUsize::new(0),
                path: path.to_path_buf(),
                timeout,
                attachment: Attachment {
                    file: Mutex::new(FileId::of(path)),
                    ok: AtomicBool::new(true),
                    checked_ms: std::sync::atomic::AtomicU64::new(0),
                    epoch: Instant::now(),
                },
            },
            poll,
            heartbeat,
        })
    }
}

impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn ping(&self) -> Result<(), OpError> {
        self.pool
            .with(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(err))
    }

    fn lookup(&self, digest: &KeyDigest) -> Result<Option<KeyEntry>, OpError> {
        let hex = digest.to_hex();
        let found = self.pool.with(|c| {
            c.prepare_cached(&format!(
                "SELECT v.fingerprint, v.expires_at, {RECORD_COLS} FROM key_versions v \
                 JOIN key_records r ON r.id = v.record_id WHERE v.digest = ?1"
            ))
            .map_err(err)?
            .query_row([&hex], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<i64>>(1)?,
                    record_row(row, 2)?,
                ))
            })
            .optional()
            .map_err(err)
        })?;
        let Some((fingerprint, key_expires_at, rec)) = found else {
            return Ok(None);
        };
        Ok(Some(KeyEntry {
            record: Arc::new(rec.decode()?),
            fingerprint: Arc::from(fingerprint.as_str()),
            key_expires_at,
        }))
    }

    fn load_all(&self) -> Result<Vec<StoredRecord>, OpError> {
        self.pool.with(|c| {
            // One read transaction: records and versions from the same snapshot.
            let tx = c.transaction().map_err(err)?;
            let records = tx
                .prepare(&format!("SELECT {RECORD_COLS} FROM key_records r"))
                .map_err(err)?
                .query_map([], |r| record_row(r, 0))
                .map_err(err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            let versions = tx
                .prepare("SELECT record_id, digest, prefix, fingerprint, created_at, expires_at FROM key_versions")
                .map_err(err)?
                .query_map([], version_cols)
                .map_err(err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            tx.commit().map_err(err)?;
            assemble(records, versions)
        })
    }

    fn load_record(&self, id: &str) -> Result<Option<StoredRecord>, OpError> {
        self.pool.with(|c| {
            let tx = c.transaction().map_err(err)?;
            let r = load_one(&tx, id)?;
            tx.commit().map_err(err)?;
            Ok(r)
        })
    }

    fn insert(&self, rec: &StoredRecord) -> Result<(), OpError> {
        self.insert_batch(std::slice::from_ref(rec))
    }

    fn insert_batch(&self, recs: &[StoredRecord]) -> Result<(), OpError> {
        self.pool.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            for rec in recs {
            let row = RecordRow::encode(&rec.record, rec.rev);
            tx.execute(
                "INSERT OR IGNORE INTO consumers (name, created_at) VALUES (?1, ?2)",
                params![row.consumer, row.created_at],
            )
            .map_err(err)?;
            tx.execute(
                "INSERT INTO key_records (id, consumer, scopes, created_at, expires_at, not_before, \
                 revoked_at, allowed_cidrs, metadata, rate_limit, rev) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    row.id, row.consumer, row.scopes, row.created_at, row.expires_at, row.not_before,
                    row.revoked_at, row.allowed_cidrs, row.metadata, row.rate_limit, row.rev
                ],
            )
            .map_err(err)?;
            for v in &rec.versions {
                tx.execute(
                    "INSERT INTO key_versions (digest, record_id, prefix, fingerprint, created_at, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![v.digest.to_hex(), row.id, v.prefix, v.fingerprint, v.created_at, v.expires_at],
                )
                .map_err(err)?;
            }
            if recs.len() == 1 {
                log_change(&tx, "k", &row.id)?;
            }
            }
            // A bulk import tells replicas to reload once, not per record.
            if recs.len() > 1 {
                log_change(&tx, "r", "")?;
            }
            tx.commit().map_err(err)?;
            if recs.len() > 1000 {
                // Fold a large import into the main file now: readers of a
                // big write-ahead log pay for it on every lookup.
                let _ = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            }
            Ok(())
        })
    }

    fn list(
        &self,
        consumer: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, OpError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.pool.with(|c| {
            let tx = c.transaction().map_err(err)?;
            let ids: Vec<String> = tx
                .prepare_cached(
                    "SELECT id FROM key_records WHERE (?1 IS NULL OR consumer = ?1) \
                     AND (?2 IS NULL OR id > ?2) ORDER BY id LIMIT ?3",
                )
                .map_err(err)?
                .query_map(params![consumer, after, limit], |r| r.get(0))
                .map_err(err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(r) = load_one(&tx, &id)? {
                    out.push(r);
                }
            }
            tx.commit().map_err(err)?;
            Ok(out)
        })
    }

    fn revoke(&self, id: &str, at: i64) -> Result<StoredRecord, OpError> {
        self.pool.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            let n = tx
                .execute(
                    "UPDATE key_records SET revoked_at = ?1, rev = rev + 1 WHERE id = ?2 AND revoked_at IS NULL",
                    params![at, id],
                )
                .map_err(err)?;
            if n > 0 {
                log_change(&tx, "k", id)?;
            }
            let rec = load_one(&tx, id)?.ok_or_else(|| OpError::NotFound(id.to_string()))?;
            tx.commit().map_err(err)?;
            Ok(rec)
        })
    }

    fn rotate(
        &self,
        id: &str,
        new: &VersionRow,
        old_expire_at: i64,
    ) -> Result<StoredRecord, OpError> {
        self.pool.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            let revoked: Option<Option<i64>> = tx
                .query_row("SELECT revoked_at FROM key_records WHERE id = ?1", [id], |r| r.get(0))
                .optional()
                .map_err(err)?;
            match revoked {
                None => return Err(OpError::NotFound(id.to_string())),
                Some(Some(_)) => {
                    return Err(OpError::Conflict(format!("key `{id}` is revoked; create a new one")))
                }
                Some(None) => {}
            }
            tx.execute(
                "UPDATE key_versions SET expires_at = ?1 WHERE record_id = ?2 \
                 AND (expires_at IS NULL OR expires_at > ?1)",
                params![old_expire_at, id],
            )
            .map_err(err)?;
            tx.execute(
                "INSERT INTO key_versions (digest, record_id, prefix, fingerprint, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![new.digest.to_hex(), id, new.prefix, new.fingerprint, new.created_at, new.expires_at],
            )
            .map_err(err)?;
            tx.execute("UPDATE key_records SET rev = rev + 1 WHERE id = ?1", [id])
                .map_err(err)?;
            log_change(&tx, "k", id)?;
            let rec = load_one(&tx, id)?.ok_or_else(|| OpError::NotFound(id.to_string()))?;
            tx.commit().map_err(err)?;
            Ok(rec)
        })
    }

    fn deny_jti(&self, jti: &str, until: i64) -> Result<(), OpError> {
        self.pool.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            tx.execute(
                "INSERT INTO jti_denylist (jti, until) VALUES (?1, ?2) \
                 ON CONFLICT(jti) DO UPDATE SET until = MAX(until, excluded.until)",
                params![jti, until],
            )
            .map_err(err)?;
            log_change(&tx, "j", jti)?;
            tx.commit().map_err(err)
        })
    }

    fn jti_until(&self, jti: &str) -> Result<Option<i64>, OpError> {
        self.pool.with(|c| {
            c.prepare_cached("SELECT until FROM jti_denylist WHERE jti = ?1")
                .map_err(err)?
                .query_row([jti], |r| r.get(0))
                .optional()
                .map_err(err)
        })
    }

    fn load_denylist(&self, now: i64) -> Result<Vec<(String, i64)>, OpError> {
        self.pool.with(|c| {
            c.prepare("SELECT jti, until FROM jti_denylist WHERE until > ?1")
                .map_err(err)?
                .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)
        })
    }

    fn purge_jti(&self, now: i64) -> Result<u64, OpError> {
        self.pool.with(|c| {
            let n = c
                .execute("DELETE FROM jti_denylist WHERE until <= ?1", [now])
                .map_err(err)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn consumers(&self) -> Result<Vec<String>, OpError> {
        self.pool.with(|c| {
            c.prepare("SELECT name FROM consumers ORDER BY name")
                .map_err(err)?
                .query_map([], |r| r.get(0))
                .map_err(err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)
        })
    }

    fn watch(&self, tx: Sender<FeedEvent>) -> Result<Box<dyn FeedGuard>, OpError> {
        let conn = open_conn(&self.path, Duration::from_secs(1))?;
        let stop = Arc::new(AtomicBool::new(false));
        let feed = Feed {
            file: FileId::of(&self.path),
            path: self.path.clone(),
            conn,
            tx,
            stop: Arc::clone(&stop),
            poll: self.poll,
            heartbeat: self.heartbeat,
        };
        std::thread::Builder::new()
            .name("portcullis-sqlite-feed".into())
            .spawn(move || feed.run())
            .map_err(|e| OpError::Unavailable(format!("cannot start the sqlite feed: {e}")))?;
        Ok(Box::new(StopOnDrop(stop)))
    }
}

struct StopOnDrop(Arc<AtomicBool>);

impl FeedGuard for StopOnDrop {}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

struct Feed {
    path: PathBuf,
    /// The file `conn` is open on.
    file: Option<FileId>,
    conn: Connection,
    tx: Sender<FeedEvent>,
    stop: Arc<AtomicBool>,
    poll: Duration,
    heartbeat: Duration,
}

impl Feed {
    fn head(&self) -> Result<i64, OpError> {
        self.conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| {
                r.get(0)
            })
            .map_err(err)
    }

    /// Polled every `poll` (10 ms by default): the statement is prepared
    /// once per connection and kept in its cache, not parsed on every poll.
    fn data_version(&self) -> Result<i64, OpError> {
        self.conn
            .prepare_cached("PRAGMA data_version")
            .map_err(err)?
            .query_row([], |r| r.get(0))
            .map_err(err)
    }

    /// Sends the changes after `last`; returns the new position, or `None`
    /// when the log no longer reaches back to `last` (pruned): resync.
    fn pull(&self, last: i64) -> Result<Option<i64>, OpError> {
        let rows: Vec<(i64, String, String)> = self
            .conn
            .prepare_cached("SELECT seq, kind, ref FROM changes WHERE seq > ?1 ORDER BY seq")
            .map_err(err)?
            .query_map([last], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        if rows.first().is_some_and(|(seq, _, _)| *seq != last + 1) {
            return Ok(None);
        }
        let mut pos = last;
        for (seq, kind, r) in rows {
            let ev = match kind.as_str() {
                "j" => FeedEvent::Jti(r),
                "r" => FeedEvent::Resync,
                _ => FeedEvent::Record(r),
            };
            if self.tx.send(ev).is_err() {
                return Ok(Some(pos));
            }
            pos = seq;
        }
        Ok(Some(pos))
    }

    fn prune(&self) {
        let _ = self.conn.execute(
            "DELETE FROM changes WHERE at < ?1 AND seq < (SELECT MAX(seq) FROM changes)",
            [now_unix() - CHANGE_LOG_KEEP_SECS],
        );
    }

    /// Whether `conn` still reads the file at `path`; moves it to a file
    /// that replaced the old one. While the file is gone the feed proves
    /// nothing alive, so a replica goes stale instead of serving on.
    fn on_current_file(&mut self) -> bool {
        match FileId::of(&self.path) {
            None => false,
            Some(id) if Some(id) == self.file => true,
            Some(id) => match open_existing(&self.path, Duration::from_secs(1)) {
                Ok(c) => {
                    self.conn = c;
                    self.file = Some(id);
                    true
                }
                Err(_) => false,
            },
        }
    }

    fn run(mut self) {
        // Position first, then resync: every change after the position
        // arrives as an event, so nothing falls between load and feed.
        let mut state: Option<(i64, i64)> = None; // (last seq, data_version)
        let mut last_alive = Instant::now();
        let mut last_prune = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            let before = self.file;
            if !self.on_current_file() || self.file != before {
                // Gone, or a different file: start over (a resync) once it is back.
                state = None;
                if self.file == before {
                    std::thread::sleep(self.poll);
                    continue;
                }
            }
            match state {
                None => {
                    if let (Ok(head), Ok(dv)) = (self.head(), self.data_version()) {
                        state = Some((head, dv));
                        if self.tx.send(FeedEvent::Resync).is_err() {
                            return;
                        }
                    }
                }
                Some((last, dv)) => match self.data_version() {
                    Ok(now_dv) if now_dv == dv => {}
                    Ok(now_dv) => match self.pull(last) {
                        Ok(Some(pos)) => state = Some((pos, now_dv)),
                        Ok(None) | Err(_) => state = None,
                    },
                    Err(_) => state = None,
                },
            }
            if state.is_some() && last_alive.elapsed() >= self.heartbeat {
                last_alive = Instant::now();
                if self.tx.send(FeedEvent::Alive).is_err() {
                    return;
                }
            }
            if last_prune.elapsed() >= Duration::from_secs(3600) {
                last_prune = Instant::now();
                self.prune();
            }
            std::thread::sleep(self.poll);
        }
    }
}
