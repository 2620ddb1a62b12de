//! The compiled decision tree against the reference evaluator, on random
//! policies and random requests: they must agree on allow, status, reason
//! and route. Cases: `PROPTEST_CASES` (CI sets at least 10,000).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use portcullis_engine::credential::apikey::{
    fingerprint, generate, KeyDigest, KeyEntry, KeyRecord, MemoryIndex,
};
use portcullis_engine::policy::*;
use portcullis_engine::reference::Reference;
use portcullis_engine::{DecideOptions, Engine, Headers, Request};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

const SEGMENTS: &[&str] = &["a", "b", "{p}", "**", "c"];
const SCOPES: &[&str] = &["s1", "s2", "s3"];

fn sp<T>(v: T) -> Spanned<T> {
    Spanned::new(v, Span::default())
}

/// Credentials: three API-key credentials reading different places, two sharing bearer.
fn credentials() -> Vec<CredentialDef> {
    let def = |name: &str, sources: Vec<Source>, prefixes: &[&str]| CredentialDef {
        name: sp(name.to_string()),
        kind: CredentialKind::ApiKey(ApiKeyDef {
            sources,
            prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
        }),
    };
    vec![
        def(
            "k_header",
            vec![Source::Header("x-api-key".into())],
            &["pa_"],
        ),
        def("k_bearer", vec![Source::Bearer], &["pb_"]),
        def(
            "k_both",
            vec![Source::Header("x-key".into()), Source::Bearer],
            &["pa_", "pc_"],
        ),
    ]
}

struct Keys {
    index: MemoryIndex,
    /// (key, label) pool requests draw from.
    pool: Vec<String>,
}

