//! The decision listener: `POST /v1/decide`, `/v1/forward-auth`,
//! `/v1/ext-authz/...`, `/healthz`, `/readyz`, `/metrics`.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH};
use hyper::{Method, Request, StatusCode};
use portcullis_engine::compile::CompiledPolicy;
use portcullis_engine::credential::Verifier;
use portcullis_engine::{DecideOptions, Decision, Engine, Headers};

use crate::cli::ForwardAuthMode;
use crate::client_addr::{client_ip_of, decision_host_into, TrustedProxies};
use crate::decision_log::DecisionLog;
use crate::metrics::{Endpoint, Metrics};
use crate::reload::Reloader;
use crate::respond::{
    self, Handled, IdentityNameCache, Resp, Style, X_ENVOY_AUTH_HEADERS_TO_REMOVE,
};
use crate::scan::Scan;
use crate::translate;

thread_local! {
    /// Each thread's engine request, refilled for every gateway question:
    /// its method, path and host strings keep their memory, which saves
    /// three allocations and frees per decision. Every field is overwritten
    /// before each use, and the credentials are dropped after it.
    static SPARE: RefCell<portcullis_engine::Request> =
        RefCell::new(portcullis_engine::Request::default());
}

/// The prefix Envoy is configured with (`path_prefix: /v1/ext-authz`).
pub const EXT_AUTHZ_PREFIX: &str = "/v1/ext-authz";

/// Settings of the decision listener.
#[derive(Debug, Clone)]
pub struct Settings {
    pub trusted: TrustedProxies,
    pub forward_mode: ForwardAuthMode,
    pub max_body_bytes: usize,
    pub body_read_timeout: Duration,
}

/// The connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    /// Is the peer a trusted proxy (its forwarding headers are believed)?
    pub trusted: bool,
}

struct Inner {
    engine: Arc<Engine>,
    settings: Settings,
    metrics: Arc<Metrics>,
    log: DecisionLog,
    reloader: Arc<Reloader>,
    identity_names: IdentityNameCache,
    /// Times each decision for the latency histogram and the decision log.
    /// On this VM two reads of std's clock cost ~120 ns, a third of an
    /// API-key decision; quanta reads the TSC (~40 ns for two) and falls
    /// back to the OS clock where the TSC is not invariant.
    clock: quanta::Clock,
}

/// A thread's view of the policy serving now, and what is rendered from it
/// once per policy rather than per request.
struct Snapshot {
    /// A weak reference keeps the engine's allocation, so its address
    /// cannot be reused by another engine while cached here.
    engine: Weak<Engine>,
    generation: u64,
    policy: Arc<CompiledPolicy>,
    /// `x-envoy-auth-headers-to-remove`, by which identity headers an allow
    /// sets (see [`identity_mask`]); `None` until first needed.
    envoy_remove: [Option<Option<HeaderValue>>; 16],
    /// The policy's credential headers without the client-certificate
    /// ones: what is read from a peer that is not a trusted proxy.
    untrusted_credential_headers: Vec<String>,
}

/// The credential headers to read from `peer`.
fn credential_headers_for(snapshot: &Snapshot, peer: Peer) -> &[String] {
    if peer.trusted {
        &snapshot.policy.credential_headers
    } else {
        &snapshot.untrusted_credential_headers
    }
}

/// The credential headers a peer outside `--trusted-proxies` may send: a
/// client-certificate header (XFCC, a PEM header, its verification status)
/// says what a TLS-terminating proxy saw, so only a trusted proxy may set
/// it. From anyone else it is ignored, and an mTLS credential is absent.
fn untrusted_credential_headers(policy: &CompiledPolicy) -> Vec<String> {
    let cert_headers: Vec<&str> = policy
        .credentials
        .iter()
        .filter_map(|c| match &c.verifier {
            Verifier::Mtls(m) => Some(m.header_names()),
            _ => None,
        })
        .flatten()
        .collect();
    policy
        .credential_headers
        .iter()
        .filter(|h| !cert_headers.contains(&h.as_str()))
        .cloned()
        .collect()
}

/// The cached `x-envoy-auth-headers-to-remove` for `mask`, computed on first use.
fn envoy_remove(
    policy: &CompiledPolicy,
    cache: &mut [Option<Option<HeaderValue>>; 16],
    mask: u8,
) -> Option<HeaderValue> {
    let slot = cache.get_mut(usize::from(mask & 0xf))?;
    slot.get_or_insert_with(|| headers_to_remove(policy, mask))
        .clone()
}

