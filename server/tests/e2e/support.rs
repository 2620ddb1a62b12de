//! Shared pieces: a policy and keys in a temp dir, the real `portcullis`
//! binary on free ports, a small HTTP client, an upstream that echoes what
//! it received, and gateway binaries lookup.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis_engine::credential::apikey::{fingerprint, generate, KeyDigest};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// The SPEC section 2 example, adapted: one API-key credential, scoped
/// routes, a tight rate limit, a public health route.
pub const POLICY: &str = r#"version: 1
settings:
  unmatched: deny
  identity_headers:
    principal: x-auth-principal
    consumer: x-auth-consumer
    scopes: x-auth-scopes
    credential: x-auth-credential
credentials:
  partner_key:
    type: api_key
    in: [header:x-api-key, bearer]
    prefixes: [pk_live_, pk_test_]
rate_limits:
  tight: {limit: 1, per: 1h, burst: 1, key: consumer}
routes:
  - name: charges.read
    match:
      host: api.example.com
      methods: [GET, HEAD]
      path: /v1/charges/{id}
    require: partner_key
    scopes: {all_of: [charges:read]}
  - name: refunds.create
    match: {methods: [POST], path: /v1/refunds}
    require: partner_key
    scopes: {all_of: [refunds:write]}
  - name: limited
    match: {path: "/v1/limited/**"}
    require: partner_key
    rate_limit: tight
  - name: open
    match: {path: "/public/**"}
    require: public
"#;

/// Keys of the fixture (plaintext, for tests only; the server sees digests).
pub struct Keys {
    /// consumer `acme`, scopes `charges:read`.
    pub read: String,
    /// consumer `acme`, no scopes.
    pub noscope: String,
    /// consumer `limited`, for the rate-limited route.
    pub limited: String,
    /// consumer `netco`, only from 198.51.100.0/24.
    pub cidr: String,
    /// consumer `writer`, scopes `refunds:write charges:write`.
    pub write: String,
}

pub struct Fixture {
    pub dir: TempDir,
    pub policy: PathBuf,
    pub keys_file: PathBuf,
    pub keys: Keys,
}

fn record(id: &str, consumer: &str, scopes: &[&str], cidrs: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "id": id, "consumer": consumer, "scopes": scopes, "created_at": 1_700_000_000,
        "expires_at": null, "not_before": null, "revoked_at": null,
        "allowed_cidrs": cidrs,
    })
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_policy(POLICY)
    }

    pub fn with_policy(policy: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let policy_path = dir.path().join("policy.yaml");
        std::fs::write(&policy_path, policy).unwrap();
        let keys = Keys {
            read: generate("pk_test_").unwrap(),
            noscope: generate("pk_test_").unwrap(),
            limited: generate("pk_live_").unwrap(),
            cidr: generate("pk_live_").unwrap(),
            write: generate("pk_live_").unwrap(),
        };
        let entries: Vec<serde_json::Value> = [
            (&keys.read, record("key_read", "acme", &["charges:read"], &[])),
            (&keys.noscope, record("key_noscope", "acme", &[], &[])),
            (&keys.limited, record("key_limited", "limited", &[], &[])),
            (
                &keys.cidr,
                record("key_cidr", "netco", &["charges:read"], &["198.51.100.0/24"]),
            ),
            (
                &keys.write,
                record("key_write", "writer", &["refunds:write", "charges:write"], &[]),
            ),
        ]
        .into_iter()
        .map(|(k, r)| {
            serde_json::json!({"sha256": KeyDigest::of(k).to_hex(), "fingerprint": fingerprint(k), "record": r})
        })
        .collect();
        let keys_file = dir.path().join("keys.json");
        std::fs::write(
            &keys_file,
            serde_json::json!({ "keys": entries }).to_string(),
        )
        .unwrap();
        Self {
            dir,
            policy: policy_path,
            keys_file,
            keys,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Every plaintext key of the fixture.
    pub fn all_keys(&self) -> Vec<&str> {
        let k = &self.keys;
        vec![&k.read, &k.noscope, &k.limited, &k.cidr, &k.write]
    }
}

/// Replaces a file atomically (write a sibling, rename over), so a watcher
/// or a reload never reads half a file.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A running `portcullis serve`.
pub struct Portcullis {
    child: Child,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    log_path: PathBuf,
    stdout: Arc<Mutex<String>>,
}

#[derive(Default)]
pub struct ServeOptions<'a> {
    pub policy: Option<&'a Path>,
    pub args: Vec<String>,
    pub admin_token: Option<&'a str>,
    /// Environment for the server process (`RUST_LOG` is cleared unless set here).
    pub env: Vec<(String, String)>,
    /// Replaces the default `--store sqlite://DIR/keys.db`.
    pub store: Option<String>,
}

