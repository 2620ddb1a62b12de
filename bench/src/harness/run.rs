//! One harness run: per mechanism, start real servers on a real store,
//! create the population, drive the phases, measure revocation, and
//! collect the results; then judge them and write the reports.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::http::{self, Conn};
use super::jwtkeys::SigningKey;
use super::load::{self, ClosedLoop, LoadResult, OpenLoop, Target};
use super::mechanism::{policy_yaml, Backend, Mechanism, SECRET_ENV};
use super::population::{self, verdict, Cred, Kind};
use super::procfs::{status_bytes, CpuSample, Environment};
use super::recommend::recommend;
use super::results::{MechanismResult, PhaseKind, PhaseResult, Report, RevocationResult, Status};
use super::revoke::revoke_many;
use super::server::{Instance, ServeSpec};
use super::stores::StoreNs;
use super::units::{lag, ms, rate};
use super::workload::{Endpoint, Workload};
use super::{report, server, HarnessError};

/// What `portcullis-bench run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub workload: PathBuf,
    pub quick: bool,
    pub out: PathBuf,
    pub portcullis: Option<PathBuf>,
    /// Worker threads of the load generator.
    pub client_threads: usize,
}

/// Terminal output: progress bars on a terminal, plain lines otherwise.
struct Console {
    multi: MultiProgress,
    tty: bool,
}

impl Console {
    fn new() -> Self {
        let multi = MultiProgress::new();
        let tty = !multi.is_hidden();
        Console { multi, tty }
    }

    fn line(&self, s: &str) {
        if self.tty {
            let _ = self.multi.println(s);
        } else {
            eprintln!("{s}");
        }
    }

    fn bar(&self, len: u64, prefix: &str, template: &str) -> ProgressBar {
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let b = self.multi.add(ProgressBar::new(len).with_style(style));
        b.set_prefix(prefix.to_string());
        b
    }

    /// A bar that fills over `duration` and shows the answers counted so far.
    fn phase(&self, prefix: &str, duration: Duration) -> ProgressBar {
        self.bar(
            duration.as_millis() as u64,
            prefix,
            "{prefix:>44} [{bar:30}] {msg}",
        )
    }
}

/// Runs `fut` while a ticker moves `bar` along `duration` and shows `counter`.
async fn with_bar<F: std::future::Future>(
    bar: &ProgressBar,
    duration: Duration,
    counter: &AtomicU64,
    fut: F,
) -> F::Output {
    let start = Instant::now();
    let mut fut = std::pin::pin!(fut);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            out = &mut fut => return out,
            _ = tick.tick() => {
                let e = start.elapsed();
                bar.set_position(e.min(duration).as_millis() as u64);
                let n = counter.load(Ordering::Relaxed);
                let secs = e.as_secs_f64().max(1e-3);
                bar.set_message(format!("{} answers, {}", n, rate(n as f64 / secs)));
            }
        }
    }
}

fn admin_token() -> String {
    (0..40).map(|_| fastrand::alphanumeric()).collect()
}