/// The decision service: cheap to clone, one per connection.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

impl App {
    pub fn new(
        engine: Arc<Engine>,
        settings: Settings,
        metrics: Arc<Metrics>,
        log: DecisionLog,
        reloader: Arc<Reloader>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                settings,
                metrics,
                log,
                reloader,
                identity_names: IdentityNameCache,
                clock: quanta::Clock::new(),
            }),
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    pub fn peer(&self, addr: SocketAddr) -> Peer {
        Peer {
            addr,
            trusted: self.inner.settings.trusted.contains(addr.ip()),
        }
    }

    /// Routes a request. Gateway questions are answered at once, without a
    /// future or a timer; only `POST /v1/decide` (it reads a body) is async.
    pub fn handle(&self, peer: Peer, req: Request<Incoming>) -> Handled {
        let path = req.uri().path();
        Handled::Ready(match path {
            "/v1/decide" => match *req.method() {
                Method::POST => {
                    let app = self.clone();
                    return Handled::Later(Box::pin(async move { app.decide_api(req).await }));
                }
                _ => respond::method_not_allowed("POST"),
            },
            // Gateway questions borrow the request: it is dropped where it
            // lies instead of being moved (copied) through every call.
            "/v1/forward-auth" => self.forward_auth(peer, &req),
            p if p == EXT_AUTHZ_PREFIX
                || p.strip_prefix(EXT_AUTHZ_PREFIX)
                    .is_some_and(|rest| rest.starts_with('/')) =>
            {
                self.ext_authz(peer, &req)
            }
            "/healthz" => read_only(&req, || {
                respond::json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
            }),
            "/readyz" => read_only(&req, || {
                let r = self.inner.reloader.readiness();
                let status = if r.get("ready") == Some(&serde_json::Value::Bool(true)) {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                respond::json(status, &r)
            }),
            "/metrics" => read_only(&req, || {
                respond::text(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    self.inner.metrics.encode(),
                )
            }),
            _ => respond::not_found(),
        })
    }

    /// Runs `f` with the policy serving now.
    ///
    /// Each thread keeps the policy it last used and swaps it when the
    /// generation moves on, instead of taking a reference count on the
    /// shared policy per request (an atomic every worker thread would write
    /// on every request). A decision still sees exactly one policy: `f` gets
    /// one snapshot for the request's headers, the decision and the answer.
    fn with_policy<R>(&self, f: impl FnOnce(&mut Snapshot) -> R) -> R {
        thread_local! {
            static CURRENT: RefCell<Option<Snapshot>> = const { RefCell::new(None) };
        }
        let engine = &self.inner.engine;
        let generation = engine.generation();
        CURRENT.with(|cell| {
            let mut current = cell.borrow_mut();
            let fresh = matches!(&*current,
                Some(s) if Weak::as_ptr(&s.engine) == Arc::as_ptr(engine) && s.generation == generation);
            if !fresh {
                *current = None;
            }
            let snapshot = current.get_or_insert_with(|| {
                let policy = engine.policy();
                Snapshot {
                    engine: Arc::downgrade(engine),
                    generation,
                    untrusted_credential_headers: untrusted_credential_headers(&policy),
                    policy,
                    envoy_remove: Default::default(),
                }
            });
            f(snapshot)
        })
    }

    /// Every decision goes through here, against one policy snapshot that
    /// the caller also used to pick the request's headers and will use to
    /// write the answer: a reload in between never mixes two policies.
    ///
    /// This is the seam for blocking key stores. The engine decides in
    /// memory, in microseconds, so it runs right here on the async worker
    /// and gateway questions need no await. A store that blocks (a network
    /// lookup on a cache miss) turns this into an `async fn` that runs the
    /// engine in `tokio::task::spawn_blocking` (the request is then moved
    /// there instead of borrowed), and the gateway handlers into `Handled::Later`.
    fn decide(
        &self,
        endpoint: Endpoint,
        policy: &CompiledPolicy,
        request: &portcullis_engine::Request,
        explain: bool,
    ) -> Decision {
        let engine = &self.inner.engine;
        let clock = &self.inner.clock;
        let start = clock.raw();
        let d = portcullis_engine::decide::decide(
            policy,
            engine.limiter().as_ref(),
            engine.keys().as_ref(),
            request,
            &DecideOptions { explain, now: None },
        );
        let took = clock.delta(start, clock.raw());
        self.inner
            .metrics
            .record_decision(endpoint, &d, took, engine.generation());
        self.inner.log.record(endpoint, &d, took);
        d
    }

    /// A decision as a gateway answer, identity headers named by the
    /// decision's policy.
    fn answer(
        &self,
        d: &Decision,
        policy: &CompiledPolicy,
        style: Style,
        extra_on_allow: Option<(&HeaderName, HeaderValue)>,
        every_identity: bool,
    ) -> Resp {
        let names = d.identity_names.as_ref().unwrap_or(&policy.identity);
        self.inner.identity_names.with(names, |names| {
            respond::decision(d, style, extra_on_allow, names, every_identity)
        })
    }

    fn bad_request(
        &self,
        endpoint: Endpoint,
        kind: &'static str,
        status: StatusCode,
        message: &str,
    ) -> Resp {
        self.inner
            .metrics
            .record_bad_request(endpoint.as_str(), kind);
        tracing::debug!(endpoint = endpoint.as_str(), kind, "bad request");
        respond::error(status, message)
    }

    /// A forward-auth subrequest that does not say what to decide on: 400,
    /// or for nginx (which turns every status but 401 and 403 into a 500)
    /// 403 with the kind in `x-auth-reason`. A deny either way.
    fn forward_auth_refusal(&self, style: Style, kind: &'static str, message: &str) -> Resp {
        let mut r = self.bad_request(
            Endpoint::ForwardAuth,
            kind,
            StatusCode::BAD_REQUEST,
            message,
        );
        if style == Style::Nginx {
            *r.status_mut() = StatusCode::FORBIDDEN;
            r.headers_mut().insert(
                "x-auth-reason",
                hyper::header::HeaderValue::from_static(kind),
            );
        }
        r
    }

    async fn decide_api(&self, req: Request<Incoming>) -> Resp {
        let explain = query_flag(req.uri().query(), "explain");
        let body = match self.read_body(req).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let request = match portcullis_engine::Request::from_json(&body) {
            Ok(r) => r,
            Err(e) => {
                // The message goes back to the caller who sent the body; it is
                // never logged (serde can quote a string value of the input).
                return self.bad_request(
                    Endpoint::Decide,
                    "malformed",
                    StatusCode::BAD_REQUEST,
                    &e.to_string(),
                );
            }
        };
        let policy = self.inner.engine.policy();
        let d = self.decide(Endpoint::Decide, &policy, &request, explain);
        respond::json(StatusCode::OK, &d.to_json())
    }

    async fn read_body(&self, req: Request<Incoming>) -> Result<Bytes, Resp> {
        let max = self.inner.settings.max_body_bytes;
        let too_large = |app: &Self| {
            let mut r = app.bad_request(
                Endpoint::Decide,
                "too_large",
                StatusCode::BAD_REQUEST,
                &format!("request body exceeds {max} bytes"),
            );
            // The rest of the body is not read: do not reuse the connection.
            r.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            r
        };
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err(too_large(self));
        }
        let body = Limited::new(req.into_body(), max);
        match tokio::time::timeout(self.inner.settings.body_read_timeout, body.collect()).await {
            Err(_) => {
                let mut r = self.bad_request(
                    Endpoint::Decide,
                    "body_timeout",
                    StatusCode::REQUEST_TIMEOUT,
                    "request body not received in time",
                );
                r.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
                Err(r)
            }
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(self)),
            Ok(Err(_)) => Err(self.bad_request(
                Endpoint::Decide,
                "body_error",
                StatusCode::BAD_REQUEST,
                "request body could not be read",
            )),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
        }
    }

    fn forward_auth(&self, peer: Peer, req: &Request<Incoming>) -> Resp {
        self.with_policy(|snapshot| {
            let names = credential_headers_for(snapshot, peer);
            self.forward_auth_on(&snapshot.policy, names, peer, req)
        })
    }

    fn forward_auth_on(
        &self,
        policy: &CompiledPolicy,
        credential_headers: &[String],
        peer: Peer,
        req: &Request<Incoming>,
    ) -> Resp {
        let style = match query_value(req.uri().query(), "mode") {
            None => match self.inner.settings.forward_mode {
                ForwardAuthMode::Standard => Style::Standard,
                ForwardAuthMode::Nginx => Style::Nginx,
            },
            Some("nginx") => Style::Nginx,
            Some("standard") => Style::Standard,
            Some(_) => {
                return self.bad_request(
                    Endpoint::ForwardAuth,
                    "bad_mode",
                    StatusCode::BAD_REQUEST,
                    "unknown `mode`: use `standard` or `nginx`",
                )
            }
        };
        // The body (if a gateway sent one) is never read: decisions are on the head.
        let mut scan = Scan::of(req.headers(), credential_headers);
        SPARE.with(|spare| {
            let mut guard = spare.borrow_mut();
            let request = &mut *guard;
            if let Err(e) = translate::target_into(&scan, &mut request.method, &mut request.path) {
                return self.forward_auth_refusal(style, "missing_target", &e.to_string());
            }
            if let Err(e) = self.gateway_request(request, req.uri(), peer, &mut scan) {
                return self.forward_auth_refusal(style, "bad_host", &e.to_string());
            }
            let d = self.decide(Endpoint::ForwardAuth, policy, request, false);
            // Credentials do not outlive the question.
            request.headers = Headers::new();
            self.answer(&d, policy, style, None, true)
        })
    }

    /// Fills in the rest of a gateway question: host, credential headers and
    /// client address (method and path are already written).
    fn gateway_request(
        &self,
        request: &mut portcullis_engine::Request,
        uri: &hyper::Uri,
        peer: Peer,
        scan: &mut Scan<'_>,
    ) -> Result<(), crate::client_addr::HostError> {
        decision_host_into(uri, scan, peer.trusted, &mut request.host)?;
        request.source_ip =
            client_ip_of(peer.addr, peer.trusted, &self.inner.settings.trusted, scan);
        request.headers = std::mem::take(&mut scan.credentials);
        Ok(())
    }

    fn ext_authz(&self, peer: Peer, req: &Request<Incoming>) -> Resp {
        self.with_policy(|snapshot| self.ext_authz_on(snapshot, peer, req))
    }

    fn ext_authz_on(&self, snapshot: &mut Snapshot, peer: Peer, req: &Request<Incoming>) -> Resp {
        let Snapshot {
            policy,
            envoy_remove: remove_cache,
            untrusted_credential_headers,
            ..
        } = snapshot;
        let names: &[String] = if peer.trusted {
            &policy.credential_headers
        } else {
            untrusted_credential_headers
        };
        let policy: &CompiledPolicy = policy;
        let full = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("");
        let original = match full.strip_prefix(EXT_AUTHZ_PREFIX) {
            Some(rest) if rest.starts_with('/') => rest,
            _ => {
                return self.bad_request(
                    Endpoint::ExtAuthz,
                    "missing_target",
                    StatusCode::BAD_REQUEST,
                    "the original path must follow `/v1/ext-authz`",
                )
            }
        };
        let mut scan = Scan::of(req.headers(), names);
        let d: Result<Decision, crate::client_addr::HostError> = SPARE.with(|spare| {
            let mut guard = spare.borrow_mut();
            let request = &mut *guard;
            request.method.clear();
            request.method.push_str(req.method().as_str());
            request.method.make_ascii_uppercase();
            request.path.clear();
            request.path.push_str(original);
            self.gateway_request(request, req.uri(), peer, &mut scan)?;
            let d = self.decide(Endpoint::ExtAuthz, policy, request, false);
            request.headers = Headers::new();
            Ok(d)
        });
        let d = match d {
            Ok(d) => d,
            Err(e) => {
                return self.bad_request(
                    Endpoint::ExtAuthz,
                    "bad_host",
                    StatusCode::BAD_REQUEST,
                    &e.to_string(),
                )
            }
        };
        let strip = if d.allow {
            envoy_remove(policy, remove_cache, identity_mask(&d))
        } else {
            None
        };
        self.answer(
            &d,
            policy,
            Style::Envoy,
            strip.map(|v| (&X_ENVOY_AUTH_HEADERS_TO_REMOVE, v)),
            false,
        )
    }
}