impl Portcullis {
    pub fn start(fx: &Fixture) -> Self {
        Self::start_with(fx, ServeOptions::default())
    }

    pub fn start_with(fx: &Fixture, opts: ServeOptions<'_>) -> Self {
        match Self::try_start(fx, opts) {
            Ok(p) => p,
            Err(e) => panic!("portcullis did not start: {e}"),
        }
    }

    /// Starts the server; the error carries its stderr when it exits instead.
    pub fn try_start(fx: &Fixture, opts: ServeOptions<'_>) -> Result<Self, String> {
        let log_path = fx.dir.path().join(format!(
            "portcullis-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        cmd.arg("serve")
            .arg("--policy")
            .arg(opts.policy.unwrap_or(&fx.policy))
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--store")
            .arg(
                opts.store
                    .clone()
                    .unwrap_or_else(|| format!("sqlite://{}", fx.path("keys.db").display())),
            )
            .arg("--static-keys")
            .arg(&fx.keys_file)
            .args(if opts.args.iter().any(|a| a == "--log-sample-allow") {
                &[][..]
            } else {
                &["--log-sample-allow", "1.0"][..]
            })
            .args(&opts.args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
        match opts.admin_token {
            Some(t) => cmd.env("PORTCULLIS_ADMIN_TOKEN", t),
            None => cmd.env_remove("PORTCULLIS_ADMIN_TOKEN"),
        };
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let captured = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&captured);
        // Keeps reading after startup: a closed pipe would fail the server's writes.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                {
                    let mut all = sink.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
                let _ = tx.send(line);
            }
        });
        let want_admin = opts.admin_token.is_some();
        let mut addr = None;
        let mut admin = None;
        while addr.is_none() || (want_admin && admin.is_none()) {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("listening on http://") {
                        addr = Some(a.parse().unwrap());
                    } else if let Some(a) = line.strip_prefix("admin listening on http://") {
                        admin = Some(a.parse().unwrap());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(std::fs::read_to_string(&log_path).unwrap_or_default());
                }
            }
        }
        Ok(Self {
            child,
            addr: addr.unwrap(),
            admin,
            log_path,
            stdout: captured,
        })
    }

    /// Everything the server wrote to stdout so far (the faults binary's log check).
    #[allow(dead_code)]
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits (10 s at most) until the logs contain `needle`; logs are
    /// written by a background thread.
    pub fn wait_log(&self, needle: &str) -> String {
        for _ in 0..500 {
            let logs = self.logs();
            if logs.contains(needle) {
                return logs;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("`{needle}` never logged:\n{}", self.logs());
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit (after a signal); `None` on timeout.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Portcullis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads until the peer closes (or `within` passes): (bytes, closed?).
pub async fn read_until_close(s: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return (out, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status of the first response in `bytes`, if any.
pub fn status_of(bytes: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Sends raw bytes; returns the status that came back (`None`: closed
/// without an answer) and whether the server closed the connection.
pub async fn raw_closed(addr: SocketAddr, bytes: &[u8]) -> (Option<u16>, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let (got, closed) = read_until_close(&mut s, Duration::from_secs(10)).await;
    let status = status_of(&got);
    assert!(closed || status.is_some(), "no answer and no close: a hang");
    (status, closed)
}

pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> Option<u16> {
    raw_closed(addr, bytes).await.0
}

/// A server with extra command-line arguments.
pub fn limited_server(fx: &Fixture, args: &[&str]) -> Portcullis {
    Portcullis::start_with(
        fx,
        ServeOptions {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    )
}

/// A response, body collected.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An HTTP/1.1 keep-alive connection.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Self { sender }
    }

    pub async fn try_send(&mut self, req: Request<Full<Bytes>>) -> Result<Resp, String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        collect(resp).await
    }

    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Resp {
        self.try_send(req).await.unwrap()
    }
}

/// An HTTP/2 (cleartext, prior knowledge) connection.
pub struct H2Client {
    sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
}

impl H2Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        Self { sender }
    }

    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Resp {
        self.try_send(req).await.unwrap()
    }

    pub async fn try_send(&mut self, req: Request<Full<Bytes>>) -> Result<Resp, String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        collect(resp).await
    }
}

async fn collect(resp: Response<Incoming>) -> Result<Resp, String> {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// Builds a request; `headers` are (name, value) pairs, values may be raw bytes.
pub fn req(method: &str, uri: &str, headers: &[(&str, &[u8])], body: &str) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(uri);
    let h = b.headers_mut().unwrap();
    for (k, v) in headers {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v).unwrap(),
        );
    }
    b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

/// One request on a fresh connection.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let hs: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    let mut all = vec![("host", "portcullis.test".as_bytes())];
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        all.extend(hs);
    } else {
        all = hs;
    }
    Client::connect(addr)
        .await
        .send(req(method, uri, &all, body))
        .await
}

