//! Random policies and requests over every credential type, shared by the
//! tree/reference equivalence suite (`equivalence.rs`) and the hot-swap
//! suite (`hot_swap.rs`).
//!
//! Credentials are fixed (three API keys, an HS256 and an ES256 JWT, mTLS
//! from XFCC and from a PEM header, Basic); routes combine them in random
//! `any_of` / `all_of` trees with scope requirements. Requests present
//! credentials drawn from pools built once: API keys in every state, JWTs
//! signed here with real keys (valid, expired, wrong key, wrong audience,
//! key confusion, no scope claim), client certificates from the checked-in
//! test PKI (allowed, not allowed, expired, rogue, no chain) and Basic
//! credentials against a cost-4 bcrypt htpasswd file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use portcullis_engine::credential::apikey::{
    fingerprint, generate, KeyDigest, KeyEntry, KeyRecord, MemoryIndex,
};
use portcullis_engine::credential::jwt::testing::sign;
use portcullis_engine::credential::mtls::testing::{escaped_pem, xfcc_header};
use portcullis_engine::credential::KeyStore;
use portcullis_engine::policy::*;
use portcullis_engine::{Headers, Request};
use proptest::prelude::*;
use serde_json::json;

const SEGMENTS: &[&str] = &["a", "b", "{p}", "**", "c"];
pub const SCOPES: &[&str] = &["s1", "s2", "s3"];

/// The decision time: inside the test PKI's validity (2025 to 2046).
pub const NOW_S: u64 = 1_800_000_000;
const ISS: &str = "https://issuer.equivalence.test/";
const AUD: &str = "equivalence-api";
const HS_SECRET: &str = "equivalence-hs256-secret-0123456789abcdef";
const HS_ENV: &str = "PORTCULLIS_EQUIVALENCE_HS256_SECRET";
const SPIFFE_API: &str = "spiffe://portcullis.test/ns/billing/sa/api";

/// Number of credentials [`credentials`] defines.
pub const CREDENTIALS: usize = 8;
/// Index of the Basic credential (its bcrypt checks are what costs time).
pub const BASIC: usize = 7;

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_S)
}

pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn sp<T>(v: T) -> Spanned<T> {
    Spanned::new(v, Span::default())
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(data().join(rel)).unwrap()
}

fn jwt_def(sources: Vec<Source>, alg: JwtAlgorithm, keys: JwtKeySource) -> JwtDef {
    JwtDef {
        sources,
        issuer: Some(ISS.into()),
        audience: vec![AUD.into()],
        algorithms: vec![alg],
        keys: sp(keys),
        leeway: Duration::from_secs(30),
        max_lifetime: None,
        require_claims: vec![],
        scopes_claim: Some("scope".into()),
        principal_claim: "sub".into(),
        typ: None,
        max_token_bytes: 8192,
        // Small, so some decisions hit the verified-token cache and some miss.
        cache_size: 4,
    }
}

