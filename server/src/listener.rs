//! Accept loop and connection handling for both listeners: HTTP/1.1 with
//! keep-alive and HTTP/2 over cleartext (prior knowledge), limits, and
//! graceful shutdown with a drain deadline.
//!
//! Every limit ends in a status or a closed connection, never a hang:
//! request head too large or too many headers → 431 (hyper); head not
//! received within `header_read_timeout` → closed; idle keep-alive beyond
//! `idle_timeout` → closed; body too large → 400, body too slow → 408
//! (`app`); handler beyond `request_timeout` → 503; connections beyond
//! `max_connections` → 503 and closed; ambiguous body framing that hyper
//! lets through (`Transfer-Encoding` other than one `chunked`) → 400 and closed.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::future::Either;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use rustc_hash::FxHashMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};

use crate::admin::AdminApp;
use crate::app::{App, Peer};
use crate::cli::LimitArgs;
use crate::metrics::Metrics;
use crate::respond::{self, Handled, Resp};

/// What a listener serves.
#[derive(Clone)]
pub enum Service {
    Decision(App),
    Admin(AdminApp),
}

impl Service {
    fn name(&self) -> &'static str {
        match self {
            Service::Decision(_) => "decision",
            Service::Admin(_) => "admin",
        }
    }

    fn peer(&self, addr: SocketAddr) -> Peer {
        match self {
            Service::Decision(app) => app.peer(addr),
            Service::Admin(_) => Peer {
                addr,
                trusted: false,
            },
        }
    }

    /// See [`App::refusal_in_nginx_mode`]; the admin API is never nginx's.
    fn refusal_in_nginx_mode(&self, head: &[u8]) -> bool {
        match self {
            Service::Decision(app) => app.refusal_in_nginx_mode(head),
            Service::Admin(_) => false,
        }
    }

    fn call(&self, peer: Peer, req: Request<Incoming>) -> Handled {
        match self {
            Service::Decision(app) => app.handle(peer, req),
            Service::Admin(admin) => admin.handle(req),
        }
    }
}

/// hyper's default limit on request headers (HTTP/1.1).
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// Connections refused at the limit get a short 503 from a small pool of
/// their own; beyond that pool they are closed at once.
const REFUSAL_SLOTS: usize = 64;

/// What one connection has done, for the idle and head-read timeouts, and
/// what it is asked to do (close, drain).
///
/// hyper's own `header_read_timeout` also runs while a keep-alive connection
/// is idle, which would force the idle timeout down to the head timeout;
/// tracking activity here lets each have its own value.
///
/// `reads` and `requests` are written only by the connection's own task
/// (hyper reads and calls the service there, also for HTTP/2), so they
/// are a load and a store rather than a locked read-modify-write; the
/// sweeper only reads them.
#[derive(Default)]
struct Activity {
    /// Reads that returned data.
    reads: AtomicU64,
    /// `reads` when the last response was produced.
    quiet_reads: AtomicU64,
    requests: AtomicU64,
    /// Requests whose answer is still being worked on (HTTP/2 streams run
    /// on tasks of their own, so this one takes read-modify-writes).
    in_flight: AtomicUsize,
    /// The connection began with the HTTP/2 preface.
    h2: AtomicBool,
    /// [`CLOSE`] and [`DRAIN`], set by the sweeper or at shutdown.
    orders: AtomicU8,
    /// Wakes the connection's task for an order; set on its first poll.
    waker: parking_lot::Mutex<Option<Waker>>,
}

/// Close the connection now (idle or stalled).
const CLOSE: u8 = 1;
/// Finish the request in progress, then close (shutdown).
const DRAIN: u8 = 2;

