//! The JWKS URL fetcher: keeps every `jwks_url` key set of the engine's
//! registry (`portcullis_engine::credential::jwt::registry()`) current.
//!
//! One task walks the registry. Each URL is fetched over HTTPS (rustls;
//! webpki roots in production, injectable roots for tests), with a timeout
//! and a body size cap, and refetched:
//! - on its schedule: the configured `refresh`, or sooner if the response's
//!   `Cache-Control: max-age` says so (bounded to 30 s .. 24 h);
//! - when a verifier met an unknown `kid` (the engine records the miss and
//!   wakes this task), at most once per `refetch_min_interval`, so varying
//!   `kid`s cannot make us fetch per request;
//! - while no set was ever loaded, with a backoff from 1 s.
//!
//! A failed fetch or a body that does not parse keeps the last good set.
//! Wired in `serve`: one refresher task per process, stopped with the server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use portcullis_engine::credential::jwt::{registry, RemoteKeys};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// Which certificate authorities the fetcher trusts.
#[derive(Clone)]
pub enum Roots {
    /// The Mozilla root set compiled in (webpki-roots).
    WebPki,
    /// Only these PEM certificates (tests, private PKI).
    Pem(Vec<u8>),
}

/// Fetcher settings; [`FetcherConfig::default`] is the production one.
#[derive(Clone)]
pub struct FetcherConfig {
    pub roots: Roots,
    /// Whole-request timeout (connect, TLS, headers and body).
    pub timeout: Duration,
    /// Largest JWKS body accepted.
    pub max_body: usize,
    /// Bounds applied to a server's `max-age`.
    pub min_max_age: Duration,
    pub max_max_age: Duration,
    /// First retry delay while a URL has never loaded (doubles, capped).
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Least time between two fetches of one URL, whatever a policy says
    /// (a zero `refresh` or `refetch_min_interval` must not become a loop).
    pub min_interval: Duration,
}

impl Default for FetcherConfig {
    fn default() -> Self {
        Self {
            roots: Roots::WebPki,
            timeout: Duration::from_secs(10),
            max_body: 1 << 20,
            min_max_age: Duration::from_secs(30),
            max_max_age: Duration::from_secs(24 * 3600),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            min_interval: Duration::from_secs(1),
        }
    }
}

/// Starts the fetcher with production settings; it stops when `shutdown`
/// becomes `true` (or its sender is dropped).
pub fn spawn_jwks_refresher(shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    spawn_jwks_refresher_with(FetcherConfig::default(), shutdown)
}

/// Starts the fetcher with these settings.
pub fn spawn_jwks_refresher_with(
    cfg: FetcherConfig,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let notify = Arc::new(Notify::new());
    let waker = Arc::clone(&notify);
    registry().set_waker(move || waker.notify_one());
    tokio::spawn(run(cfg, notify, shutdown))
}

/// Why a fetch failed (logged; the last good set stays).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Connection, TLS, timeout or protocol failure.
    #[error("request failed: {0}")]
    Http(String),
    /// The server answered with a non-200 status.
    #[error("status {0}")]
    Status(u16),
    /// The body is larger than the configured cap.
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    /// The body is not a usable JWK set.
    #[error("bad jwk set: {0}")]
    Parse(String),
    /// The HTTP client could not be built (bad root certificates).
    #[error("client setup: {0}")]
    Setup(String),
}

/// Builds the HTTPS client.
pub fn client(cfg: &FetcherConfig) -> Result<reqwest::Client, FetchError> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::limited(3))
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout)
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")));
    if let Roots::Pem(pem) = &cfg.roots {
        b = b.tls_built_in_root_certs(false);
        for cert in reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| FetchError::Setup(e.to_string()))?
        {
            b = b.add_root_certificate(cert);
        }
    }
    b.build().map_err(|e| FetchError::Setup(e.to_string()))
}

/// A fetched body and what its `Cache-Control` asked for.
#[derive(Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    /// `max-age` (0 for `no-cache`/`no-store`), if any.
    pub max_age: Option<Duration>,
}

/// GETs a JWKS, refusing non-200 answers and bodies over `max_body`.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    max_body: usize,
) -> Result<Fetched, FetchError> {
    let mut resp = client
        .get(url)
        .header(
            reqwest::header::ACCEPT,
            "application/json, application/jwk-set+json",
        )
        .send()
        .await
        .map_err(|e| FetchError::Http(e.without_url().to_string()))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(FetchError::Status(resp.status().as_u16()));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(max_body).unwrap_or(u64::MAX))
    {
        return Err(FetchError::TooLarge(max_body));
    }
    let max_age = resp
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_max_age);
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| FetchError::Http(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > max_body {
            return Err(FetchError::TooLarge(max_body));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched { body, max_age })
}