/// The credentials every generated policy defines, by index:
/// 0..3 API keys (two sharing bearer), 3 HS256 JWT (bearer), 4 ES256 JWT
/// (`x-jwt` or bearer), 5 mTLS XFCC (SPIFFE allowlist), 6 mTLS PEM header
/// (subject allowlist, verify header), 7 Basic.
pub fn credentials() -> Vec<CredentialDef> {
    fixtures();
    let def = |name: &str, kind: CredentialKind| CredentialDef {
        name: sp(name.to_string()),
        kind,
    };
    let api = |sources: Vec<Source>, prefixes: &[&str]| {
        CredentialKind::ApiKey(ApiKeyDef {
            sources,
            prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
        })
    };
    vec![
        def(
            "k_header",
            api(vec![Source::Header("x-api-key".into())], &["pa_"]),
        ),
        def("k_bearer", api(vec![Source::Bearer], &["pb_"])),
        def(
            "k_both",
            api(
                vec![Source::Header("x-key".into()), Source::Bearer],
                &["pa_", "pc_"],
            ),
        ),
        def(
            "jwt_hs",
            CredentialKind::Jwt(jwt_def(
                vec![Source::Bearer],
                JwtAlgorithm::HS256,
                JwtKeySource::SecretEnv(HS_ENV.into()),
            )),
        ),
        def(
            "jwt_es",
            CredentialKind::Jwt(jwt_def(
                vec![Source::Header("x-jwt".into()), Source::Bearer],
                JwtAlgorithm::ES256,
                JwtKeySource::PemFile(data().join("jwt/keys/ec256.pub.pem")),
            )),
        ),
        def(
            "mesh",
            CredentialKind::Mtls(MtlsDef {
                source: MtlsSource::Xfcc,
                ca_file: Some(sp("pki/root-ca.pem".into())),
                allow: MtlsAllow {
                    spiffe_ids: vec![SPIFFE_API.into()],
                    ..MtlsAllow::default()
                },
                grants: vec!["s1".into()],
            }),
        ),
        def(
            "edge",
            CredentialKind::Mtls(MtlsDef {
                source: MtlsSource::PemHeader {
                    header: "x-ssl-client-cert".into(),
                    verify_header: Some("x-ssl-client-verify".into()),
                },
                ca_file: Some(sp("pki/intermediate-ca.pem".into())),
                allow: MtlsAllow {
                    subjects: vec!["CN=client.portcullis.test,O=Portcullis Test".into()],
                    ..MtlsAllow::default()
                },
                grants: vec!["s2".into()],
            }),
        ),
        def(
            "ops",
            CredentialKind::Basic(BasicDef {
                htpasswd_file: sp("htpasswd/bcrypt-only.htpasswd".into()),
                grants: vec!["s1".into(), "s3".into()],
                realm: "ops".into(),
                cache_ttl: Duration::from_secs(60),
            }),
        ),
    ]
}

/// Everything requests draw from, built once per test binary.
pub struct Fixtures {
    pub index: Arc<MemoryIndex>,
    pub api_keys: Vec<String>,
    pub jwts: Vec<String>,
    pub xfcc: Vec<String>,
    /// (certificate header value, verification header value).
    pub pem: Vec<(String, Option<&'static str>)>,
    /// Full `Authorization` values.
    pub basic: Vec<String>,
}

impl Fixtures {
    pub fn keys(&self) -> Arc<dyn KeyStore> {
        Arc::clone(&self.index) as Arc<dyn KeyStore>
    }
}

pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        // Read by the HS256 verifier when a policy is compiled.
        std::env::set_var(HS_ENV, HS_SECRET);
        let (index, api_keys) = api_keys();
        Fixtures {
            index: Arc::new(index),
            api_keys,
            jwts: jwts(),
            xfcc: xfcc(),
            pem: pem(),
            basic: basic(),
        }
    })
}