async fn wait_ready(addr: SocketAddr, within: Duration) -> Result<(), String> {
    let start = Instant::now();
    let mut conn = Conn::new(addr);
    let req = http::request("GET", "/readyz", &[], b"");
    let mut last = String::from("no answer");
    while start.elapsed() < within {
        match conn.send_within(&req, Duration::from_secs(2)).await {
            Ok(r) if r.status == 200 => return Ok(()),
            Ok(r) => {
                last = format!(
                    "{} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                )
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "not ready after {}: {last}",
        humantime::format_duration(within)
    ))
}

/// Asks `addr` about each credential once; the first wrong answer is an error.
async fn preflight(
    addr: SocketAddr,
    endpoint: Endpoint,
    checks: &[(Cred, Kind)],
    within: Duration,
) -> Result<(), String> {
    let mut conn = Conn::new(addr);
    for (cred, kind) in checks {
        let req = population::question(endpoint, cred, 0);
        let start = Instant::now();
        loop {
            let r = conn
                .send_within(&req, Duration::from_secs(5))
                .await
                .map_err(|e| format!("preflight: {e}"))?;
            let v = verdict(endpoint, &r);
            if v == Some(kind.expect_allow()) {
                break;
            }
            // A replica may still be loading the keys just created: wait for it.
            if start.elapsed() > within {
                let reason = r
                    .json()
                    .get("reason")
                    .and_then(|x| x.as_str().map(str::to_string))
                    .unwrap_or_else(|| "?".into());
                return Err(format!(
                    "preflight: a {} credential got {} (status {}, reason `{reason}`)",
                    match kind {
                        Kind::Valid => "valid",
                        Kind::Invalid => "invalid",
                        Kind::Missing => "missing",
                    },
                    match v {
                        Some(true) => "allow",
                        Some(false) => "deny",
                        None => "no decision",
                    },
                    r.status
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Per-run state shared by the mechanisms.
struct Run<'a> {
    w: &'a Workload,
    binary: &'a Path,
    work: &'a Path,
    logs: &'a Path,
    console: &'a Console,
    stores: HashMap<Backend, Result<StoreNs, String>>,
    /// Valid keys created per backend (shared by its modes).
    keys: HashMap<Backend, Vec<Cred>>,
    unknown: Vec<Cred>,
    proto: Arc<hdrhistogram::Histogram<u64>>,
    notes: Vec<String>,
}

/// What a mechanism needs besides its policy: the instances' store and
/// environment, and the credentials to present.
struct Setup {
    store: String,
    instances: usize,
    env: Vec<(String, String)>,
    policy: PathBuf,
}

impl Run<'_> {
    fn setup(
        &self,
        m: &Mechanism,
        dir: &Path,
        signer: Option<&SigningKey>,
    ) -> Result<Setup, Status> {
        let fail = |e: String| Status::Failed(e);
        std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create work dir: {e}")))?;
        let (store, instances) = match m.backend() {
            Some(b) => match self.stores.get(&b) {
                Some(Ok(ns)) => (ns.url(&m.store_options()), if b.shared() { 2 } else { 1 }),
                Some(Err(why)) => return Err(Status::Skipped(why.clone())),
                None => return Err(fail("store not prepared".into())),
            },
            None => (
                format!("sqlite://{}", dir.join("unused-keys.db").display()),
                1,
            ),
        };
        let mut env = Vec::new();
        let key_ref = match signer {
            Some(s) => {
                if let Some(secret) = s.secret() {
                    env.push((SECRET_ENV.to_string(), secret.to_string()));
                }
                Some(s.install(dir, "jwt").map_err(fail)?)
            }
            None => None,
        };
        let policy = dir.join("policy.yaml");
        std::fs::write(&policy, policy_yaml(m, key_ref.as_ref(), self.w.jwt_leeway))
            .map_err(|e| fail(format!("cannot write policy: {e}")))?;
        Ok(Setup {
            store,
            instances,
            env,
            policy,
        })
    }

    fn start(&self, m: &Mechanism, s: &Setup, token: &str) -> Result<Vec<Instance>, String> {
        let mut out = Vec::new();
        for i in 0..s.instances {
            let name = ["a", "b", "c"].get(i).copied().unwrap_or("x");
            let spec = ServeSpec {
                binary: self.binary,
                policy: &s.policy,
                store: &s.store,
                admin_token: (i == 0).then_some(token),
                env: &s.env,
                extra_args: &self.w.server_args,
                log: self.logs.join(format!("{}-{name}.log", m.id())),
            };
            out.push(Instance::start(&spec)?);
        }
        Ok(out)
    }

    async fn credentials(
        &mut self,
        m: &Mechanism,
        admin: Option<SocketAddr>,
        token: &str,
        signer: Option<&SigningKey>,
    ) -> Result<(Vec<Cred>, Vec<Cred>), String> {
        match (m.backend(), signer) {
            (Some(b), _) => {
                if !self.keys.contains_key(&b) {
                    let admin = admin.ok_or("the admin API did not start")?;
                    let n = self.w.population.keys;
                    let bar = self.console.bar(
                        n as u64,
                        &format!("creating {n} keys in {}", b.name()),
                        "{prefix:>44} [{bar:30}] {pos}/{len}, {eta} left",
                    );
                    let started = Instant::now();
                    let tick = || bar.inc(1);
                    let created = population::create_keys(admin, token, n, 8, &tick).await?;
                    bar.finish_and_clear();
                    self.console.line(&format!(
                        "  created {} keys in {} through the admin API ({:.1} s, {})",
                        created.len(),
                        b.name(),
                        started.elapsed().as_secs_f64(),
                        rate(created.len() as f64 / started.elapsed().as_secs_f64().max(1e-3))
                    ));
                    self.keys.insert(
                        b,
                        created.into_iter().map(|k| Cred::ApiKey(k.key)).collect(),
                    );
                }
                let valid = self.keys.get(&b).cloned().unwrap_or_default();
                Ok((valid, self.unknown.clone()))
            }
            (None, Some(s)) => {
                let ttl = self.w.population.token_ttl.get();
                let n = self.w.population.tokens;
                let mut valid = Vec::with_capacity(n);
                for i in 0..n {
                    valid.push(Cred::Bearer(s.token(&format!("user-{i}"), ttl)?));
                }
                // Invalid: the same claims signed by a key the server does not know.
                let stranger = SigningKey::generate(s.alg())?;
                let mut invalid = Vec::new();
                for i in 0..n.clamp(1, 200) {
                    invalid.push(Cred::Bearer(stranger.token(&format!("user-{i}"), ttl)?));
                }
                Ok((valid, invalid))
            }
            (None, None) => Err("no signing key".into()),
        }
    }

    async fn phase_open(
        &self,
        label: &str,
        t: &Target,
        pid: u32,
        cfg: OpenLoop,
        kind: PhaseKind,
    ) -> (LoadResult, PhaseResult) {
        let counter = Arc::new(AtomicU64::new(0));
        let bar = self.console.phase(label, cfg.duration);
        let before = CpuSample::take(pid);
        let r = with_bar(
            &bar,
            cfg.duration,
            &counter,
            load::open_loop(
                t,
                cfg,
                Arc::clone(&counter),
                Arc::new(AtomicBool::new(false)),
            ),
        )
        .await;
        let after = CpuSample::take(pid);
        let p = PhaseResult::from_load(kind, Some(cfg.rate), cfg.connections, &r, &before, &after);
        bar.finish_and_clear();
        self.console.line(&format!(
            "  {label}: {} answered, p50 {} p99 {} p99.9 {}{}{}",
            rate(p.throughput),
            ms(p.latency_ms.p50),
            ms(p.latency_ms.p99),
            ms(p.latency_ms.p999),
            p.cpu_ms_per_1k
                .map(|c| format!(", {} CPU/1k", ms(c)))
                .unwrap_or_default(),
            problems(&p)
        ));
        (r, p)
    }

    async fn mechanism(&mut self, m: &Mechanism, index: usize, total: usize) -> MechanismResult {
        let mut res = MechanismResult::new(m, Status::Measured);
        self.console.line(&format!("[{}/{total}] {m}", index + 1));
        let signer = match m {
            Mechanism::Jwt { alg, .. } => match SigningKey::generate(alg.0) {
                Ok(s) => Some(s),
                Err(e) => {
                    res.status = Status::Failed(e);
                    return res;
                }
            },
            Mechanism::ApiKey { .. } => None,
        };
        let dir = self.work.join(m.id());
        let setup = match self.setup(m, &dir, signer.as_ref()) {
            Ok(s) => s,
            Err(status) => {
                if let Status::Skipped(why) = &status {
                    self.console.line(&format!("  {why}"));
                }
                res.status = status;
                return res;
            }
        };
        let token = admin_token();
        let started = Instant::now();
        let mut instances = match self.start(m, &setup, &token) {
            Ok(i) => i,
            Err(e) => {
                self.console.line(&format!("  failed: {e}"));
                res.status = Status::Failed(e);
                return res;
            }
        };
        res.instances = instances.len();
        for inst in &instances {
            if let Err(e) = wait_ready(inst.addr, Duration::from_secs(60)).await {
                res.status = Status::Failed(format!("{e}\n{}", server::log_tail(&inst.log, 10)));
                return res;
            }
        }
        res.startup_s = Some(started.elapsed().as_secs_f64());
        let Some(primary) = instances.first() else {
            res.status = Status::Failed("no instance".into());
            return res;
        };
        let (addr, admin, pid) = (primary.addr, primary.admin, primary.pid());
        let (valid, invalid) = match self.credentials(m, admin, &token, signer.as_ref()).await {
            Ok(c) => c,
            Err(e) => {
                self.console.line(&format!("  failed: {e}"));
                res.status = Status::Failed(e);
                return res;
            }
        };
        let w = self.w;
        // Every valid credential about once per set, at least 2,000 requests.
        let n = if w.mix.valid > 0.0 {
            ((valid.len() as f64 / w.mix.valid).ceil() as usize).clamp(2_000, 100_000)
        } else {
            2_000
        };
        let requests = population::request_set(w.endpoint, &valid, &invalid, w.mix, n, 0x5eed);
        let target = Target {
            addr,
            endpoint: w.endpoint,
            requests: Arc::new(requests),
            proto: Arc::clone(&self.proto),
        };
        let mut checks: Vec<(Cred, Kind)> = Vec::new();
        if let Some(v) = valid.first() {
            checks.push((v.clone(), Kind::Valid));
        }
        if let Some(v) = valid.last() {
            checks.push((v.clone(), Kind::Valid));
        }
        if let Some(i) = invalid.first() {
            checks.push((i.clone(), Kind::Invalid));
        }
        checks.push((Cred::Nothing, Kind::Missing));
        for inst in &instances {
            if let Err(e) = preflight(inst.addr, w.endpoint, &checks, Duration::from_secs(30)).await
            {
                self.console.line(&format!("  failed: {e}"));
                res.status = Status::Failed(e);
                return res;
            }
        }

        let expected = w.needs.expected_rate as f64;
        let mut offset = 0usize;
        let mut next_offset = |n: usize| {
            offset = offset.wrapping_add(n.max(1) * 7919);
            offset
        };
        if !w.warmup.get().is_zero() {
            let _ = self
                .phase_open(
                    &format!("{} warm-up", m.id()),
                    &target,
                    pid,
                    OpenLoop {
                        rate: expected,
                        duration: w.warmup.get(),
                        connections: w.open_connections,
                        offset: next_offset(1),
                    },
                    PhaseKind::Open,
                )
                .await;
        }
        for r in &w.rates {
            let (_, p) = self
                .phase_open(
                    &format!("{} open {}", m.id(), rate(*r as f64)),
                    &target,
                    pid,
                    OpenLoop {
                        rate: *r as f64,
                        duration: w.phase_duration.get(),
                        connections: w.open_connections,
                        offset: next_offset(2),
                    },
                    PhaseKind::Open,
                )
                .await;
            res.phases.push(p);
        }
        {
            let label = format!("{} closed x{}", m.id(), w.closed_connections);
            let counter = Arc::new(AtomicU64::new(0));
            let bar = self.console.phase(&label, w.closed_duration.get());
            let before = CpuSample::take(pid);
            let cfg = ClosedLoop {
                connections: w.closed_connections,
                duration: w.closed_duration.get(),
                offset: next_offset(3),
            };
            let r = with_bar(
                &bar,
                cfg.duration,
                &counter,
                load::closed_loop(&target, cfg, Arc::clone(&counter)),
            )
            .await;
            let after = CpuSample::take(pid);
            bar.finish_and_clear();
            let p = PhaseResult::from_load(
                PhaseKind::Closed,
                None,
                cfg.connections,
                &r,
                &before,
                &after,
            );
            self.console.line(&format!(
                "  {label}: {} max, p50 {} p99 {}{}",
                rate(p.throughput),
                ms(p.latency_ms.p50),
                ms(p.latency_ms.p99),
                problems(&p)
            ));
            res.phases.push(p);
        }

        res.revocation = Some(match m {
            Mechanism::Jwt { .. } => RevocationResult::expiry(
                w.population.token_ttl.get().as_secs_f64() + w.jwt_leeway.get().as_secs_f64(),
            ),
            Mechanism::ApiKey { cache_ttl, .. } => {
                let ttl = cache_ttl.map(|t| t.get()).unwrap_or_default();
                let timeout = w
                    .revocation_timeout
                    .get()
                    .max(ttl * 2 + Duration::from_secs(5));
                let max = res.closed().map(|p| p.throughput).unwrap_or(expected);
                let bg_rate = expected.min(max * 0.5).max(1.0);
                self.revocations(
                    &instances, admin, &token, &target, pid, timeout, bg_rate, &mut res,
                )
                .await
            }
        });
        if let Some(r) = &res.revocation {
            self.console.line(&format!(
                "  revocation: {} worst, {} median{}",
                r.worst_s.map(lag).unwrap_or_else(|| "n/a".into()),
                r.p50_s.map(lag).unwrap_or_else(|| "n/a".into()),
                if r.method == "expiry" {
                    " (a JWT lives until exp)".to_string()
                } else if r.failures.is_empty() {
                    String::new()
                } else {
                    format!(", {} failed", r.failures.len())
                }
            ));
        }
        res.peak_rss_bytes = status_bytes(&pid.to_string(), "VmHWM");
        for (i, inst) in instances.iter_mut().enumerate() {
            if !inst.alive() {
                res.status = Status::Failed(format!(
                    "instance {} exited during the run:\n{}",
                    i + 1,
                    server::log_tail(&inst.log, 10)
                ));
            }
        }
        res
    }

    #[allow(clippy::too_many_arguments)]
    async fn revocations(
        &self,
        instances: &[Instance],
        admin: Option<SocketAddr>,
        token: &str,
        target: &Target,
        pid: u32,
        timeout: Duration,
        bg_rate: f64,
        res: &mut MechanismResult,
    ) -> RevocationResult {
        let w = self.w;
        let Some(admin) = admin else {
            return RevocationResult::measured(
                vec![],
                vec!["no admin API".into()],
                timeout.as_secs_f64(),
            );
        };
        if w.revocations == 0 {
            return RevocationResult::measured(vec![], vec![], timeout.as_secs_f64());
        }
        let addrs: Vec<SocketAddr> = instances.iter().map(|i| i.addr).collect();
        let label = format!(
            "{} revoke {} (load {})",
            res.id,
            w.revocations,
            rate(bg_rate)
        );
        let counter = Arc::new(AtomicU64::new(0));
        let bar = self.console.bar(
            w.revocations as u64,
            &label,
            "{prefix:>44} [{bar:30}] {pos}/{len} {msg}",
        );
        bar.set_message("waiting for every instance to deny");
        let stop = Arc::new(AtomicBool::new(false));
        let before = CpuSample::take(pid);
        let background = load::open_loop(
            target,
            OpenLoop {
                rate: bg_rate,
                duration: timeout * (w.revocations as u32 + 1),
                connections: w.open_connections.min(16),
                offset: 11,
            },
            Arc::clone(&counter),
            Arc::clone(&stop),
        );
        let measure = async {
            let out = revoke_many(
                admin,
                token,
                &addrs,
                w.endpoint,
                timeout,
                w.revocations,
                Duration::from_millis(200),
            )
            .await;
            stop.store(true, Ordering::Relaxed);
            out
        };
        let (bg, outcomes) = tokio::join!(background, measure);
        let after = CpuSample::take(pid);
        bar.set_position(w.revocations as u64);
        bar.finish_and_clear();
        res.phases.push(PhaseResult::from_load(
            PhaseKind::Revocation,
            Some(bg_rate),
            w.open_connections.min(16),
            &bg,
            &before,
            &after,
        ));
        let mut samples = Vec::new();
        let mut failures = Vec::new();
        for o in outcomes {
            match o {
                Ok(s) => samples.push(s),
                Err(e) => failures.push(e),
            }
        }
        RevocationResult::measured(samples, failures, timeout.as_secs_f64())
    }
}

fn problems(p: &PhaseResult) -> String {
    let mut s = Vec::new();
    let wrong: u64 = p.wrong.iter().sum();
    if wrong > 0 {
        s.push(format!("{wrong} WRONG answers"));
    }
    if p.errors > 0 {
        s.push(format!("{} errors", p.errors));
    }
    if p.unsent > 0 {
        s.push(format!("{} never sent (saturated)", p.unsent));
    }
    if s.is_empty() {
        String::new()
    } else {
        format!(" [{}]", s.join(", "))
    }
}

fn run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{}_{}", secs, std::process::id())
}

fn write(path: &Path, text: &str) -> Result<(), HarnessError> {
    std::fs::write(path, text).map_err(|source| HarnessError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs a workload and writes `report.json`, `report.md` and `report.html`
/// into `opts.out`.
pub fn run(opts: &RunOptions) -> Result<Report, HarnessError> {
    let w = Workload::load(&opts.workload, opts.quick)?;
    let binary = server::find_binary(opts.portcullis.as_deref())?;
    let mkdir = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|source| HarnessError::Write {
            path: p.to_path_buf(),
            source,
        })
    };
    mkdir(&opts.out)?;
    let logs = opts.out.join("logs");
    mkdir(&logs)?;
    let work = tempfile::Builder::new()
        .prefix("portcullis-bench-")
        .tempdir()
        .map_err(|source| HarnessError::Write {
            path: std::env::temp_dir(),
            source,
        })?;
    let env = Environment::detect(&binary, opts.client_threads);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.client_threads.max(1))
        .enable_all()
        .build()
        .map_err(HarnessError::Runtime)?;
    let started = Instant::now();
    let console = Console::new();
    console.line(&format!(
        "portcullis-bench: workload `{}`{} with {} mechanisms, server {}",
        w.name,
        if w.quick { " (quick)" } else { "" },
        w.mechanisms.len(),
        binary.display()
    ));
    let proto =
        Arc::new(load::histogram().map_err(|e| HarnessError::Runtime(std::io::Error::other(e)))?);
    let (results, notes) = rt.block_on(async {
        let id = run_id();
        let mut stores = HashMap::new();
        for b in w.mechanisms.iter().filter_map(Mechanism::backend) {
            if let std::collections::hash_map::Entry::Vacant(e) = stores.entry(b) {
                e.insert(StoreNs::prepare(b, work.path(), &id).await);
            }
        }
        let mut run = Run {
            w: &w,
            binary: &binary,
            work: work.path(),
            logs: &logs,
            console: &console,
            stores,
            keys: HashMap::new(),
            unknown: population::unknown_keys(w.population.keys.clamp(100, 1000)),
            proto,
            notes: Vec::new(),
        };
        let mut results = Vec::new();
        for (i, m) in w.mechanisms.iter().enumerate() {
            let r = run.mechanism(m, i, w.mechanisms.len()).await;
            results.push(r);
        }
        for ns in run.stores.values().flatten() {
            if let Err(e) = ns.cleanup().await {
                run.notes.push(format!("could not clean up {ns:?}: {e}"));
            }
        }
        (results, run.notes)
    });
    let mut notes = notes;
    notes.extend(run_notes(&w, &env, &results));
    let recommendation = recommend(&results, &w);
    let report = Report {
        harness_version: env!("CARGO_PKG_VERSION").to_string(),
        workload: w,
        environment: env,
        mechanisms: results,
        recommendation,
        notes,
        run_seconds: started.elapsed().as_secs_f64(),
    };
    write(
        &opts.out.join("report.json"),
        &serde_json::to_string_pretty(&report)?,
    )?;
    write(&opts.out.join("report.md"), &report::markdown(&report))?;
    write(&opts.out.join("report.html"), &report::html(&report))?;
    console.line(&format!(
        "\n{}\nreports: {}/report.{{md,html,json}} ({:.0} s)",
        report.recommendation.summary,
        opts.out.display(),
        report.run_seconds
    ));
    Ok(report)
}

/// Caveats the numbers themselves reveal.
fn run_notes(w: &Workload, env: &Environment, results: &[MechanismResult]) -> Vec<String> {
    let mut notes = Vec::new();
    if w.quick {
        notes.push("quick run: short phases, one rate, a small population; a first look, not a measurement to decide on.".into());
    }
    if env.load_average > env.cores as f64 * 0.5 {
        notes.push(format!(
            "the machine was busy before the run (load average {:.1} on {} cores): expect noise.",
            env.load_average, env.cores
        ));
    }
    for r in results {
        for p in &r.phases {
            let client_share = if p.seconds > 0.0 {
                p.client_cpu_s / p.seconds
            } else {
                0.0
            };
            if p.kind != PhaseKind::Revocation && p.machine_busy > 0.9 && client_share > 0.5 {
                notes.push(format!(
                    "{} ({:?} phase{}): the machine was {:.0}% busy and the load generator used {:.0}% of a core: the client may be part of the limit.",
                    r.label,
                    p.kind,
                    p.offered_rate.map(|o| format!(" at {}", rate(o))).unwrap_or_default(),
                    p.machine_busy * 100.0,
                    client_share * 100.0
                ));
                break;
            }
        }
    }
    if results.iter().any(|r| {
        r.measured() && matches!(r.mechanism, Mechanism::ApiKey { backend, .. } if backend.shared())
    }) {
        notes.push("CPU per decision counts the portcullis process only: PostgreSQL and Redis spend their own CPU on lookups (see the machine-busy column).".into());
    }
    notes
}