/// `max-age` from a `Cache-Control` value; `no-store`/`no-cache` mean 0.
pub fn parse_max_age(v: &str) -> Option<Duration> {
    let mut out = None;
    for d in v.split(',').map(str::trim) {
        let lower = d.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(n) = lower.strip_prefix("max-age=") {
            out = n
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    out
}

/// When to fetch again after a success: the configured refresh, or the
/// server's `max-age` (bounded) if sooner.
pub fn next_refresh(refresh: Duration, max_age: Option<Duration>, cfg: &FetcherConfig) -> Duration {
    let d = match max_age {
        Some(a) => refresh.min(a.clamp(cfg.min_max_age, cfg.max_max_age)),
        None => refresh,
    };
    d.max(cfg.min_interval)
}

#[derive(Default)]
struct UrlState {
    /// When the next scheduled fetch is due (`None`: now).
    due: Option<Instant>,
    last_fetch: Option<Instant>,
    backoff: Option<Duration>,
}

async fn run(cfg: FetcherConfig, notify: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    let client = match client(&cfg) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "jwks fetcher cannot start");
            return;
        }
    };
    let mut state: HashMap<String, UrlState> = HashMap::new();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let now = Instant::now();
        let mut by_url: HashMap<String, Vec<Arc<RemoteKeys>>> = HashMap::new();
        for e in registry().entries() {
            by_url.entry(e.url().to_string()).or_default().push(e);
        }
        let mut wake_at: Option<Instant> = None;
        for (url, entries) in &by_url {
            let st = state.entry(url.clone()).or_default();
            // Floors: a zero interval in a policy must not become a fetch loop.
            let refresh = entries
                .iter()
                .map(|e| e.refresh())
                .min()
                .unwrap_or(DEFAULT_REFRESH)
                .max(cfg.min_interval);
            let min_gap = entries
                .iter()
                .map(|e| e.refetch_min_interval())
                .min()
                .unwrap_or(DEFAULT_REFRESH)
                .max(cfg.min_interval);
            let scheduled = st.due.is_none_or(|d| d <= now);
            let missed = entries.iter().any(|e| e.miss_pending());
            let miss_due = missed && st.last_fetch.is_none_or(|t| now >= t + min_gap);
            if !(scheduled || miss_due) {
                let mut next = st.due.unwrap_or(now);
                if missed {
                    if let Some(t) = st.last_fetch {
                        next = next.min(t + min_gap);
                    }
                }
                wake_at = Some(wake_at.map_or(next, |w| w.min(next)));
                continue;
            }
            for e in entries {
                e.take_miss();
            }
            st.last_fetch = Some(now);
            let outcome = match fetch(&client, url, cfg.max_body).await {
                Ok(f) => install(entries, &f.body).map(|()| f.max_age),
                Err(e) => Err(e),
            };
            let after = Instant::now();
            match outcome {
                Ok(max_age) => {
                    st.backoff = None;
                    st.due = Some(after + next_refresh(refresh, max_age, &cfg));
                    tracing::debug!(url = %url, "jwks fetched");
                }
                Err(err) => {
                    let loaded = entries.iter().all(|e| e.has_keys());
                    let delay = if loaded {
                        // Keep the last good set; try again within the refresh period.
                        refresh.min(cfg.max_backoff)
                    } else {
                        let b = st
                            .backoff
                            .map_or(cfg.initial_backoff, |b| (b * 2).min(cfg.max_backoff));
                        st.backoff = Some(b);
                        b.min(refresh)
                    };
                    st.due = Some(after + delay);
                    tracing::warn!(url = %url, error = %err, keys_loaded = loaded, "jwks fetch failed");
                }
            }
            let next = st.due.unwrap_or(after);
            wake_at = Some(wake_at.map_or(next, |w| w.min(next)));
        }
        let sleep = async {
            match wake_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = notify.notified() => {}
            r = shutdown.changed() => {
                if r.is_err() {
                    return;
                }
            }
        }
    }
}