impl Activity {
    /// One more request, counted by the connection's own task.
    fn request_begun(&self) {
        let n = self.requests.load(Ordering::Relaxed);
        self.requests.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    /// An answer is ready: everything read so far has been answered.
    fn answered(&self) {
        self.quiet_reads
            .store(self.reads.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Gives the connection `order` and wakes its task.
    fn order(&self, order: u8) {
        self.orders.fetch_or(order, Ordering::AcqRel);
        if let Some(w) = self.waker.lock().as_ref() {
            w.wake_by_ref();
        }
    }
}

/// Marks a request in flight for as long as it lives (also when cancelled),
/// for answers that are not ready at once.
struct InFlight(Arc<Activity>);

impl InFlight {
    /// `a`'s request, counted already, is being worked on.
    fn begin(a: &Arc<Activity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(a))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.answered();
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How a connection's task ended.
enum Ended<E> {
    /// hyper finished with the connection.
    Done(Result<(), E>),
    /// Closed on [`CLOSE`].
    Closed,
}

/// Runs a connection until it ends or is told to close, draining it
/// gracefully on [`DRAIN`].
///
/// This replaces a `select!` on a per-connection `Notify` and
/// hyper-util's `GracefulShutdown::watch`, which between them took a
/// mutex on every poll, one of them shared by all connections (the
/// shutdown channel): here a poll reads one atomic, and the task's waker
/// is handed over once.
async fn run_connection<C, E>(conn: C, activity: &Activity) -> Ended<E>
where
    C: GracefulConnection<Error = E>,
{
    let mut conn = std::pin::pin!(conn);
    let mut registered: Option<Waker> = None;
    let mut draining = false;
    std::future::poll_fn(|cx| {
        if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            let w = cx.waker().clone();
            *activity.waker.lock() = Some(w.clone());
            registered = Some(w);
        }
        // Read after handing over the waker: an order given before this
        // load is seen now, one given after it wakes the task.
        let orders = activity.orders.load(Ordering::Acquire);
        if orders & CLOSE != 0 {
            return Poll::Ready(Ended::Closed);
        }
        if orders & DRAIN != 0 && !draining {
            draining = true;
            conn.as_mut().graceful_shutdown();
        }
        conn.as_mut().poll(cx).map(Ended::Done)
    })
    .await
}

/// A TCP stream that counts reads.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            let fresh = buf.filled().get(before..).unwrap_or_default();
            if !fresh.is_empty() {
                let a = &self.activity;
                // Only this connection's task reads its stream.
                let n = a.reads.load(Ordering::Relaxed);
                a.reads.store(n.wrapping_add(1), Ordering::Relaxed);
                if n == 0 && fresh.starts_with(b"PRI * HTTP/2") {
                    a.h2.store(true, Ordering::Relaxed);
                }
            }
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head.
    Head,
    /// A request is being handled.
    Busy,
    /// Keep-alive, nothing happening.
    Idle,
}

/// Decides when a connection has waited too long for a head or sat idle too long.
struct Supervisor {
    activity: Arc<Activity>,
    head_timeout: Duration,
    idle_timeout: Duration,
    phase: Phase,
    since: Instant,
    /// `activity.requests` at the last check: a request begun since then is
    /// progress, whatever phase the sweeper happens to sample.
    requests_seen: u64,
}

impl Supervisor {
    fn new(activity: Arc<Activity>, limits: &LimitArgs, now: Instant) -> Self {
        Self {
            activity,
            head_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            // A new connection owes us a request head.
            phase: Phase::Head,
            since: now,
            requests_seen: 0,
        }
    }

    fn check(&mut self, now: Instant) -> Option<&'static str> {
        let a = &self.activity;
        let phase = if a.in_flight.load(Ordering::Acquire) > 0 {
            Phase::Busy
        } else if a.h2.load(Ordering::Relaxed) {
            // HTTP/2 has no head phase between streams; hyper bounds header lists.
            Phase::Idle
        } else if a.requests.load(Ordering::Relaxed) == 0
            || a.reads.load(Ordering::Relaxed) > a.quiet_reads.load(Ordering::Relaxed)
        {
            Phase::Head
        } else {
            Phase::Idle
        };
        // The sweeper only samples: a busy keep-alive connection can be seen
        // in `Head` on every sweep (its next request read, not yet
        // dispatched) although it completes requests in between. Without
        // counting them it was closed mid-stream after `head_timeout`.
        let requests = a.requests.load(Ordering::Relaxed);
        if phase != self.phase || requests != self.requests_seen {
            self.phase = phase;
            self.since = now;
            self.requests_seen = requests;
        }
        // Trickled bytes never reset the head clock: that is the slowloris.
        let waited = now.saturating_duration_since(self.since);
        match phase {
            Phase::Busy => None,
            Phase::Head => {
                (waited > self.head_timeout).then_some("request head not received in time")
            }
            Phase::Idle => (waited > self.idle_timeout).then_some("idle timeout"),
        }
    }
}

/// How often the sweeper looks at every connection: a quarter of the
/// shorter timeout, between 10 ms and 1 s.
fn sweep_period(limits: &LimitArgs) -> Duration {
    (limits.header_read_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// The open connections of one listener, for the sweeper and for shutdown.
///
/// One task checks every connection periodically instead of each
/// connection carrying its own timer: a per-connection timer is polled on
/// every request and keeps the runtime's timer wheel busy.
#[derive(Default)]
struct Watchlist {
    next: AtomicU64,
    conns: parking_lot::Mutex<FxHashMap<u64, Supervisor>>,
    /// Notified when the last connection leaves.
    empty: Notify,
}

impl Watchlist {
    fn add(&self, supervisor: Supervisor) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.conns.lock().insert(id, supervisor);
        id
    }

    fn remove(&self, id: u64) {
        let mut conns = self.conns.lock();
        conns.remove(&id);
        if conns.is_empty() {
            self.empty.notify_waiters();
        }
    }

    /// Gives every open connection `order`.
    fn order_all(&self, order: u8) {
        for s in self.conns.lock().values() {
            s.activity.order(order);
        }
    }

    /// Resolves once no connection is open.
    async fn drained(&self) {
        loop {
            // Created before looking, so a removal in between is not missed.
            let empty = self.empty.notified();
            if self.conns.lock().is_empty() {
                return;
            }
            empty.await;
        }
    }
}

/// Closes connections that waited too long for a request head or sat idle too long.
async fn sweep(watchlist: Arc<Watchlist>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        for supervisor in watchlist.conns.lock().values_mut() {
            if let Some(why) = supervisor.check(now) {
                tracing::debug!(reason = why, "closing connection");
                supervisor.activity.order(CLOSE);
            }
        }
    }
}

fn builder(limits: &LimitArgs) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // hyper answers 431 when the head does not fit the read buffer or has
    // too many headers; its minimum buffer is 8 KiB.
    b.http1()
        .keep_alive(true)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .header_read_timeout(None);
    // Setting any header count moves hyper's header slots from the stack to
    // a heap allocation per request; 100 is hyper's own default.
    if limits.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        b.http1().max_headers(limits.max_headers);
    }
    b.http2()
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.max_concurrent_streams)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20))
        .timer(TokioTimer::new());
    b
}