/// `POST /v1/decide` with a JSON question.
pub async fn decide(addr: SocketAddr, question: &serde_json::Value) -> Resp {
    send(
        addr,
        "POST",
        "/v1/decide",
        &[("content-type", "application/json")],
        &question.to_string(),
    )
    .await
}

/// An upstream that answers every request with what it received:
/// `{"method", "uri", "headers": [[name, value], ...]}`.
pub struct Upstream {
    pub addr: SocketAddr,
}

impl Upstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let headers: Vec<(String, String)> = req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.to_string(),
                                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                )
                            })
                            .collect();
                        let body = serde_json::json!({
                            "method": req.method().as_str(),
                            "uri": req.uri().to_string(),
                            "headers": headers,
                        });
                        Ok::<_, std::convert::Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body.to_string())))
                                .unwrap(),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr }
    }
}

/// The headers an echo answer says the upstream received, lowercase names.
pub fn upstream_headers(echo: &serde_json::Value) -> Vec<(String, String)> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_ascii_lowercase(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn header_values(hs: &[(String, String)], name: &str) -> Vec<String> {
    hs.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .collect()
}

/// A free loopback port (bound then released; good enough for test gateways).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Finds a gateway binary, or decides what its absence means: a failure
/// under `CI=true`, a skip (with a note) otherwise.
pub fn gateway_binary(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/sbin"].map(PathBuf::from));
    if let Some(found) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
        return Some(found);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{name} is not installed and CI=true: install it (apt-get install -y {name})");
    }
    eprintln!("skipped: {name} not installed");
    None
}

/// Waits until something accepts connections on `addr`.
pub async fn wait_listening(addr: SocketAddr, what: &str, log: impl Fn() -> String) {
    for _ in 0..300 {
        if TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} did not start listening on {addr}:\n{}", log());
}

/// The first fenced block of `lang` after `marker` in a docs file: the
/// configurations in docs/gateways are the ones the tests run.
pub fn docs_block(doc: &str, marker: &str, lang: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/gateways")
        .join(doc);
    let text = std::fs::read_to_string(&path).unwrap();
    let after = text
        .split_once(marker)
        .unwrap_or_else(|| panic!("{} has no `{marker}`", path.display()))
        .1;
    let fence = format!("```{lang}\n");
    let start = after.find(&fence).unwrap() + fence.len();
    let rest = &after[start..];
    rest[..rest.find("\n```").unwrap() + 1].to_string()
}

