//! Test support shared by the store tests (in-crate and integration):
//! real-service URLs from the environment, isolated per test, and a TCP
//! proxy that can sever and restore connections to a real service.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The URL in `var`, or `None` after saying the test is skipped. With
/// `CI=true` a missing variable is an error: CI must run these tests.
pub fn service_url(var: &str) -> Result<Option<String>, String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(Some(v)),
        _ if std::env::var("CI").as_deref() == Ok("true") => Err(format!(
            "{var} is not set, and CI=true requires the real service"
        )),
        _ => {
            eprintln!("skipped: {var} is not set");
            Ok(None)
        }
    }
}

/// A name unique to this process and call, for schemas and prefixes.
pub fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "t_{tag}_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        nanos % 100_000
    )
}

/// Appends query options to a URL that may already have some.
pub fn with_opts(url: &str, opts: &str) -> String {
    if opts.is_empty() {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&{opts}")
    } else {
        format!("{url}?{opts}")
    }
}

/// A PostgreSQL schema that exists for one test and is dropped after.
pub struct PgSchema {
    pub base: String,
    pub name: String,
}

impl PgSchema {
    pub fn new(base: &str, tag: &str) -> Self {
        PgSchema {
            base: base.to_string(),
            name: unique(tag),
        }
    }

    /// A store URL on this schema, with extra options.
    pub fn url(&self, opts: &str) -> String {
        with_opts(
            &self.base,
            &format!(
                "schema={}{}{}",
                self.name,
                if opts.is_empty() { "" } else { "&" },
                opts
            ),
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let base = self.base.split('?').next().unwrap_or("").to_string();
        let name = self.name.clone();
        // Own thread and runtime: Drop may run inside a test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let (c, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                let h = tokio::spawn(conn);
                let _ = c
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await;
                drop(c);
                let _ = h.await;
                Some(())
            })
        })
        .join();
    }
}

/// A Redis key prefix for one test, its keys deleted after.
pub struct RedisPrefix {
    pub base: String,
    pub prefix: String,
}

impl RedisPrefix {
    pub fn new(base: &str, tag: &str) -> Self {
        RedisPrefix {
            base: base.to_string(),
            prefix: format!("{}:", unique(tag)),
        }
    }

    pub fn url(&self, opts: &str) -> String {
        with_opts(
            &self.base,
            &format!(
                "prefix={}{}{}",
                self.prefix,
                if opts.is_empty() { "" } else { "&" },
                opts
            ),
        )
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.base.split('?').next().unwrap_or("")) else {
            return;
        };
        let Ok(mut c) = client.get_connection() else {
            return;
        };
        let pattern = format!("{}*", self.prefix);
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut c)
            .unwrap_or_default();
        for chunk in keys.chunks(500) {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut c);
        }
    }
}

/// A TCP proxy in front of a real service, on its own runtime: `sever`
/// closes every connection and refuses new ones; `restore` accepts again.
pub struct Proxy {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::new(Mutex::new(Vec::new()));
        let (o, cs) = (Arc::clone(&open), Arc::clone(&conns));
        rt.spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let h = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut g = cs.lock();
                g.retain(|h| !h.is_finished());
                g.push(h);
            }
        });
        Ok(Proxy {
            addr,
            open,
            conns,
            rt: Some(rt),
        })
    }

    /// Closes every proxied connection and refuses new ones.
    pub fn sever(&self) {
        self.open.store(false, Ordering::SeqCst);
        for h in self.conns.lock().drain(..) {
            h.abort();
        }
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.sever();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// `host:port` of a `scheme://[user@]host:port/...` URL.
pub fn url_addr(url: &str) -> Option<SocketAddr> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let hostport = authority.rsplit('@').next()?;
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else if url.starts_with("redis") {
        format!("{hostport}:6379")
    } else {
        format!("{hostport}:5432")
    };
    use std::net::ToSocketAddrs;
    hostport.to_socket_addrs().ok()?.next()
}

/// The URL with its `host:port` replaced by `addr`.
pub fn via(url: &str, addr: SocketAddr) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let user = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    Some(format!("{scheme}://{user}{addr}{tail}"))
}

/// Polls `f` until it is true or `limit` passes; true if it became true.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}