fn api_keys() -> (MemoryIndex, Vec<String>) {
    let index = MemoryIndex::new();
    let now = NOW_S as i64;
    let mut pool = Vec::new();
    let scope_sets: [&[&str]; 4] = [&[], &["s1"], &["s1", "s2"], &["s2", "s3"]];
    // Key i: expired 3, revoked 4 and 8, not yet valid 7, network-restricted 5, 10, 11.
    for (i, prefix) in [
        "pa_", "pb_", "pc_", "pa_", "pb_", "pc_", "pa_", "pb_", "pa_", "pc_", "pa_", "pb_",
    ]
    .iter()
    .enumerate()
    {
        let key = generate(prefix).unwrap();
        let rec = KeyRecord {
            id: Arc::from(format!("key_{i}")),
            consumer: Arc::from(format!("c{}", i % 3)),
            scopes: Arc::from(
                scope_sets[i % 4]
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            ),
            created_at: 0,
            expires_at: if i == 3 { Some(now - 10) } else { None },
            not_before: if i == 7 { Some(now + 100) } else { None },
            revoked_at: if i == 4 || i == 8 {
                Some(now - 5)
            } else {
                None
            },
            allowed_cidrs: if matches!(i, 5 | 10 | 11) {
                vec!["10.0.0.0/8".parse().unwrap()]
            } else {
                vec![]
            },
            metadata: Default::default(),
            rate_limit: None,
        };
        index.insert(
            KeyDigest::of(&key),
            KeyEntry {
                record: Arc::new(rec),
                fingerprint: fingerprint(&key).into(),
                key_expires_at: None,
            },
        );
        pool.push(key);
    }
    // Well-formed but unknown, and corrupt checksums.
    pool.push(generate("pa_").unwrap());
    let mut bad = generate("pb_").unwrap();
    bad.replace_range(5..6, if &bad[5..6] == "x" { "y" } else { "x" });
    pool.push(bad);
    pool.push("pa_short".into());
    pool.push("eyJhbGciOi.not.a.key".into());
    (index, pool)
}

fn jwts() -> Vec<String> {
    let now = NOW_S as i64;
    let claims = |sub: &str, aud: &str, exp: i64, scope: Option<&str>| {
        let mut c = json!({"iss": ISS, "aud": aud, "sub": sub, "iat": exp - 7200, "exp": exp});
        if let Some(s) = scope {
            c["scope"] = json!(s);
        }
        c
    };
    let hs = |c: serde_json::Value, secret: &[u8]| {
        sign(JwtAlgorithm::HS256, secret, None, None, &c).unwrap()
    };
    let ec = std::fs::read(data().join("jwt/keys/ec256.key.pem")).unwrap();
    let ec_other = std::fs::read(data().join("jwt/keys/ec256b.key.pem")).unwrap();
    let ec_pub = std::fs::read(data().join("jwt/keys/ec256.pub.pem")).unwrap();
    let es =
        |c: serde_json::Value, key: &[u8]| sign(JwtAlgorithm::ES256, key, None, None, &c).unwrap();
    let secret = HS_SECRET.as_bytes();
    let live = now + 3600;
    let dead = now - 3600;
    let valid_es = es(claims("svc-es", AUD, live, Some("s2 s3")), &ec);
    let (signing_input, _) = valid_es.rsplit_once('.').unwrap();
    vec![
        // HS256
        hs(claims("alice-hs", AUD, live, Some("s1 s2")), secret),
        hs(claims("bob-hs", AUD, live, Some("s3")), secret),
        hs(claims("carol-hs", AUD, live, None), secret),
        hs(claims("dave-hs", AUD, dead, Some("s1 s2 s3")), secret),
        hs(
            claims("eve-hs", AUD, live, Some("s1 s2 s3")),
            b"another-secret-of-thirty-two-bytes!!",
        ),
        hs(claims("frank-hs", "other-api", live, Some("s1")), secret),
        // Key confusion: HS256 keyed with the ES256 public key's PEM.
        hs(claims("mallory", AUD, live, Some("s1 s2 s3")), &ec_pub),
        // ES256
        valid_es.clone(),
        es(claims("svc2-es", AUD, live, Some("s1")), &ec),
        es(claims("old-es", AUD, dead, Some("s1 s2 s3")), &ec),
        es(claims("rogue-es", AUD, live, Some("s1 s2 s3")), &ec_other),
        // A valid signature moved onto an edited payload.
        format!(
            "{}.{}",
            signing_input,
            hs(claims("x", AUD, live, None), secret)
                .rsplit_once('.')
                .unwrap()
                .1
        ),
        // Unsigned, and not a token at all.
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims("none", AUD, live, Some("s1")).to_string())
        ),
        "a.b.c".into(),
    ]
}

