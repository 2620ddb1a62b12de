//! A workload file (`bench/workloads/*.yaml`): what to compare, on what
//! traffic, against which stated needs. Parsed, checked (every problem at
//! once), then resolved into a [`Workload`] with `--quick` applied.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::mechanism::{Alg, Backend, Mechanism, Mode};
use super::units::Dur;
use super::HarnessError;

/// One value or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// What the workload's owner needs; the recommendation is judged against it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Needs {
    /// A revoked credential must be refused by every instance within this.
    pub revocation_deadline: Dur,
    /// Decision latency budget (p99) at the expected rate.
    pub latency_p99: Dur,
    /// Decisions per second one instance must sustain.
    pub expected_rate: u64,
}

/// Where the harness sends its questions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Endpoint {
    /// `POST /v1/decide` with a JSON question.
    #[default]
    Decide,
    /// `GET /v1/forward-auth` with `X-Forwarded-*` headers.
    ForwardAuth,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeySpec {
    backends: OneOrMany<Backend>,
    modes: OneOrMany<Mode>,
    /// TTL of the lookup cache (`lookup+cache` only); default 5s.
    #[serde(default)]
    cache_ttl: Option<Dur>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtSpec {
    algorithms: OneOrMany<Alg>,
    /// The verified-token cache: `true`, `false`, or both `[true, false]`.
    #[serde(default = "cache_on")]
    cache: OneOrMany<bool>,
}

fn cache_on() -> OneOrMany<bool> {
    OneOrMany::One(true)
}

/// One entry of `mechanisms:`: exactly one of `api_key` or `jwt`, each
/// field a value or a list (lists multiply out).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MechanismSpec {
    #[serde(default)]
    api_key: Option<ApiKeySpec>,
    #[serde(default)]
    jwt: Option<JwtSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Population {
    /// API keys created in each store.
    pub keys: usize,
    /// Distinct JWTs (one subject each).
    #[serde(default = "default_tokens")]
    pub tokens: usize,
    /// JWT lifetime (`exp - iat`): how long a token outlives its revocation.
    #[serde(default = "default_token_ttl")]
    pub token_ttl: Dur,
}

fn default_tokens() -> usize {
    1000
}

fn default_token_ttl() -> Dur {
    Dur::secs(900)
}

/// Fractions of the requests that carry a valid credential, an invalid one
/// (well-formed but unknown key; token signed by another key), or none.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    pub valid: f64,
    pub invalid: f64,
    pub missing: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenLoopSpec {
    rates: Vec<u64>,
    duration: Dur,
    #[serde(default = "default_open_connections")]
    connections: usize,
}

fn default_open_connections() -> usize {
    64
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClosedLoopSpec {
    connections: usize,
    duration: Dur,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevocationSpec {
    /// Keys revoked per API-key mechanism.
    #[serde(default = "default_revocations")]
    keys: usize,
    /// Longest wait for every instance to deny.
    #[serde(default = "default_revocation_timeout")]
    timeout: Dur,
}

fn default_revocations() -> usize {
    5
}

fn default_revocation_timeout() -> Dur {
    Dur::secs(60)
}

impl Default for RevocationSpec {
    fn default() -> Self {
        Self {
            keys: default_revocations(),
            timeout: default_revocation_timeout(),
        }
    }
}

/// What `--quick` changes; anything not given gets a small default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuickSpec {
    keys: Option<usize>,
    tokens: Option<usize>,
    rates: Option<Vec<u64>>,
    duration: Option<Dur>,
    closed_duration: Option<Dur>,
    warmup: Option<Dur>,
    revocations: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadFile {
    name: String,
    #[serde(default)]
    description: String,
    needs: Needs,
    #[serde(default)]
    endpoint: Endpoint,
    mechanisms: Vec<MechanismSpec>,
    population: Population,
    mix: Mix,
    open_loop: OpenLoopSpec,
    closed_loop: ClosedLoopSpec,
    #[serde(default = "default_warmup")]
    warmup: Dur,
    #[serde(default)]
    revocation: RevocationSpec,
    /// JWT clock-skew leeway in the generated policies.
    #[serde(default = "default_leeway")]
    jwt_leeway: Dur,
    /// Extra `portcullis serve` arguments.
    #[serde(default)]
    server_args: Vec<String>,
    #[serde(default)]
    quick: QuickSpec,
}

fn default_warmup() -> Dur {
    Dur::secs(2)
}

fn default_leeway() -> Dur {
    Dur::secs(5)
}

/// A checked workload, `--quick` applied: everything the run needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workload {
    pub name: String,
    pub description: String,
    pub needs: Needs,
    pub endpoint: Endpoint,
    pub mechanisms: Vec<Mechanism>,
    pub population: Population,
    pub mix: Mix,
    /// Offered rates of the open-loop phases, ascending; includes the expected rate.
    pub rates: Vec<u64>,
    pub phase_duration: Dur,
    pub open_connections: usize,
    pub closed_connections: usize,
    pub closed_duration: Dur,
    pub warmup: Dur,
    pub revocations: usize,
    pub revocation_timeout: Dur,
    pub jwt_leeway: Dur,
    pub server_args: Vec<String>,
    pub quick: bool,
}

impl Workload {
    /// Reads, checks and resolves a workload file.
    pub fn load(path: &Path, quick: bool) -> Result<Self, HarnessError> {
        let text = std::fs::read_to_string(path).map_err(|source| HarnessError::ReadWorkload {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, quick).map_err(|problems| HarnessError::InvalidWorkload {
            path: path.to_path_buf(),
            problems,
        })
    }

    /// Parses workload text; the error lists every problem found.
    pub fn parse(text: &str, quick: bool) -> Result<Self, Vec<String>> {
        let file: WorkloadFile = serde_yaml::from_str(text).map_err(|e| vec![e.to_string()])?;
        resolve(file, quick)
    }
}

fn mechanisms(specs: &[MechanismSpec], problems: &mut Vec<String>) -> Vec<Mechanism> {
    let mut out: Vec<Mechanism> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        match (&spec.api_key, &spec.jwt) {
            (Some(k), None) => {
                let backends = k.backends.to_vec();
                let modes = k.modes.to_vec();
                if backends.is_empty() || modes.is_empty() {
                    problems.push(format!(
                        "`mechanisms[{i}].api_key` needs at least one backend and one mode"
                    ));
                }
                if k.cache_ttl.is_some_and(|t| t.get().is_zero()) {
                    problems.push(format!(
                        "`mechanisms[{i}].api_key.cache_ttl` must be more than zero"
                    ));
                }
                for b in &backends {
                    for m in &modes {
                        out.push(Mechanism::ApiKey {
                            backend: *b,
                            mode: *m,
                            cache_ttl: (*m == Mode::LookupCache)
                                .then(|| k.cache_ttl.unwrap_or(Dur::secs(5))),
                        });
                    }
                }
            }
            (None, Some(j)) => {
                let algs = j.algorithms.to_vec();
                let caches = j.cache.to_vec();
                if algs.is_empty() || caches.is_empty() {
                    problems.push(format!(
                        "`mechanisms[{i}].jwt` needs at least one algorithm and one cache setting"
                    ));
                }
                for a in &algs {
                    for c in &caches {
                        out.push(Mechanism::Jwt { alg: *a, cache: *c });
                    }
                }
            }
            _ => problems.push(format!(
                "`mechanisms[{i}]` must be exactly one of `api_key` or `jwt`"
            )),
        }
    }
    let mut unique: Vec<Mechanism> = Vec::with_capacity(out.len());
    for m in out {
        if unique.contains(&m) {
            problems.push(format!("mechanism `{m}` is listed twice"));
        } else {
            unique.push(m);
        }
    }
    if unique.is_empty() {
        problems.push("`mechanisms` is empty: name at least one".into());
    }
    unique
}

fn resolve(f: WorkloadFile, quick: bool) -> Result<Workload, Vec<String>> {
    let mut problems = Vec::new();
    let mechanisms = mechanisms(&f.mechanisms, &mut problems);
    if f.name.trim().is_empty() {
        problems.push("`name` is empty".into());
    }
    let m = f.mix;
    for (name, v) in [
        ("valid", m.valid),
        ("invalid", m.invalid),
        ("missing", m.missing),
    ] {
        if !(0.0..=1.0).contains(&v) {
            problems.push(format!("`mix.{name}` is `{v}`: use a fraction from 0 to 1"));
        }
    }
    let sum = m.valid + m.invalid + m.missing;
    if (sum - 1.0).abs() > 1e-6 {
        problems.push(format!("`mix` fractions add up to {sum}, not 1"));
    }
    if f.needs.expected_rate == 0 {
        problems.push("`needs.expected_rate` must be more than zero".into());
    }
    if f.needs.latency_p99.get().is_zero() {
        problems.push("`needs.latency_p99` must be more than zero".into());
    }
    if f.population.keys == 0 && mechanisms.iter().any(|m| !m.is_jwt()) {
        problems.push("`population.keys` must be more than zero for API-key mechanisms".into());
    }
    if f.population.tokens == 0 && mechanisms.iter().any(Mechanism::is_jwt) {
        problems.push("`population.tokens` must be more than zero for JWT mechanisms".into());
    }
    if f.open_loop.rates.contains(&0) {
        problems.push("`open_loop.rates` may not contain 0".into());
    }
    for (name, d) in [
        ("open_loop.duration", f.open_loop.duration),
        ("closed_loop.duration", f.closed_loop.duration),
        ("population.token_ttl", f.population.token_ttl),
        ("revocation.timeout", f.revocation.timeout),
    ] {
        if d.get().is_zero() {
            problems.push(format!("`{name}` must be more than zero"));
        }
    }
    if f.open_loop.connections == 0 || f.closed_loop.connections == 0 {
        problems.push("`connections` must be more than zero".into());
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let q = &f.quick;
    let expected = f.needs.expected_rate;
    let (mut rates, population, phase, closed, warmup, revocations) = if quick {
        (
            q.rates.clone().unwrap_or_else(|| vec![expected]),
            Population {
                keys: q.keys.unwrap_or(f.population.keys.min(200)),
                tokens: q.tokens.unwrap_or(f.population.tokens.min(50)),
                token_ttl: f.population.token_ttl,
            },
            q.duration.unwrap_or(Dur::secs(1)),
            q.closed_duration.unwrap_or(Dur::secs(1)),
            q.warmup.unwrap_or(Dur::millis(200)),
            q.revocations.unwrap_or(f.revocation.keys.min(1)),
        )
    } else {
        (
            f.open_loop.rates.clone(),
            f.population.clone(),
            f.open_loop.duration,
            f.closed_loop.duration,
            f.warmup,
            f.revocation.keys,
        )
    };
    if !rates.contains(&expected) {
        rates.push(expected);
    }
    rates.sort_unstable();
    rates.dedup();
    Ok(Workload {
        name: f.name,
        description: f.description.trim().to_string(),
        needs: f.needs,
        endpoint: f.endpoint,
        mechanisms,
        population,
        mix: f.mix,
        rates,
        phase_duration: phase,
        open_connections: f.open_loop.connections,
        closed_connections: f.closed_loop.connections,
        closed_duration: closed,
        warmup,
        revocations,
        revocation_timeout: f.revocation.timeout,
        jwt_leeway: f.jwt_leeway,
        server_args: f.server_args,
        quick,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_engine::policy::JwtAlgorithm;

    const W: &str = r#"
name: t
needs: {revocation_deadline: 1s, latency_p99: 5ms, expected_rate: 1000}
mechanisms:
  - api_key: {backends: [sqlite, redis], modes: [replica, lookup+cache], cache_ttl: 2s}
  - jwt: {algorithms: [ES256, HS256], cache: [true, false]}
population: {keys: 5000, tokens: 300, token_ttl: 10m}
mix: {valid: 0.9, invalid: 0.05, missing: 0.05}
open_loop: {rates: [4000, 500], duration: 10s}
closed_loop: {connections: 8, duration: 5s}
"#;

    #[test]
    fn lists_multiply_out_and_the_expected_rate_is_measured() {
        let w = Workload::parse(W, false).unwrap();
        assert_eq!(w.mechanisms.len(), 8);
        assert!(w.mechanisms.contains(&Mechanism::ApiKey {
            backend: Backend::Redis,
            mode: Mode::LookupCache,
            cache_ttl: Some(Dur::secs(2)),
        }));
        assert!(w.mechanisms.contains(&Mechanism::ApiKey {
            backend: Backend::Sqlite,
            mode: Mode::Replica,
            cache_ttl: None,
        }));
        assert!(w.mechanisms.contains(&Mechanism::Jwt {
            alg: Alg(JwtAlgorithm::HS256),
            cache: false,
        }));
        assert_eq!(w.rates, vec![500, 1000, 4000]);
        assert_eq!(w.population.keys, 5000);
        assert_eq!(w.open_connections, 64);
        assert_eq!(w.revocations, 5);
        assert!(!w.quick);
    }

    #[test]
    fn quick_is_small() {
        let w = Workload::parse(W, true).unwrap();
        assert_eq!(w.rates, vec![1000]);
        assert_eq!(w.population.keys, 200);
        assert_eq!(w.population.tokens, 50);
        assert_eq!(w.phase_duration, Dur::secs(1));
        assert_eq!(w.revocations, 1);
        assert!(w.quick);
    }

    #[test]
    fn every_problem_is_reported() {
        let bad = W
            .replace("valid: 0.9", "valid: 0.95")
            .replace("expected_rate: 1000", "expected_rate: 0")
            .replace("rates: [4000, 500]", "rates: [0]");
        let problems = Workload::parse(&bad, false).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("`mix`")));
        assert!(problems.iter().any(|p| p.contains("expected_rate")));
        assert!(problems.iter().any(|p| p.contains("open_loop.rates")));
    }

    #[test]
    fn refusals() {
        let both = W.replace(
            "  - jwt: {algorithms: [ES256, HS256], cache: [true, false]}",
            "  - {jwt: {algorithms: [ES256]}, api_key: {backends: sqlite, modes: lookup}}",
        );
        let p = Workload::parse(&both, false).unwrap_err();
        assert!(p.iter().any(|p| p.contains("exactly one")), "{p:?}");
        let twice = W.replace("[ES256, HS256]", "[ES256, ES256]");
        let p = Workload::parse(&twice, false).unwrap_err();
        assert!(p.iter().any(|p| p.contains("listed twice")), "{p:?}");
        assert!(Workload::parse(&W.replace("ES256", "none"), false).is_err());
        assert!(Workload::parse(&W.replace("replica", "fast"), false).is_err());
        assert!(Workload::parse(&W.replace("name: t", "name: t\nbogus: 1"), false).is_err());
    }

    #[test]
    fn shipped_workloads_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                Workload::load(&p, false).unwrap_or_else(|e| panic!("{e}"));
                Workload::load(&p, true).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 3);
    }
}