fn install(entries: &[Arc<RemoteKeys>], body: &[u8]) -> Result<(), FetchError> {
    // Each entry binds keys to its own algorithms; one failing does not stop the others.
    let mut first_err = None;
    for e in entries {
        if let Err(msg) = e.install_jwks(body) {
            first_err.get_or_insert(FetchError::Parse(msg));
        }
    }
    first_err.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::SystemTime;

    use portcullis_engine::credential::jwt::testing::sign;
    use portcullis_engine::credential::jwt::JwtVerifier;
    use portcullis_engine::credential::Outcome;
    use portcullis_engine::policy::{JwtAlgorithm, JwtDef, JwtKeySource, Source, Span, Spanned};
    use portcullis_engine::{Reason, Request};
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    // One fetcher at a time: the registry and its waker are process-wide.
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    const KEYS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../engine/tests/data/jwt/keys/"
    );

    fn key_file(name: &str) -> Vec<u8> {
        std::fs::read(format!("{KEYS}{name}")).unwrap()
    }

    fn jwks(keys: &[(&str, &str)]) -> Vec<u8> {
        let list: Vec<serde_json::Value> = keys
            .iter()
            .map(|(name, kid)| {
                let mut k: serde_json::Value =
                    serde_json::from_slice(&key_file(&format!("{name}.jwk.json"))).unwrap();
                k["kid"] = json!(kid);
                k
            })
            .collect();
        serde_json::to_vec(&json!({ "keys": list })).unwrap()
    }

    #[derive(Clone)]
    struct Behaviour {
        status: u16,
        body: Vec<u8>,
        cache_control: Option<String>,
        hang: bool,
    }

    struct TestServer {
        url: String,
        ca_pem: Vec<u8>,
        behaviour: Arc<Shared<Behaviour>>,
        hits: Arc<AtomicUsize>,
        connections: Arc<AtomicUsize>,
        task: JoinHandle<()>,
    }

    /// A value shared with the server task; the lock is held only to copy
    /// or replace it, never across an await.
    struct Shared<T>(std::sync::Mutex<T>);

    impl<T: Clone> Shared<T> {
        fn new(v: T) -> Self {
            Self(std::sync::Mutex::new(v))
        }
        fn get(&self) -> T {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }
        fn set(&self, v: T) {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = v;
        }
    }

    async fn start_server(b: Behaviour) -> TestServer {
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let ca_pem = ck.cert.pem().into_bytes();
        let cert = ck.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://127.0.0.1:{}/jwks.json",
            listener.local_addr().unwrap().port()
        );
        let behaviour = Arc::new(Shared::new(b));
        let hits = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (bh, h, c) = (
            Arc::clone(&behaviour),
            Arc::clone(&hits),
            Arc::clone(&connections),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (acceptor, bh, h) = (acceptor.clone(), Arc::clone(&bh), Arc::clone(&h));
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16384 {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let b = bh.get();
                    if b.hang {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                        b.status,
                        b.body.len()
                    );
                    if let Some(cc) = &b.cache_control {
                        head.push_str(&format!("Cache-Control: {cc}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = tls.write_all(head.as_bytes()).await;
                    let _ = tls.write_all(&b.body).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        TestServer {
            url,
            ca_pem,
            behaviour,
            hits,
            connections,
            task,
        }
    }

    fn ok_body(body: Vec<u8>) -> Behaviour {
        Behaviour {
            status: 200,
            body,
            cache_control: None,
            hang: false,
        }
    }

    fn test_cfg(server: &TestServer) -> FetcherConfig {
        FetcherConfig {
            roots: Roots::Pem(server.ca_pem.clone()),
            timeout: Duration::from_secs(2),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(100),
            min_interval: Duration::from_millis(50),
            ..FetcherConfig::default()
        }
    }

    fn verifier(url: &str, refresh: Duration, refetch_min: Duration) -> JwtVerifier {
        let def = JwtDef {
            sources: vec![Source::Bearer],
            issuer: None,
            audience: vec![],
            algorithms: vec![JwtAlgorithm::ES256],
            keys: Spanned::new(
                JwtKeySource::JwksUrl {
                    url: url.into(),
                    refresh,
                    refetch_min_interval: refetch_min,
                },
                Span::default(),
            ),
            leeway: Duration::from_secs(30),
            max_lifetime: None,
            require_claims: vec![],
            scopes_claim: None,
            principal_claim: "sub".into(),
            typ: None,
            max_token_bytes: 8192,
            cache_size: 0,
        };
        JwtVerifier::new(&def, std::path::Path::new(".")).unwrap()
    }

    fn token(kid: &str, key: &str) -> Request {
        let exp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let t = sign(
            JwtAlgorithm::ES256,
            &key_file(&format!("{key}.key.pem")),
            Some(kid),
            None,
            &json!({"sub": "u", "exp": exp}),
        )
        .unwrap();
        let mut r = Request::default();
        r.headers.append("authorization", format!("Bearer {t}"));
        r
    }

    fn entry(url: &str) -> Arc<RemoteKeys> {
        registry()
            .entries()
            .into_iter()
            .find(|e| e.url() == url)
            .unwrap()
    }

    async fn eventually(f: impl Fn() -> bool) -> bool {
        for _ in 0..250 {
            if f() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        f()
    }

    async fn stop(tx: watch::Sender<bool>, handle: JoinHandle<()>, server: TestServer) {
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .unwrap()
            .unwrap();
        server.task.abort();
    }

    #[tokio::test]
    async fn fetches_over_https_and_unblocks_the_verifier() {
        let _g = SERIAL.lock().await;
        let server = start_server(ok_body(jwks(&[("ec256", "a")]))).await;
        let v = verifier(
            &server.url,
            Duration::from_secs(3600),
            Duration::from_secs(30),
        );
        let req = token("a", "ec256");
        assert!(matches!(
            v.verify(&req, SystemTime::now()),
            Outcome::Invalid(Reason::StoreUnavailable, _)
        ));
        let (tx, rx) = watch::channel(false);
        let handle = spawn_jwks_refresher_with(test_cfg(&server), rx);
        let e = entry(&server.url);
        assert!(eventually(|| e.has_keys()).await);
        assert!(matches!(
            v.verify(&req, SystemTime::now()),
            Outcome::Valid(_)
        ));
        assert_eq!(server.hits.load(Ordering::SeqCst), 1);
        stop(tx, handle, server).await;
    }

    #[tokio::test]
    async fn unknown_kid_refetch_is_rate_limited() {
        let _g = SERIAL.lock().await;
        let server = start_server(ok_body(jwks(&[("ec256", "a")]))).await;
        let v = verifier(
            &server.url,
            Duration::from_secs(3600),
            Duration::from_millis(300),
        );
        let (tx, rx) = watch::channel(false);
        let handle = spawn_jwks_refresher_with(test_cfg(&server), rx);
        let e = entry(&server.url);
        assert!(eventually(|| e.has_keys()).await);
        // The issuer adds key `b`; a token using it triggers a refetch.
        server
            .behaviour
            .set(ok_body(jwks(&[("ec256", "a"), ("ec256b", "b")])));
        let start = Instant::now();
        let with_b = token("b", "ec256b");
        assert!(matches!(
            v.verify(&with_b, SystemTime::now()),
            Outcome::Invalid(Reason::CredentialInvalid, _)
        ));
        assert!(
            eventually(|| matches!(v.verify(&with_b, SystemTime::now()), Outcome::Valid(_))).await
        );
        // Not before refetch_min_interval after the first fetch.
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(server.hits.load(Ordering::SeqCst), 2);
        // A storm of unknown kids for a second: at most one fetch per 300 ms.
        let storm = Instant::now();
        let mut i = 0;
        while storm.elapsed() < Duration::from_secs(1) {
            i += 1;
            let _ = v.verify(&token(&format!("x{i}"), "ec256"), SystemTime::now());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let hits = server.hits.load(Ordering::SeqCst);
        assert!(hits <= 2 + 5, "{hits} fetches for {i} unknown kids");
        assert!(hits >= 3, "misses never caused a refetch");
        stop(tx, handle, server).await;
    }

    #[tokio::test]
    async fn max_age_is_honoured_and_failures_keep_the_last_good_set() {
        let _g = SERIAL.lock().await;
        let mut b = ok_body(jwks(&[("ec256", "a")]));
        b.cache_control = Some("public, max-age=0".into());
        let server = start_server(b).await;
        let v = verifier(
            &server.url,
            Duration::from_secs(3600),
            Duration::from_secs(30),
        );
        let cfg = FetcherConfig {
            min_max_age: Duration::from_millis(100),
            ..test_cfg(&server)
        };
        let (tx, rx) = watch::channel(false);
        let handle = spawn_jwks_refresher_with(cfg, rx);
        let e = entry(&server.url);
        // max-age (bounded below at 100 ms here) beats the 1 h refresh.
        assert!(eventually(|| server.hits.load(Ordering::SeqCst) >= 3).await);
        let req = token("a", "ec256");
        assert!(matches!(
            v.verify(&req, SystemTime::now()),
            Outcome::Valid(_)
        ));
        for bad in [
            Behaviour {
                status: 500,
                body: b"oops".to_vec(),
                cache_control: None,
                hang: false,
            },
            ok_body(b"not json".to_vec()),
            ok_body(jwks(&[("ec256", "a"), ("ec256b", "a")])),
        ] {
            server.behaviour.set(bad);
            let seen = server.hits.load(Ordering::SeqCst);
            assert!(eventually(|| server.hits.load(Ordering::SeqCst) >= seen + 2).await);
            assert!(e.has_keys());
            assert!(matches!(
                v.verify(&req, SystemTime::now()),
                Outcome::Valid(_)
            ));
        }
        stop(tx, handle, server).await;
    }

    #[tokio::test]
    async fn oversized_bodies_are_refused() {
        let _g = SERIAL.lock().await;
        let mut body = jwks(&[("ec256", "a")]);
        body.truncate(body.len() - 1);
        body.extend_from_slice(format!(r#","pad":"{}"}}"#, "x".repeat(4096)).as_bytes());
        let server = start_server(ok_body(body)).await;
        let _v = verifier(
            &server.url,
            Duration::from_secs(3600),
            Duration::from_secs(30),
        );
        let cfg = FetcherConfig {
            max_body: 1024,
            ..test_cfg(&server)
        };
        let (tx, rx) = watch::channel(false);
        let handle = spawn_jwks_refresher_with(cfg, rx);
        let e = entry(&server.url);
        // Retried with backoff, never installed.
        assert!(eventually(|| server.hits.load(Ordering::SeqCst) >= 3).await);
        assert!(!e.has_keys());
        stop(tx, handle, server).await;
    }

    #[tokio::test]
    async fn untrusted_certificates_are_refused() {
        let _g = SERIAL.lock().await;
        let server = start_server(ok_body(jwks(&[("ec256", "a")]))).await;
        let _v = verifier(
            &server.url,
            Duration::from_secs(3600),
            Duration::from_secs(30),
        );
        // Production roots: a self-signed certificate is not trusted.
        let cfg = FetcherConfig {
            roots: Roots::WebPki,
            ..test_cfg(&server)
        };
        let (tx, rx) = watch::channel(false);
        let handle = spawn_jwks_refresher_with(cfg, rx);
        let e = entry(&server.url);
        assert!(eventually(|| server.connections.load(Ordering::SeqCst) >= 2).await);
        assert_eq!(
            server.hits.load(Ordering::SeqCst),
            0,
            "a request passed an untrusted handshake"
        );
        assert!(!e.has_keys());
        stop(tx, handle, server).await;
    }

    #[tokio::test]
    async fn a_hanging_server_times_out_and_is_retried() {
        let _g = SERIAL.lock().await;
        let mut b = ok_body(jwks(&[("ec256", "a")]));
        b.hang = true;
        let server = start_server(b).await;
        let _v = verifier(
            &server.url,
            Duration::from_secs(3600),
            Duration::from_secs(30),
        );
        let cfg = FetcherConfig {
            timeout: Duration::from_millis(300),
            ..test_cfg(&server)
        };
        let (tx, rx) = watch::channel(false);
        let handle = spawn_jwks_refresher_with(cfg, rx);
        let e = entry(&server.url);
        assert!(eventually(|| server.hits.load(Ordering::SeqCst) >= 1).await);
        server.behaviour.set(ok_body(jwks(&[("ec256", "a")])));
        assert!(eventually(|| e.has_keys()).await);
        stop(tx, handle, server).await;
    }

    #[test]
    fn cache_control_parsing() {
        assert_eq!(parse_max_age("max-age=60"), Some(Duration::from_secs(60)));
        assert_eq!(
            parse_max_age("public, MAX-AGE=3600, must-revalidate"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(parse_max_age("private"), None);
        assert_eq!(parse_max_age("max-age=x"), None);
    }

    #[test]
    fn max_age_is_bounded_between_30s_and_24h() {
        let cfg = FetcherConfig::default();
        let day = Duration::from_secs(86_400);
        let refresh = Duration::from_secs(300);
        assert_eq!(next_refresh(refresh, None, &cfg), refresh);
        assert_eq!(
            next_refresh(refresh, Some(Duration::ZERO), &cfg),
            Duration::from_secs(30)
        );
        assert_eq!(
            next_refresh(refresh, Some(Duration::from_secs(60)), &cfg),
            Duration::from_secs(60)
        );
        assert_eq!(next_refresh(refresh, Some(day * 7), &cfg), refresh);
        assert_eq!(next_refresh(day * 30, Some(day * 7), &cfg), day);
        assert_eq!(
            next_refresh(Duration::ZERO, None, &cfg),
            Duration::from_secs(1)
        );
    }
}
