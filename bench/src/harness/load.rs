//! Load generation: open loop (a fixed arrival rate, latency measured from
//! each request's intended send time, so a slow server cannot slow the
//! schedule down and hide its own stalls: no coordinated omission) and
//! closed loop (N connections, each sending as soon as its last answer came).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::http::Conn;
use super::population::{verdict, Kind, Prepared};
use super::workload::Endpoint;

/// Latencies are recorded in microseconds, up to 60 s, 3 significant digits.
pub const HIST_MAX_US: u64 = 60_000_000;
/// One request may take this long before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An empty latency histogram (microseconds, 1 us to 60 s, 3 digits).
pub fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).map_err(|e| format!("histogram: {e}"))
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(HIST_MAX_US);
    h.saturating_record(us.clamp(1, HIST_MAX_US));
}

/// What one phase measured on the client side.
#[derive(Clone)]
pub struct LoadResult {
    pub hist: Histogram<u64>,
    /// Answers received (decisions or not).
    pub completed: u64,
    /// Transport failures, timeouts, and answers that were no decision.
    pub errors: u64,
    /// Decisions that contradicted the credential (by kind: valid, invalid, missing).
    pub wrong: [u64; 3],
    /// Open loop: requests whose send time had come but that were never
    /// sent before the phase ended (the server was too slow). Recorded in
    /// the histogram with the time they had waited, a lower bound.
    pub unsent: u64,
    /// From the first intended send to the last answer.
    pub elapsed: Duration,
    /// Answers received within the phase's own window (open loop: its duration).
    pub in_window: u64,
    /// The window `in_window` counts over; zero for a closed loop.
    pub window: Duration,
}

impl LoadResult {
    /// An empty result whose histogram has `proto`'s bounds.
    pub fn new(proto: &Histogram<u64>) -> Self {
        LoadResult {
            hist: Histogram::new_from(proto),
            completed: 0,
            errors: 0,
            wrong: [0; 3],
            unsent: 0,
            elapsed: Duration::ZERO,
            in_window: 0,
            window: Duration::ZERO,
        }
    }

    fn merge(&mut self, o: &LoadResult) {
        let _ = self.hist.add(&o.hist);
        self.completed += o.completed;
        self.errors += o.errors;
        for (a, b) in self.wrong.iter_mut().zip(o.wrong) {
            *a += b;
        }
        self.unsent += o.unsent;
        self.in_window += o.in_window;
    }

    /// Decisions per second actually answered: within the window for an
    /// open loop (answers trickling in after it do not count, so a
    /// saturated server is not flattered), over the whole run for a closed one.
    pub fn throughput(&self) -> f64 {
        if !self.window.is_zero() {
            return self.in_window as f64 / self.window.as_secs_f64();
        }
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.completed as f64 / s
        } else {
            0.0
        }
    }

    pub fn wrong_total(&self) -> u64 {
        self.wrong.iter().sum()
    }
}

/// Where the load goes and what it sends.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub endpoint: Endpoint,
    pub requests: Arc<Vec<Prepared>>,
    /// An empty histogram with the bounds every phase uses.
    pub proto: Arc<Histogram<u64>>,
}

fn kind_index(k: Kind) -> usize {
    match k {
        Kind::Valid => 0,
        Kind::Invalid => 1,
        Kind::Missing => 2,
    }
}