/// Framing shapes that hyper accepts but that a proxy in front of us may
/// read differently (request smuggling): refused before any body is read.
///
/// hyper already refuses two differing `Content-Length`s, a final coding
/// other than `chunked`, `Transfer-Encoding` in HTTP/1.0 and obs-fold (400),
/// and for `Transfer-Encoding` with `Content-Length` it drops the length,
/// decodes chunked and closes the connection (RFC 9112 section 6.3). What
/// is left is a coding before `chunked` (`gzip, chunked`), which we do not
/// decode, and `Transfer-Encoding` repeated or listing `chunked` twice.
fn ambiguous_framing(req: &Request<Incoming>) -> Option<&'static str> {
    if req.version() >= hyper::Version::HTTP_2 {
        // h2 frames bodies itself and refuses `transfer-encoding`.
        return None;
    }
    // hyper gives every HTTP/1 request it accepted with a
    // `Transfer-Encoding` a chunked body, never an empty one: a request
    // without a body (every gateway question) needs no header lookup.
    if hyper::body::Body::is_end_stream(req.body()) {
        return None;
    }
    let mut te = req
        .headers()
        .get_all(hyper::header::TRANSFER_ENCODING)
        .iter();
    let first = te.next()?;
    if te.next().is_some() {
        return Some("more than one transfer-encoding header");
    }
    if !first
        .as_bytes()
        .trim_ascii()
        .eq_ignore_ascii_case(b"chunked")
    {
        return Some("transfer-encoding other than `chunked`");
    }
    None
}