/// Which identity headers an allow sets, as [`Decision::response_headers`]
/// renders them: bit 0 principal, 1 consumer, 2 scopes, 3 credential.
fn identity_mask(d: &Decision) -> u8 {
    if !d.allow || d.identity_names.is_none() {
        return 0;
    }
    let mut mask = 0;
    if let Some(p) = &d.principal {
        mask |= 0b0101;
        if p.consumer.is_some() {
            mask |= 0b0010;
        }
    }
    if d.credential.is_some() {
        mask |= 0b1000;
    }
    mask
}

/// What Envoy must remove from the upstream request on an allow that sets
/// the identity headers in `mask`: the credential headers (the application
/// never needs the key), and every identity header the answer does not
/// set, because Envoy's `allowed_upstream_headers` only replaces the
/// headers an answer contains and would let a client-supplied
/// `x-auth-consumer` through.
fn headers_to_remove(policy: &CompiledPolicy, mask: u8) -> Option<HeaderValue> {
    let names = &policy.identity;
    let mut out: Vec<&str> = policy
        .credential_headers
        .iter()
        .map(String::as_str)
        .collect();
    for (bit, name) in [
        &names.principal,
        &names.consumer,
        &names.scopes,
        &names.credential,
    ]
    .into_iter()
    .enumerate()
    {
        if mask & (1 << bit) == 0 && !out.contains(&&**name) {
            out.push(name);
        }
    }
    if out.is_empty() {
        return None;
    }
    HeaderValue::from_str(&out.join(", ")).ok()
}