fn xfcc() -> Vec<String> {
    let with_chain = |leaf: &str, uri: Option<&str>, chain: &str| {
        format!(
            "{};Chain=\"{}\"",
            xfcc_header(&read(leaf), uri),
            escaped_pem(chain)
        )
    };
    let inter = read("pki/intermediate-ca.pem");
    vec![
        with_chain(
            "pki/spiffe.pem",
            Some(SPIFFE_API),
            &read("pki/spiffe-chain.pem"),
        ),
        with_chain("pki/client.pem", None, &read("pki/client-chain.pem")),
        with_chain(
            "pki/expired.pem",
            Some("spiffe://portcullis.test/ns/billing/sa/expired"),
            &format!("{}{inter}", read("pki/expired.pem")),
        ),
        with_chain(
            "pki/rogue-client.pem",
            Some(SPIFFE_API),
            &format!(
                "{}{}",
                read("pki/rogue-client.pem"),
                read("pki/rogue-ca.pem")
            ),
        ),
        // No chain: the intermediate is missing, so it cannot be verified.
        xfcc_header(&read("pki/spiffe.pem"), Some(SPIFFE_API)),
        // Claims a URI the certificate does not carry.
        with_chain(
            "pki/client.pem",
            Some(SPIFFE_API),
            &read("pki/client-chain.pem"),
        ),
        "By=spiffe://x;Hash=zz;Cert=\"garbage\"".into(),
    ]
}

fn pem() -> Vec<(String, Option<&'static str>)> {
    let e = |f: &str| escaped_pem(&read(f));
    vec![
        (e("pki/client.pem"), Some("SUCCESS")),
        (e("pki/client.pem"), None),
        (e("pki/client.pem"), Some("FAILED:unknown ca")),
        (e("pki/spiffe.pem"), Some("SUCCESS")),
        (e("pki/expired.pem"), Some("SUCCESS")),
        (e("pki/rogue-client.pem"), Some("SUCCESS")),
        ("not-a-certificate".into(), Some("SUCCESS")),
    ]
}

fn basic() -> Vec<String> {
    let b = |scheme: &str, user_pw: &str| format!("{scheme} {}", STANDARD.encode(user_pw));
    vec![
        b("Basic", "alice:alice-pw"),
        b("basic", "bob:bob-pw"),
        b("Basic", "alice:bob-pw"),
        b("Basic", "mallory:alice-pw"),
        "Basic !!not-base64!!".into(),
        b("Basic", "no-colon"),
    ]
}

/// Requirements over `credentials()`. Basic is drawn less often: every
/// failed Basic check is a bcrypt hash (cost 4), in both tree and reference.
pub fn arb_requirement() -> impl Strategy<Value = Requirement> {
    let leaf = prop_oneof![
        2 => Just(Requirement::Public),
        12 => (0usize..BASIC).prop_map(Requirement::Credential),
        1 => Just(Requirement::Credential(BASIC)),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Requirement::AnyOf),
            prop::collection::vec(inner, 1..4).prop_map(Requirement::AllOf),
        ]
    })
}

fn arb_scopes() -> impl Strategy<Value = ScopeRequirement> {
    let names = prop::collection::vec(prop::sample::select(SCOPES), 1..3)
        .prop_map(|v| v.into_iter().map(str::to_string).collect::<Vec<_>>());
    prop_oneof![
        2 => Just(ScopeRequirement::None),
        2 => names.clone().prop_map(ScopeRequirement::AllOf),
        1 => names.prop_map(ScopeRequirement::AnyOf),
    ]
}

fn arb_pattern() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(SEGMENTS), 0..4).prop_map(|segs| {
        // `**` only last.
        let mut out = Vec::new();
        for s in segs {
            out.push(s);
            if s == "**" {
                break;
            }
        }
        format!("/{}", out.join("/"))
    })
}

#[derive(Debug, Clone)]
pub struct RouteSpec {
    host: Option<&'static str>,
    methods: Vec<&'static str>,
    path: String,
    require: Requirement,
    scopes: ScopeRequirement,
}