fn refuse_framing(why: &'static str) -> Resp {
    tracing::debug!(reason = why, "refusing ambiguous request framing");
    let mut r = respond::error(StatusCode::BAD_REQUEST, why);
    // The body was not read and its end is in doubt: nothing after it is a request.
    r.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    r
}

fn timed_out() -> Resp {
    respond::error(StatusCode::SERVICE_UNAVAILABLE, "request timed out")
}

/// Serves `listener` until `shutdown` turns true, then stops accepting and
/// drains in-flight requests for at most `limits.shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    service: Service,
    limits: LimitArgs,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = service.name();
    let builder = builder(&limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusals = Arc::new(Semaphore::new(REFUSAL_SLOTS));
    let watchlist = Arc::new(Watchlist::default());
    let sweeper = tokio::spawn(sweep(Arc::clone(&watchlist), sweep_period(&limits)));
    let limits = Arc::new(limits);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut shutdown) => break,
        };
        let (stream, addr) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(listener = name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            metrics.connection_refused(name);
            if let Ok(slot) = Arc::clone(&refusals).try_acquire_owned() {
                let service = service.clone();
                tokio::spawn(async move {
                    refuse(stream, &service).await;
                    drop(slot);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: Arc::clone(&activity),
        });
        let peer = service.peer(addr);
        let svc_service = service.clone();
        let svc_activity = Arc::clone(&activity);
        let request_timeout = limits.request_timeout;
        let svc = service_fn(move |req: Request<Incoming>| {
            svc_activity.request_begun();
            let handled = match ambiguous_framing(&req) {
                Some(why) => Handled::Ready(refuse_framing(why)),
                None => svc_service.call(peer, req),
            };
            match handled {
                // A gateway answer is ready before this returns: it needs no
                // in-flight marker, reference count, boxed future or timer.
                Handled::Ready(r) => {
                    svc_activity.answered();
                    Either::Left(std::future::ready(Ok::<_, Infallible>(r)))
                }
                Handled::Later(work) => {
                    let in_flight = InFlight::begin(&svc_activity);
                    Either::Right(Box::pin(async move {
                        let resp = tokio::time::timeout(request_timeout, work)
                            .await
                            .unwrap_or_else(|_| timed_out());
                        drop(in_flight);
                        Ok::<_, Infallible>(resp)
                    }))
                }
            }
        });
        let conn = builder.serve_connection(io, svc).into_owned();
        let metrics = Arc::clone(&metrics);
        let id = watchlist.add(Supervisor::new(
            Arc::clone(&activity),
            &limits,
            Instant::now(),
        ));
        let watchlist = Arc::clone(&watchlist);
        tokio::spawn(async move {
            metrics.connection_opened(name);
            match run_connection(conn, &activity).await {
                Ended::Done(Err(e)) => {
                    tracing::debug!(listener = name, error = %e, "connection ended with an error");
                }
                Ended::Done(Ok(())) => {}
                Ended::Closed => {
                    tracing::debug!(listener = name, "closing an idle or stalled connection");
                }
            }
            watchlist.remove(id);
            drop(permit);
            metrics.connection_closed(name);
        });
    }
    drop(listener);
    tracing::info!(listener = name, "draining connections");
    watchlist.order_all(DRAIN);
    if tokio::time::timeout(limits.shutdown_grace, watchlist.drained())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            grace = ?limits.shutdown_grace,
            "drain deadline passed; closing remaining connections"
        );
        watchlist.order_all(CLOSE);
    }
    sweeper.abort();
}