fn read_only(req: &Request<Incoming>, f: impl FnOnce() -> Resp) -> Resp {
    match *req.method() {
        Method::GET | Method::HEAD => f(),
        _ => respond::method_not_allowed("GET, HEAD"),
    }
}

impl App {
    /// Whether a request refused before it was read (the connection limit)
    /// must be answered the nginx way: a forward-auth question in nginx
    /// mode, by its `mode` query or the server's default. `head` is what the
    /// client sent first, if anything; when the request line is not there
    /// the server's default decides.
    pub fn refusal_in_nginx_mode(&self, head: &[u8]) -> bool {
        let nginx_default = self.inner.settings.forward_mode == ForwardAuthMode::Nginx;
        let line = head
            .split(|&b| b == b'\r' || b == b'\n')
            .next()
            .unwrap_or_default();
        let target = line.split(|&b| b == b' ').nth(1);
        let Some(target) = target.and_then(|t| std::str::from_utf8(t).ok()) else {
            return nginx_default;
        };
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        if path != "/v1/forward-auth" {
            return false;
        }
        match query_value(query, "mode") {
            Some("nginx") => true,
            Some(_) => false,
            None => nginx_default,
        }
    }
}

/// The value of `name` in a query string (first occurrence, not decoded:
/// the values read here are fixed words).
fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// `?explain`, `?explain=true` or `?explain=1`.
fn query_flag(query: Option<&str>, name: &str) -> bool {
    matches!(query_value(query, name), Some("" | "true" | "1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_mask_matches_the_engine_rendering() {
        use portcullis_engine::decision::IdentityNames;
        use portcullis_engine::{Principal, Reason};
        let names = Arc::new(IdentityNames {
            principal: "p".into(),
            consumer: "c".into(),
            scopes: "s".into(),
            credential: "k".into(),
        });
        for consumer in [None, Some("acme")] {
            for credential in [None, Some("key")] {
                for principal in [false, true] {
                    let mut d = Decision::deny(Reason::Allowed).with_allow();
                    d.identity_names = Some(Arc::clone(&names));
                    d.credential = credential.map(Into::into);
                    d.principal = principal.then(|| Principal {
                        id: "id".into(),
                        consumer: consumer.map(Into::into),
                        scopes: Arc::from(Vec::<String>::new()),
                    });
                    let set: Vec<String> = d
                        .response_headers()
                        .into_iter()
                        .map(|(k, _)| k.to_string())
                        .collect();
                    let mask = identity_mask(&d);
                    for (bit, name) in ["p", "c", "s", "k"].into_iter().enumerate() {
                        assert_eq!(
                            mask & (1 << bit) != 0,
                            set.iter().any(|k| k == name),
                            "{name} {set:?}"
                        );
                    }
                }
            }
        }
        assert_eq!(identity_mask(&Decision::deny(Reason::NoRoute)), 0);
    }

    #[test]
    fn query_parsing() {
        assert!(query_flag(Some("explain=true"), "explain"));
        assert!(query_flag(Some("a=b&explain"), "explain"));
        assert!(!query_flag(Some("explain=false"), "explain"));
        assert!(!query_flag(None, "explain"));
        assert_eq!(query_value(Some("mode=nginx"), "mode"), Some("nginx"));
        assert_eq!(query_value(Some("xmode=nginx"), "mode"), None);
    }
}