fn replace_basic(r: Requirement) -> Requirement {
    match r {
        Requirement::Credential(BASIC) => Requirement::Credential(0),
        Requirement::AnyOf(c) => Requirement::AnyOf(c.into_iter().map(replace_basic).collect()),
        Requirement::AllOf(c) => Requirement::AllOf(c.into_iter().map(replace_basic).collect()),
        other => other,
    }
}

impl RouteSpec {
    /// The same route requiring no Basic credential: credentials are
    /// verified lazily, so its bcrypt checks are then never run (for suites
    /// that decide each request many times).
    pub fn without_basic(self) -> Self {
        Self {
            require: replace_basic(self.require),
            ..self
        }
    }
}

pub fn arb_route() -> impl Strategy<Value = RouteSpec> {
    (
        prop::option::of(prop::sample::select(&["h1.example", "h2.example"][..])),
        prop::sample::subsequence(vec!["GET", "POST", "DELETE"], 0..3),
        arb_pattern(),
        arb_requirement(),
        arb_scopes(),
    )
        .prop_map(|(host, methods, path, require, scopes)| RouteSpec {
            host,
            methods,
            path,
            require,
            scopes,
        })
}

pub fn arb_routes() -> impl Strategy<Value = Vec<RouteSpec>> {
    prop::collection::vec(arb_route(), 0..12)
}

pub fn build_policy(specs: Vec<RouteSpec>, unmatched_allow: bool) -> Policy {
    let mut routes: Vec<Route> = Vec::new();
    let mut seen: Vec<(Option<&str>, Vec<&str>, Vec<PatternSegment>)> = Vec::new();
    for (i, s) in specs.into_iter().enumerate() {
        let pattern = portcullis_engine::path::parse_pattern(&s.path).unwrap();
        let shape = portcullis_engine::path::shape(&pattern);
        // Skip what validation would refuse as a duplicate route.
        let dup = seen.iter().any(|(h, m, sh)| {
            *h == s.host
                && *sh == shape
                && (m.is_empty() == s.methods.is_empty())
                && (m.is_empty() || m.iter().any(|x| s.methods.contains(x)))
        });
        if dup {
            continue;
        }
        seen.push((s.host, s.methods.clone(), shape));
        routes.push(Route {
            name: sp(format!("r{i}")),
            matcher: RouteMatch {
                host: s.host.map(str::to_string),
                methods: s.methods.iter().map(|m| m.to_string()).collect(),
                path: pattern,
            },
            require: s.require,
            scopes: s.scopes,
            rate_limit: None,
            span: Span::default(),
        });
    }
    Policy {
        // Relative credential files (`pki/...`, `htpasswd/...`) resolve beside this.
        files: vec![data().join("equivalence.yaml")],
        settings: Settings {
            unmatched: if unmatched_allow {
                Unmatched::Allow
            } else {
                Unmatched::Deny
            },
            ..Settings::default()
        },
        credentials: credentials(),
        rate_limits: vec![],
        routes,
    }
}