/// Resolves once `shutdown` is true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Answers a connection over the limit with a 503 and closes it, reading
/// what the client sent first so the close is not a reset that loses the
/// answer. A forward-auth question in nginx mode gets a 403 instead, with
/// the reason `overloaded` in `x-auth-reason` and `retry-after` kept:
/// nginx `auth_request` turns any status but 401 and 403 into a 500, and
/// its recipe (docs/gateways/nginx.md) turns this one back into a 503.
async fn refuse(mut stream: TcpStream, service: &Service) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut sink = [0u8; 4096];
        let read = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut sink))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        let head = sink.get(..read).unwrap_or_default();
        let answer = refusal(service.refusal_in_nginx_mode(head));
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

/// The whole answer to a connection over the limit (see [`refuse`]).
fn refusal(nginx: bool) -> String {
    let (status, body) = if nginx {
        (
            "403 Forbidden",
            r#"{"reason":"overloaded","status":503,"error":"too many open connections"}"#,
        )
    } else {
        (
            "503 Service Unavailable",
            r#"{"error":"too many open connections"}"#,
        )
    };
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-auth-reason: overloaded\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request as the service marks it when its answer is not ready at once.
    fn request(a: &Arc<Activity>) -> InFlight {
        a.request_begun();
        InFlight::begin(a)
    }

    fn limits(head: u64, idle: u64) -> LimitArgs {
        LimitArgs {
            header_read_timeout: Duration::from_secs(head),
            idle_timeout: Duration::from_secs(idle),
            ..LimitArgs::default()
        }
    }

    #[test]
    fn new_connection_must_send_a_head_in_time() {
        let t0 = Instant::now();
        let a = Arc::new(Activity::default());
        let mut s = Supervisor::new(Arc::clone(&a), &limits(10, 60), t0);
        assert_eq!(s.check(t0 + Duration::from_secs(5)), None);
        // Trickling bytes does not help.
        a.reads.fetch_add(3, Ordering::Relaxed);
        assert!(s.check(t0 + Duration::from_secs(11)).is_some());
    }

    #[test]
    fn idle_keep_alive_has_its_own_timeout() {
        let t0 = Instant::now();
        let a = Arc::new(Activity::default());
        let mut s = Supervisor::new(Arc::clone(&a), &limits(10, 60), t0);
        a.reads.fetch_add(1, Ordering::Relaxed);
        let req = request(&a);
        assert_eq!(s.check(t0 + Duration::from_secs(1)), None);
        // A long request is the request timeout's business, not ours.
        assert_eq!(s.check(t0 + Duration::from_secs(100)), None);
        drop(req);
        let idle_from = t0 + Duration::from_secs(101);
        assert_eq!(s.check(idle_from), None);
        assert_eq!(s.check(idle_from + Duration::from_secs(30)), None);
        assert!(s.check(idle_from + Duration::from_secs(61)).is_some());
    }

    /// Found by `reload_under_load_never_mixes_versions` failing with
    /// "channel closed" on a loaded machine.
    #[test]
    fn busy_connection_sampled_in_head_phase_was_closed() {
        let t0 = Instant::now();
        let a = Arc::new(Activity::default());
        let mut s = Supervisor::new(Arc::clone(&a), &limits(10, 60), t0);
        // Every sweep finds the next request read but not yet dispatched,
        // while requests complete between sweeps.
        for second in 1..60 {
            drop(request(&a));
            a.reads.fetch_add(1, Ordering::Relaxed);
            assert_eq!(s.check(t0 + Duration::from_secs(second)), None, "{second}");
        }
        // With no request completing, the head timeout still applies.
        assert!(s.check(t0 + Duration::from_secs(71)).is_some());
    }

    #[test]
    fn next_head_after_idle_gets_the_head_timeout() {
        let t0 = Instant::now();
        let a = Arc::new(Activity::default());
        let mut s = Supervisor::new(Arc::clone(&a), &limits(10, 60), t0);
        a.reads.fetch_add(1, Ordering::Relaxed);
        drop(request(&a));
        assert_eq!(s.check(t0 + Duration::from_secs(1)), None);
        a.reads.fetch_add(1, Ordering::Relaxed);
        let head_from = t0 + Duration::from_secs(2);
        assert_eq!(s.check(head_from), None);
        assert!(s.check(head_from + Duration::from_secs(11)).is_some());
    }
}