fn keys() -> Keys {
    let index = MemoryIndex::new();
    let now = 1_700_000_000i64;
    let mut pool = Vec::new();
    let scope_sets: [&[&str]; 4] = [&[], &["s1"], &["s1", "s2"], &["s2", "s3"]];
    for (i, prefix) in ["pa_", "pb_", "pc_", "pa_", "pb_", "pc_", "pa_", "pb_"]
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
            revoked_at: if i == 4 { Some(now - 5) } else { None },
            allowed_cidrs: if i == 5 {
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
    Keys { index, pool }
}

fn arb_requirement() -> impl Strategy<Value = Requirement> {
    let leaf = prop_oneof![
        1 => Just(Requirement::Public),
        6 => (0usize..3).prop_map(Requirement::Credential),
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
struct RouteSpec {
    host: Option<&'static str>,
    methods: Vec<&'static str>,
    path: String,
    require: Requirement,
    scopes: ScopeRequirement,
}

fn arb_route() -> impl Strategy<Value = RouteSpec> {
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

fn build_policy(specs: Vec<RouteSpec>, unmatched_allow: bool) -> Policy {
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
        files: vec!["equivalence.yaml".into()],
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

#[derive(Debug, Clone)]
struct ReqSpec {
    host: Option<&'static str>,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, usize, bool)>,
    ip: Option<&'static str>,
}

fn arb_path() -> impl Strategy<Value = String> {
    let seg = prop::sample::select(&["a", "b", "c", "d", "", "..", "%2e", "A", "x%2Fy", "a;b"][..]);
    (
        prop::collection::vec(seg, 0..5),
        prop::bool::ANY,
        prop::option::of(Just("?q=1")),
    )
        .prop_map(|(segs, slash, q)| {
            format!(
                "/{}{}{}",
                segs.join("/"),
                if slash { "/" } else { "" },
                q.unwrap_or("")
            )
        })
}

fn arb_request(pool: usize) -> impl Strategy<Value = ReqSpec> {
    let header = (
        prop::sample::select(
            &[
                "x-api-key",
                "authorization",
                "x-key",
                "X-Api-Key",
                "x-other",
            ][..],
        ),
        0..pool,
        prop::bool::weighted(0.15),
    );
    (
        prop::option::of(prop::sample::select(
            &["h1.example", "h2.example", "h3.example"][..],
        )),
        prop::sample::select(&["GET", "POST", "DELETE", "PUT"][..]),
        arb_path(),
        prop::collection::vec(header, 0..3),
        prop::option::of(prop::sample::select(&["10.1.2.3", "192.0.2.1"][..])),
    )
        .prop_map(|(host, method, path, headers, ip)| ReqSpec {
            host,
            method,
            path,
            headers,
            ip,
        })
}

fn build_request(spec: &ReqSpec, pool: &[String]) -> Request {
    let mut headers = Headers::new();
    for (name, k, lowercase_scheme) in &spec.headers {
        let key = &pool[*k];
        if name.eq_ignore_ascii_case("authorization") {
            headers.append(
                name,
                format!(
                    "{} {key}",
                    if *lowercase_scheme {
                        "bearer"
                    } else {
                        "Bearer"
                    }
                ),
            );
        } else {
            headers.append(name, key.clone());
        }
    }
    Request {
        method: spec.method.to_string(),
        path: spec.path.clone(),
        host: spec.host.map(str::to_string),
        headers,
        source_ip: spec.ip.map(|s| s.parse().unwrap()),
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn compiled_tree_agrees_with_reference(
        routes in prop::collection::vec(arb_route(), 0..12),
        unmatched_allow in prop::bool::weighted(0.2),
        requests in prop::collection::vec(arb_request(12), 1..12),
    ) {
        let k = keys_cached();
        let policy = build_policy(routes, unmatched_allow);
        let reference = Reference::new(&policy).unwrap();
        let engine = Engine::new(&policy, Arc::clone(&k.0) as Arc<dyn portcullis_engine::credential::KeyStore>).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for spec in &requests {
            let req = build_request(spec, &k.1);
            let got = engine.decide_with(&req, &DecideOptions { explain: false, now: Some(now) });
            let want = reference.decide(&req, k.0.as_ref(), now);
            prop_assert_eq!(got.allow, want.allow, "allow for {:?}", spec);
            prop_assert_eq!(got.status, want.status, "status for {:?}", spec);
            prop_assert_eq!(got.reason, want.reason, "reason for {:?}", spec);
            prop_assert_eq!(got.route.as_deref(), want.route.as_deref(), "route for {:?}", spec);
        }
    }
}

/// Keys are generated once: generation is not what is under test.
fn keys_cached() -> &'static (Arc<MemoryIndex>, Vec<String>) {
    static KEYS: std::sync::OnceLock<(Arc<MemoryIndex>, Vec<String>)> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let k = keys();
        (Arc::new(k.index), k.pool)
    })
}

#[test]
fn generator_exercises_every_reason() {
    // Guards the generator: if it stopped producing some outcome, the
    // equivalence property would silently test less.
    let k = keys_cached();
    let mut seen = HashSet::new();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for _ in 0..400 {
        let routes = prop::collection::vec(arb_route(), 1..12)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let reqs = prop::collection::vec(arb_request(12), 1..12)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let policy = build_policy(routes, false);
        let engine = Engine::new(
            &policy,
            Arc::clone(&k.0) as Arc<dyn portcullis_engine::credential::KeyStore>,
        )
        .unwrap();
        for spec in &reqs {
            let d = engine.decide_with(
                &build_request(spec, &k.1),
                &DecideOptions {
                    explain: false,
                    now: Some(now),
                },
            );
            seen.insert(d.reason.as_str());
        }
    }
    for r in [
        "allowed",
        "bad_path",
        "no_route",
        "credential_missing",
        "credential_invalid",
        "credential_expired",
        "credential_revoked",
        "ambiguous_credential",
        "insufficient_scope",
        "ip_not_allowed",
    ] {
        assert!(
            seen.contains(r),
            "generator never produced `{r}`; saw {seen:?}"
        );
    }
}
