//! Policy tests: `*_test.yaml` files beside policies (SPEC section 2), run by
//! `portcullis test`. A test file names its policy (default: the file of the
//! same name without `_test`), gives fixtures (API keys in plaintext, for tests
//! only; JWT signing keys; client certificates) and cases with expectations.
//!
//! ```yaml
//! policy: payments.yaml
//! now: 2026-06-01T00:00:00Z
//! fixtures:
//!   keys:
//!     - {key: pk_test_..., id: key_acme, consumer: acme, scopes: [charges:read]}
//! cases:
//!   - name: partner reads a charge
//!     request: {method: GET, path: /v1/charges/ch_1, headers: {x-api-key: pk_test_...}}
//!     expect: {allow: true, status: 200, reason: allowed}
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::credential::apikey::{
    classify, fingerprint, KeyDigest, KeyEntry, KeyRecord, KeyShape, MemoryIndex, RateOverride,
};
use crate::credential::KeyStore;
use crate::decide::DecideOptions;
use crate::decision::{Decision, Reason};
use crate::engine::Engine;
use crate::policy::{Diagnostic, Diagnostics};
use crate::request::{normalize_host, Headers, Request};

/// One case that did not give what it expected.
#[derive(Debug, Clone)]
pub struct CaseFailure {
    pub file: PathBuf,
    pub case: String,
    pub expected: String,
    pub actual: String,
    pub trace: Vec<String>,
}

/// The result of running policy tests.
#[derive(Debug, Clone, Default)]
pub struct TestReport {
    pub passed: usize,
    pub failed: usize,
    pub failures: Vec<CaseFailure>,
    /// Test files that could not be run at all (bad test file, policy errors).
    pub errors: Vec<Diagnostics>,
    /// Test files run.
    pub files: Vec<PathBuf>,
}