/// A gateway process (nginx, Caddy) killed when dropped.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Gateway {
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What every gateway in front of Portcullis must get right, asserted
/// through the gateway on `gw`. `rate_limited` is the status the gateway's
/// docs promise for a rate-limited client (429 for both nginx and Caddy).
pub async fn gateway_scenarios(gw: &Gateway, fx: &Fixture) {
    let gw_addr = gw.addr;
    let call = |path: &'static str, headers: Vec<(&'static str, String)>| async move {
        let mut hs: Vec<(&str, &[u8])> = vec![("host", b"api.example.com")];
        let owned = headers;
        for (k, v) in &owned {
            hs.push((k, v.as_bytes()));
        }
        let mut c = Client::connect(gw_addr).await;
        c.send(req("GET", path, &hs, "")).await
    };

    // A valid key reaches the upstream with the identity headers, and the
    // client's own `X-Auth-Consumer` is replaced.
    let r = call(
        "/v1/charges/ch_1?expand=customer",
        vec![
            ("x-api-key", fx.keys.read.clone()),
            ("x-auth-consumer", "evil".into()),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gw.logs());
    let echo = r.json();
    let up = upstream_headers(&echo);
    assert_eq!(echo["uri"], "/v1/charges/ch_1?expand=customer");
    assert_eq!(header_values(&up, "x-auth-consumer"), vec!["acme"]);
    assert_eq!(header_values(&up, "x-auth-principal"), vec!["key_read"]);
    assert_eq!(header_values(&up, "x-auth-scopes"), vec!["charges:read"]);
    assert_eq!(header_values(&up, "x-auth-credential"), vec!["partner_key"]);

    // A public route answers no identity: the client's copies must still not
    // pass. (nginx drops the header; Caddy 2.6 sets it empty.)
    let r = call(
        "/public/page",
        vec![
            ("x-auth-consumer", "evil".into()),
            ("x-auth-principal", "admin".into()),
            ("x-auth-scopes", "everything".into()),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = upstream_headers(&r.json());
    for h in [
        "x-auth-consumer",
        "x-auth-principal",
        "x-auth-scopes",
        "x-auth-credential",
    ] {
        assert!(
            header_values(&up, h).iter().all(String::is_empty),
            "client-supplied {h} reached the upstream: {up:?}"
        );
    }

    // No key: 401 with a challenge.
    let r = call("/v1/charges/ch_1", vec![]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.header("www-authenticate").is_some(), "{:?}", r.headers);

    // A key lacking the scope: 403.
    let r = call(
        "/v1/charges/ch_1",
        vec![("x-api-key", fx.keys.noscope.clone())],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());

    // A rate-limited client: 429 with retry-after.
    let limited = || vec![("x-api-key", fx.keys.limited.clone())];
    let r = call("/v1/limited/x", limited()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call("/v1/limited/x", limited()).await;
    assert_eq!(r.status, 429, "{}\n{}", r.text(), gw.logs());
    assert!(
        r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1,
        "{:?}",
        r.headers
    );

    // A bypass shape in the raw target: refused, never routed.
    let r = call(
        "/public/..%2fv1/charges/ch_1",
        vec![("x-api-key", fx.keys.read.clone())],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
}

/// Two versions of one route (for reload tests): version A lets `charges:read` keys through
/// (route `v.a`), version B wants `charges:write` (route `v.b`, 403).
pub fn version(name: &str, scope: &str) -> String {
    format!(
        r#"version: 1
credentials:
  partner_key:
    type: api_key
    in: [header:x-api-key]
    prefixes: [pk_live_, pk_test_]
routes:
  - name: {name}
    match: {{methods: [GET], path: "/v1/charges/{{id}}"}}
    require: partner_key
    scopes: {{all_of: [{scope}]}}
"#
    )
}

pub fn version_a() -> String {
    version("v.a", "charges:read")
}

pub fn version_b() -> String {
    version("v.b", "charges:write")
}

pub fn question(key: &str) -> String {
    serde_json::json!({"method": "GET", "path": "/v1/charges/ch_1", "headers": {"x-api-key": key}})
        .to_string()
}

/// Which version answered, or why the answer fits neither.
pub fn classify(d: &serde_json::Value) -> Result<char, String> {
    match (
        d["route"].as_str(),
        d["allow"].as_bool(),
        d["reason"].as_str(),
    ) {
        (Some("v.a"), Some(true), Some("allowed")) => Ok('a'),
        (Some("v.b"), Some(false), Some("insufficient_scope")) => Ok('b'),
        _ => Err(format!("answer fits neither version: {d}")),
    }
}

pub async fn admin_reload(p: &Portcullis) -> Resp {
    send(
        p.admin.unwrap(),
        "POST",
        "/admin/v1/reload",
        &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        "",
    )
    .await
}

pub async fn current(p: &Portcullis, key: &str) -> char {
    classify(
        &send(p.addr, "POST", "/v1/decide", &[], &question(key))
            .await
            .json(),
    )
    .unwrap()
}