/// Sends one request and books its outcome.
async fn exchange(
    conn: &mut Conn,
    t: &Target,
    item: usize,
    from: Instant,
    window_end: Option<Instant>,
    out: &mut LoadResult,
    counter: &AtomicU64,
) {
    let Some(p) = t.requests.get(item % t.requests.len().max(1)) else {
        out.errors += 1;
        return;
    };
    match conn.send_within(&p.bytes, REQUEST_TIMEOUT).await {
        Ok(r) => {
            let now = Instant::now();
            record(&mut out.hist, now.saturating_duration_since(from));
            out.completed += 1;
            if window_end.is_some_and(|end| now <= end) {
                out.in_window += 1;
            }
            match verdict(t.endpoint, &r) {
                Some(allow) if allow == p.kind.expect_allow() => {}
                Some(_) => {
                    if let Some(w) = out.wrong.get_mut(kind_index(p.kind)) {
                        *w += 1;
                    }
                }
                None => out.errors += 1,
            }
        }
        Err(_) => {
            record(&mut out.hist, from.elapsed());
            out.errors += 1;
        }
    }
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Open-loop settings.
#[derive(Debug, Clone, Copy)]
pub struct OpenLoop {
    /// Requests per second offered.
    pub rate: f64,
    pub duration: Duration,
    pub connections: usize,
    /// Where in the request set this phase starts.
    pub offset: usize,
}

/// Offers `rate` requests per second for `duration` over a pool of
/// connections. Request `i` is due at `start + i / rate`; a free
/// connection takes the next due request. When every connection is busy,
/// due requests wait, and their latency counts from when they were due.
/// A request sent after a timer wait counts from its actual send (timer
/// slack is the client's, not the server's). `stop` ends the phase early.
pub async fn open_loop(
    t: &Target,
    cfg: OpenLoop,
    progress: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> LoadResult {
    let rate = cfg.rate.max(0.001);
    let total = (rate * cfg.duration.as_secs_f64()).ceil() as u64;
    let interval_ns = 1e9 / rate;
    // Past this, due requests are no longer sent: they are booked as unsent.
    let grace = cfg
        .duration
        .mul_f64(0.5)
        .clamp(Duration::from_secs(1), Duration::from_secs(10));
    let next = Arc::new(AtomicU64::new(0));
    let mut conns = Vec::with_capacity(cfg.connections);
    for _ in 0..cfg.connections.max(1) {
        let mut c = Conn::new(t.addr);
        let _ = c.connect().await;
        conns.push(c);
    }
    let start = Instant::now() + Duration::from_millis(5);
    let hard_stop = start + cfg.duration + grace;
    let window_end = start + cfg.duration;
    let due = move |i: u64| start + Duration::from_nanos((i as f64 * interval_ns) as u64);
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in conns {
        let t = t.clone();
        let next = Arc::clone(&next);
        let progress = Arc::clone(&progress);
        let stop = Arc::clone(&stop);
        let offset = cfg.offset;
        tasks.spawn(async move {
            let mut out = LoadResult::new(&t.proto);
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let intended = due(i);
                let now = Instant::now();
                let from = if intended > now {
                    tokio::time::sleep_until(intended.into()).await;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    Instant::now()
                } else if now > hard_stop {
                    // Too late to send: give the slot back for booking as unsent.
                    next.fetch_sub(1, Ordering::Relaxed);
                    break;
                } else {
                    intended
                };
                exchange(
                    &mut conn,
                    &t,
                    offset.wrapping_add(i as usize),
                    from,
                    Some(window_end),
                    &mut out,
                    &progress,
                )
                .await;
            }
            out
        });
    }
    let mut result = LoadResult::new(&t.proto);
    while let Some(r) = tasks.join_next().await {
        if let Ok(r) = r {
            result.merge(&r);
        }
    }
    let end = Instant::now();
    // Book every request that was due but never sent, with the wait it had
    // already suffered (a lower bound of its latency).
    // A phase stopped on purpose (background load) owes nothing after the stop.
    let claimed = if stop.load(Ordering::Relaxed) {
        total
    } else {
        next.load(Ordering::Relaxed).min(total)
    };
    for i in claimed..total {
        let intended = due(i);
        if intended >= end {
            break;
        }
        record(&mut result.hist, end - intended);
        result.unsent += 1;
    }
    result.elapsed = end.saturating_duration_since(start);
    // A phase stopped early is judged over the time it actually ran.
    result.window = if stop.load(Ordering::Relaxed) {
        end.saturating_duration_since(start).min(cfg.duration)
    } else {
        cfg.duration
    };
    result
}

/// Closed-loop settings.
#[derive(Debug, Clone, Copy)]
pub struct ClosedLoop {
    pub connections: usize,
    pub duration: Duration,
    pub offset: usize,
}

/// `connections` connections, each sending its next request as soon as the
/// last one was answered, for `duration`: the most this server answers.
pub async fn closed_loop(t: &Target, cfg: ClosedLoop, progress: Arc<AtomicU64>) -> LoadResult {
    let next = Arc::new(AtomicU64::new(0));
    let mut conns = Vec::with_capacity(cfg.connections);
    for _ in 0..cfg.connections.max(1) {
        let mut c = Conn::new(t.addr);
        let _ = c.connect().await;
        conns.push(c);
    }
    let start = Instant::now();
    let end = start + cfg.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in conns {
        let t = t.clone();
        let next = Arc::clone(&next);
        let progress = Arc::clone(&progress);
        let offset = cfg.offset;
        tasks.spawn(async move {
            let mut out = LoadResult::new(&t.proto);
            while Instant::now() < end {
                let i = next.fetch_add(1, Ordering::Relaxed);
                exchange(
                    &mut conn,
                    &t,
                    offset.wrapping_add(i as usize),
                    Instant::now(),
                    None,
                    &mut out,
                    &progress,
                )
                .await;
            }
            out
        });
    }
    let mut result = LoadResult::new(&t.proto);
    while let Some(r) = tasks.join_next().await {
        if let Ok(r) = r {
            result.merge(&r);
        }
    }
    result.elapsed = start.elapsed();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::population::question;
    use crate::harness::population::Cred;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A tiny decision server: allows requests carrying `pk_live_good`,
    /// denies the rest, after `delay`. Real sockets, real HTTP framing.
    async fn fake_decider(delay: Duration) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        // Requests here are small; answer each complete one.
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_string();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length: "))
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(0);
                            if buf.len() < end + 4 + len {
                                break;
                            }
                            let body =
                                String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                            buf.drain(..end + 4 + len);
                            tokio::time::sleep(delay).await;
                            let allow = body.contains("pk_live_good");
                            let answer = format!(
                                "{{\"allow\":{allow},\"status\":{}}}",
                                if allow { 200 } else { 401 }
                            );
                            let resp = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{answer}",
                                answer.len()
                            );
                            if s.write_all(resp.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    fn target(addr: SocketAddr) -> Target {
        let requests = vec![
            Prepared {
                bytes: question(Endpoint::Decide, &Cred::ApiKey("pk_live_good".into()), 1),
                kind: Kind::Valid,
            },
            Prepared {
                bytes: question(Endpoint::Decide, &Cred::ApiKey("pk_live_bad".into()), 2),
                kind: Kind::Invalid,
            },
            // The server allows this one: a wrong answer the harness must count.
            Prepared {
                bytes: question(Endpoint::Decide, &Cred::ApiKey("pk_live_good".into()), 3),
                kind: Kind::Missing,
            },
        ];
        Target {
            addr,
            endpoint: Endpoint::Decide,
            requests: Arc::new(requests),
            proto: Arc::new(histogram().unwrap()),
        }
    }

    #[tokio::test]
    async fn open_loop_sends_the_schedule_and_counts_wrong_answers() {
        let addr = fake_decider(Duration::ZERO).await;
        let t = target(addr);
        let progress = Arc::new(AtomicU64::new(0));
        let r = open_loop(
            &t,
            OpenLoop {
                rate: 300.0,
                duration: Duration::from_millis(500),
                connections: 4,
                offset: 0,
            },
            Arc::clone(&progress),
            Arc::new(AtomicBool::new(false)),
        )
        .await;
        assert_eq!(r.completed, 150);
        assert_eq!(r.unsent, 0);
        assert_eq!(r.errors, 0);
        assert_eq!(r.wrong, [0, 0, 50]);
        assert_eq!(r.hist.len(), 150);
        assert_eq!(progress.load(Ordering::Relaxed), 150);
    }

    #[tokio::test]
    async fn a_slow_server_shows_in_latency_not_in_the_schedule() {
        // One connection, 20 ms per answer, 200/s offered: the server can do
        // 50/s, so requests queue and their latency must grow far beyond 20 ms
        // (a closed-loop client would report 20 ms and hide the queue).
        let addr = fake_decider(Duration::from_millis(20)).await;
        let t = target(addr);
        let r = open_loop(
            &t,
            OpenLoop {
                rate: 200.0,
                duration: Duration::from_millis(500),
                connections: 1,
                offset: 0,
            },
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        )
        .await;
        assert_eq!(r.completed + r.unsent, 100);
        assert!(
            r.hist.value_at_quantile(0.99) > 100_000,
            "p99 {} us",
            r.hist.value_at_quantile(0.99)
        );
    }

    #[tokio::test]
    async fn closed_loop_runs_every_connection() {
        let addr = fake_decider(Duration::from_millis(1)).await;
        let t = target(addr);
        let r = closed_loop(
            &t,
            ClosedLoop {
                connections: 3,
                duration: Duration::from_millis(200),
                offset: 0,
            },
            Arc::new(AtomicU64::new(0)),
        )
        .await;
        assert!(r.completed >= 3);
        assert_eq!(r.errors, 0);
        assert!(r.wrong[2] > 0);
    }

    #[tokio::test]
    async fn a_dead_server_is_errors_not_answers() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let r = closed_loop(
            &target(addr),
            ClosedLoop {
                connections: 1,
                duration: Duration::from_millis(50),
                offset: 0,
            },
            Arc::new(AtomicU64::new(0)),
        )
        .await;
        assert_eq!(r.completed, 0);
        assert!(r.errors > 0);
    }
}