/// One credential presentation: indices into the [`Fixtures`] pools.
#[derive(Debug, Clone)]
pub enum Presented {
    /// (header, key, lowercase `bearer` scheme when the header is `authorization`).
    ApiKey(&'static str, usize, bool),
    /// (in `x-jwt` rather than bearer, token).
    Jwt(bool, usize),
    Xfcc(usize),
    Pem(usize),
    Basic(usize),
    /// A presentation valid for one of the credentials the aimed route's
    /// requirement names (the number picks which, and which valid form).
    ValidFor(usize),
}

/// A valid presentation of each credential, by index: keys 0, 1, 2, 6, 9
/// are live and unrestricted; JWTs 0..3 (HS256) and 7, 8 (ES256) verify;
/// XFCC 0, PEM 0 and Basic 0, 1 are accepted.
fn valid_for(cred: usize, pick: usize) -> Presented {
    let one = |options: &[Presented]| options[pick % options.len()].clone();
    match cred {
        0 => one(&[
            Presented::ApiKey("x-api-key", 0, false),
            Presented::ApiKey("x-api-key", 6, false),
        ]),
        1 => one(&[
            Presented::ApiKey("authorization", 1, false),
            Presented::ApiKey("authorization", 1, true),
        ]),
        2 => one(&[
            Presented::ApiKey("x-key", 2, false),
            Presented::ApiKey("x-key", 0, false),
            Presented::ApiKey("authorization", 9, false),
        ]),
        3 => one(&[
            Presented::Jwt(false, 0),
            Presented::Jwt(false, 1),
            Presented::Jwt(false, 2),
        ]),
        4 => one(&[Presented::Jwt(true, 7), Presented::Jwt(false, 8)]),
        5 => Presented::Xfcc(0),
        6 => Presented::Pem(0),
        _ => one(&[Presented::Basic(0), Presented::Basic(1)]),
    }
}

/// Where a request goes: a random path, or a route of the policy it is
/// decided against (so that most requests reach a route's requirement).
#[derive(Debug, Clone)]
pub enum Aim {
    Anywhere {
        host: Option<&'static str>,
        method: &'static str,
        path: String,
    },
    /// (route number, parameter values, also a wrong method?)
    Route(usize, [&'static str; 3], bool),
}

#[derive(Debug, Clone)]
pub struct ReqSpec {
    aim: Aim,
    query: bool,
    presented: Vec<Presented>,
    ip: Option<&'static str>,
}

fn arb_path() -> impl Strategy<Value = String> {
    let seg = prop::sample::select(&["a", "b", "c", "d", "", "..", "%2e", "A", "x%2Fy", "a;b"][..]);
    (prop::collection::vec(seg, 0..5), prop::bool::ANY)
        .prop_map(|(segs, slash)| format!("/{}{}", segs.join("/"), if slash { "/" } else { "" }))
}

fn arb_presented() -> impl Strategy<Value = Presented> {
    let f = fixtures();
    let api = (
        prop::sample::select(
            &[
                "x-api-key",
                "authorization",
                "x-key",
                "X-Api-Key",
                "x-other",
            ][..],
        ),
        0..f.api_keys.len(),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(h, k, lower)| Presented::ApiKey(h, k, lower));
    prop_oneof![
        8 => api,
        5 => (prop::bool::ANY, 0..f.jwts.len()).prop_map(|(h, t)| Presented::Jwt(h, t)),
        3 => (0..f.xfcc.len()).prop_map(Presented::Xfcc),
        3 => (0..f.pem.len()).prop_map(Presented::Pem),
        2 => (0..f.basic.len()).prop_map(Presented::Basic),
        12 => (0usize..64).prop_map(Presented::ValidFor),
    ]
}

fn arb_aim() -> impl Strategy<Value = Aim> {
    let fill = prop::sample::select(&["x", "a", "42", "b", "c"][..]);
    prop_oneof![
        2 => (
            prop::option::of(prop::sample::select(
                &["h1.example", "h2.example", "h3.example"][..],
            )),
            prop::sample::select(&["GET", "POST", "DELETE", "PUT"][..]),
            arb_path(),
        )
            .prop_map(|(host, method, path)| Aim::Anywhere { host, method, path }),
        3 => (0usize..64, [fill.clone(), fill.clone(), fill], prop::bool::weighted(0.1))
            .prop_map(|(r, fills, wrong)| Aim::Route(r, fills, wrong)),
    ]
}

pub fn arb_request() -> impl Strategy<Value = ReqSpec> {
    (
        arb_aim(),
        prop::bool::weighted(0.2),
        prop::collection::vec(arb_presented(), 0..3),
        prop::option::of(prop::sample::select(&["10.1.2.3", "192.0.2.1"][..])),
    )
        .prop_map(|(aim, query, presented, ip)| ReqSpec {
            aim,
            query,
            presented,
            ip,
        })
}

pub fn arb_requests() -> impl Strategy<Value = Vec<ReqSpec>> {
    prop::collection::vec(arb_request(), 1..12)
}

fn leaves(r: &Requirement, out: &mut Vec<usize>) {
    match r {
        Requirement::Public => {}
        Requirement::Credential(i) => out.push(*i),
        Requirement::AnyOf(c) | Requirement::AllOf(c) => c.iter().for_each(|c| leaves(c, out)),
    }
}

/// The request `spec` describes, aimed (if it is) at a route of `policy`.
pub fn build_request(spec: &ReqSpec, policy: &Policy) -> Request {
    let f = fixtures();
    let mut creds = Vec::new();
    let (host, method, mut path) = match (&spec.aim, policy.routes.len()) {
        (Aim::Route(k, fills, wrong_method), n) if n > 0 => {
            let route = &policy.routes[k % n];
            leaves(&route.require, &mut creds);
            let m = &route.matcher;
            let mut segs: Vec<&str> = Vec::new();
            for (j, seg) in m.path.segments.iter().enumerate() {
                match seg {
                    PatternSegment::Static(s) => segs.push(s),
                    PatternSegment::Param(_) => segs.push(fills[j % 3]),
                    PatternSegment::Rest => segs.extend(fills.iter().take(k % 3)),
                }
            }
            let method = match (wrong_method, m.methods.as_slice()) {
                (false, [one, ..]) => one.clone(),
                (true, _) => "PUT".to_string(),
                (false, []) => ["GET", "POST", "DELETE"][k % 3].to_string(),
            };
            let host = m
                .host
                .clone()
                .or_else(|| (k % 2 == 0).then(|| "h1.example".to_string()));
            (host, method, format!("/{}", segs.join("/")))
        }
        (Aim::Route(..), _) => (None, "GET".to_string(), "/".to_string()),
        (Aim::Anywhere { host, method, path }, _) => {
            (host.map(str::to_string), method.to_string(), path.clone())
        }
    };
    if spec.query {
        path.push_str("?q=1");
    }
    let mut headers = Headers::new();
    for p in &spec.presented {
        let p = match p {
            Presented::ValidFor(pick) if creds.is_empty() => {
                valid_for(pick % CREDENTIALS, pick / 8)
            }
            Presented::ValidFor(pick) => valid_for(creds[pick % creds.len()], pick / 8),
            other => other.clone(),
        };
        match p {
            Presented::ApiKey(name, k, lower) => {
                let key = &f.api_keys[k];
                if name.eq_ignore_ascii_case("authorization") {
                    let scheme = if lower { "bearer" } else { "Bearer" };
                    headers.append(name, format!("{scheme} {key}"));
                } else {
                    headers.append(name, key.clone());
                }
            }
            Presented::Jwt(in_header, t) => {
                let token = &f.jwts[t];
                if in_header {
                    headers.append("x-jwt", token.clone());
                } else {
                    headers.append("authorization", format!("Bearer {token}"));
                }
            }
            Presented::Xfcc(i) => headers.append("x-forwarded-client-cert", f.xfcc[i].clone()),
            Presented::Pem(i) => {
                let (cert, verify) = &f.pem[i];
                headers.append("x-ssl-client-cert", cert.clone());
                if let Some(v) = verify {
                    headers.append("x-ssl-client-verify", *v);
                }
            }
            Presented::Basic(i) => headers.append("authorization", f.basic[i].clone()),
            Presented::ValidFor(_) => unreachable!("resolved above"),
        }
    }
    Request {
        method,
        path,
        host,
        headers,
        source_ip: spec.ip.map(|s| s.parse().unwrap()),
    }
}