impl fmt::Display for CaseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "FAIL {}: {}", self.file.display(), self.case)?;
        writeln!(f, "  expected: {}", self.expected)?;
        writeln!(f, "  actual:   {}", self.actual)?;
        for t in &self.trace {
            writeln!(f, "    trace: {t}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    policy: Option<PathBuf>,
    now: Option<Time>,
    #[serde(default)]
    fixtures: Fixtures,
    cases: Vec<Case>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Fixtures {
    #[serde(default)]
    keys: Vec<KeyFixture>,
    #[serde(default)]
    jwt_signers: BTreeMap<String, JwtSigner>,
    #[serde(default)]
    certificates: BTreeMap<String, CertFixture>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Time {
    Unix(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFixture {
    key: String,
    id: Option<String>,
    consumer: String,
    #[serde(default)]
    scopes: Vec<String>,
    expires_at: Option<Time>,
    not_before: Option<Time>,
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    allowed_cidrs: Vec<String>,
    rate_limit: Option<RateFixture>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateFixture {
    limit: u64,
    per: String,
    burst: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtSigner {
    pub(crate) alg: String,
    /// PEM private key (relative to the test file).
    pub(crate) private_key_file: Option<PathBuf>,
    /// HMAC secret from this environment variable.
    pub(crate) secret_env: Option<String>,
    pub(crate) kid: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertFixture {
    pub(crate) cert_file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    request: CaseRequest,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseRequest {
    method: String,
    path: String,
    host: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, OneOrMany>,
    source_ip: Option<String>,
    bearer_jwt: Option<JwtRequest>,
    client_cert: Option<CertRequest>,
    basic: Option<BasicRequest>,
    /// Send the request this many times; the expectation is for the last.
    repeat: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtRequest {
    pub(crate) signer: String,
    pub(crate) claims: serde_json::Value,
    pub(crate) typ: Option<String>,
    /// Header to carry the token instead of `Authorization: Bearer`.
    pub(crate) header: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertRequest {
    pub(crate) cert: String,
    /// `xfcc` (default) or `pem_header:NAME`.
    #[serde(rename = "as")]
    pub(crate) as_: Option<String>,
    /// For `pem_header`: a verify-status header to send with `SUCCESS`.
    pub(crate) verify_header: Option<String>,
    /// For `xfcc`: the URI to claim (default: the certificate's own).
    pub(crate) uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicRequest {
    user: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    allow: Option<bool>,
    status: Option<u16>,
    reason: Option<String>,
    route: Option<String>,
    principal: Option<String>,
    consumer: Option<String>,
    credential: Option<String>,
}

fn err(file: &Path, msg: impl Into<String>) -> Diagnostics {
    Diagnostic::new(file, 0, 0, msg).into()
}

fn yaml_err(file: &Path, e: &serde_yaml::Error) -> Diagnostics {
    let (line, col) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    Diagnostic::new(file, line, col, e.to_string()).into()
}

fn parse_time(file: &Path, t: &Time) -> Result<i64, Diagnostics> {
    match t {
        Time::Unix(n) => Ok(*n),
        Time::Text(s) => {
            parse_rfc3339(s).ok_or_else(|| err(file, format!("`{s}` is not an RFC 3339 UTC time")))
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` only: enough for fixtures, and no date crate needed for it.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20
        || b.get(4) != Some(&b'-')
        || b.get(10) != Some(&b'T')
        || b.get(19) != Some(&b'Z')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok());
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        "d" => Duration::from_secs(n.checked_mul(86_400)?),
        _ => return None,
    })
}

/// Runs every `*_test.yaml` under `path` (a test file, a policy file with a
/// sibling test file, or a directory, recursively).
pub fn run_path(path: &Path) -> TestReport {
    let mut report = TestReport::default();
    let mut files = Vec::new();
    collect(path, &mut files, &mut report);
    files.sort();
    for f in files {
        run_file(&f, &mut report);
        report.files.push(f);
    }
    report
}

fn is_test_file(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with("_test.yaml") || n.ends_with("_test.yml"))
}

fn collect(path: &Path, out: &mut Vec<PathBuf>, report: &mut TestReport) {
    if path.is_dir() {
        match std::fs::read_dir(path) {
            Ok(rd) => {
                for e in rd.flatten() {
                    let p = e.path();
                    if p.is_dir() || is_test_file(&p) {
                        collect(&p, out, report);
                    }
                }
            }
            Err(e) => report
                .errors
                .push(err(path, format!("cannot read directory: {e}"))),
        }
    } else if is_test_file(path) {
        out.push(path.to_path_buf());
    } else {
        // A policy file: its sibling test file.
        let sibling = path.with_file_name(format!(
            "{}_test.yaml",
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
        ));
        if sibling.is_file() {
            out.push(sibling);
        } else {
            report
                .errors
                .push(err(path, "no `*_test.yaml` found for this policy"));
        }
    }
}

fn run_file(file: &Path, report: &mut TestReport) {
    match prepare(file) {
        Err(d) => report.errors.push(d),
        Ok(prepared) => prepared.run(file, report),
    }
}

struct Prepared {
    engine: Engine,
    now: SystemTime,
    cases: Vec<Case>,
    fixtures: Fixtures,
    dir: PathBuf,
}

fn prepare(file: &Path) -> Result<Prepared, Diagnostics> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| err(file, format!("cannot read test file: {e}")))?;
    let tf: TestFile = serde_yaml::from_str(&text).map_err(|e| yaml_err(file, &e))?;
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let policy_path = match &tf.policy {
        Some(p) => dir.join(p),
        None => {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let stem = name
                .trim_end_matches(".yaml")
                .trim_end_matches(".yml")
                .trim_end_matches("_test");
            dir.join(format!("{stem}.yaml"))
        }
    };
    let now = match &tf.now {
        Some(t) => {
            UNIX_EPOCH + Duration::from_secs(u64::try_from(parse_time(file, t)?).unwrap_or(0))
        }
        None => SystemTime::now(),
    };
    let index = MemoryIndex::new();
    for (n, k) in tf.fixtures.keys.iter().enumerate() {
        if classify(&k.key, &[]) != KeyShape::WellFormed {
            return Err(err(
                file,
                format!("fixture key #{} (`{}`) fails its checksum: make test keys with `portcullis keys create`", n + 1, fingerprint(&k.key)),
            ));
        }
        let mut cidrs = Vec::new();
        for c in &k.allowed_cidrs {
            cidrs.push(
                c.parse()
                    .map_err(|_| err(file, format!("`{c}` is not a CIDR")))?,
            );
        }
        let rate_limit = match &k.rate_limit {
            None => None,
            Some(r) => Some(RateOverride {
                limit: r.limit,
                per: parse_duration(&r.per)
                    .ok_or_else(|| err(file, format!("`{}` is not a duration", r.per)))?,
                burst: r.burst.unwrap_or(r.limit),
            }),
        };
        let unix_now = i64::try_from(
            now.duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        )
        .unwrap_or(0);
        let record = KeyRecord {
            id: Arc::from(k.id.clone().unwrap_or_else(|| format!("key_{}", n + 1))),
            consumer: Arc::from(k.consumer.as_str()),
            scopes: Arc::from(k.scopes.clone()),
            created_at: unix_now,
            expires_at: k
                .expires_at
                .as_ref()
                .map(|t| parse_time(file, t))
                .transpose()?,
            not_before: k
                .not_before
                .as_ref()
                .map(|t| parse_time(file, t))
                .transpose()?,
            revoked_at: if k.revoked { Some(unix_now - 1) } else { None },
            allowed_cidrs: cidrs,
            metadata: BTreeMap::new(),
            rate_limit,
        };
        index.insert(
            KeyDigest::of(&k.key),
            KeyEntry {
                record: Arc::new(record),
                fingerprint: fingerprint(&k.key).into(),
                key_expires_at: None,
            },
        );
    }
    let keys: Arc<dyn KeyStore> = Arc::new(index);
    let engine = Engine::from_path(&policy_path, keys)?;
    Ok(Prepared {
        engine,
        now,
        cases: tf.cases,
        fixtures: tf.fixtures,
        dir,
    })
}

impl Prepared {
    fn run(&self, file: &Path, report: &mut TestReport) {
        for case in &self.cases {
            match self.request(&case.request) {
                Err(msg) => {
                    report.failed += 1;
                    report.failures.push(CaseFailure {
                        file: file.to_path_buf(),
                        case: case.name.clone(),
                        expected: "a valid test request".into(),
                        actual: msg,
                        trace: vec![],
                    });
                }
                Ok(req) => {
                    let opts = DecideOptions {
                        explain: true,
                        now: Some(self.now),
                    };
                    let mut d = self.engine.decide_with(&req, &opts);
                    for _ in 1..case.request.repeat.unwrap_or(1) {
                        d = self.engine.decide_with(&req, &opts);
                    }
                    match check(&case.expect, &d) {
                        Ok(()) => report.passed += 1,
                        Err((expected, actual)) => {
                            report.failed += 1;
                            report.failures.push(CaseFailure {
                                file: file.to_path_buf(),
                                case: case.name.clone(),
                                expected,
                                actual,
                                trace: d.trace.clone().unwrap_or_default(),
                            });
                        }
                    }
                }
            }
        }
    }

    fn request(&self, r: &CaseRequest) -> Result<Request, String> {
        let mut headers = Headers::new();
        for (k, v) in &r.headers {
            match v {
                OneOrMany::One(s) => headers.append(k, s.clone()),
                OneOrMany::Many(vs) => vs.iter().for_each(|s| headers.append(k, s.clone())),
            }
        }
        if let Some(j) = &r.bearer_jwt {
            let signer = self
                .fixtures
                .jwt_signers
                .get(&j.signer)
                .ok_or_else(|| format!("no jwt signer `{}`", j.signer))?;
            let token = crate::testing_support::sign_jwt(signer, j, &self.dir, self.now)?;
            match &j.header {
                Some(h) => headers.append(h, token),
                None => headers.append("authorization", format!("Bearer {token}")),
            }
        }
        if let Some(c) = &r.client_cert {
            let fixture = self
                .fixtures
                .certificates
                .get(&c.cert)
                .ok_or_else(|| format!("no certificate `{}`", c.cert))?;
            for (name, value) in crate::testing_support::cert_headers(fixture, c, &self.dir)? {
                headers.append(&name, value);
            }
        }
        if let Some(b) = &r.basic {
            use base64::Engine as _;
            let enc = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", b.user, b.password));
            headers.append("authorization", format!("Basic {enc}"));
        }
        let source_ip = match &r.source_ip {
            Some(s) => Some(
                s.parse()
                    .map_err(|_| format!("`{s}` is not an IP address"))?,
            ),
            None => None,
        };
        Ok(Request {
            method: r.method.to_ascii_uppercase(),
            path: r.path.clone(),
            host: r.host.as_deref().map(normalize_host),
            headers,
            source_ip,
        })
    }
}

fn check(e: &Expect, d: &Decision) -> Result<(), (String, String)> {
    let mut want = Vec::new();
    let mut got = Vec::new();
    let mut ok = true;
    let mut cmp = |name: &str, expected: Option<String>, actual: String| {
        if let Some(x) = expected {
            if x != actual {
                ok = false;
            }
            want.push(format!("{name}={x}"));
            got.push(format!("{name}={actual}"));
        }
    };
    cmp("allow", e.allow.map(|b| b.to_string()), d.allow.to_string());
    cmp(
        "status",
        e.status.map(|s| s.to_string()),
        d.status.to_string(),
    );
    if let Some(r) = &e.reason {
        if Reason::from_code(r).is_none() {
            return Err((format!("reason={r}"), format!("`{r}` is not a reason code")));
        }
    }
    cmp("reason", e.reason.clone(), d.reason.as_str().to_string());
    cmp(
        "route",
        e.route.clone(),
        d.route.as_deref().unwrap_or("-").to_string(),
    );
    cmp(
        "credential",
        e.credential.clone(),
        d.credential.as_deref().unwrap_or("-").to_string(),
    );
    let principal = d.principal.as_ref();
    cmp(
        "principal",
        e.principal.clone(),
        principal
            .map(|p| p.id.to_string())
            .unwrap_or_else(|| "-".into()),
    );
    cmp(
        "consumer",
        e.consumer.clone(),
        principal
            .and_then(|p| p.consumer.as_deref())
            .unwrap_or("-")
            .to_string(),
    );
    if ok {
        Ok(())
    } else {
        Err((want.join(" "), got.join(" ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-06-01T00:00:00Z"), Some(1_780_272_000));
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-06-01"), None);
    }
}
