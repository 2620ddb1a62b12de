//! Shared builders for Portcullis benchmarks: synthetic policies and key populations.
#![forbid(unsafe_code)]

/// Every benchmark, example and harness binary of this crate allocates
/// with mimalloc, the allocator `portcullis serve` ships with
/// (`server/src/main.rs`), so the figures are those of the server's own
/// decisions. A decision's allocations (an `Arc` per identity string, a
/// JWT's scopes) cost more under glibc's malloc (docs/benchmarking.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;

use portcullis_engine::credential::apikey::{generate, KeyEntry, KeyRecord, MemoryIndex};
use portcullis_engine::path::parse_pattern;
use portcullis_engine::policy::{
    ApiKeyDef, CredentialDef, CredentialKind, Policy, Requirement, Route, RouteMatch,
    ScopeRequirement, Settings, Source, Span, Spanned,
};

fn sp<T>(v: T) -> Spanned<T> {
    Spanned::new(v, Span::default())
}

/// A policy with one API-key credential and `n` routes of mixed shapes
/// (`/svc{i}/items/{id}`, `/svc{i}/static`, `/svc{i}/files/**`), all requiring the key
/// and scope `read`.
pub fn policy_with_routes(n: usize) -> Policy {
    let mut routes = Vec::with_capacity(n);
    for i in 0..n {
        let path = match i % 3 {
            0 => format!("/svc{i}/items/{{id}}"),
            1 => format!("/svc{i}/static"),
            _ => format!("/svc{i}/files/**"),
        };
        routes.push(Route {
            name: sp(format!("route{i}")),
            matcher: RouteMatch {
                host: None,
                methods: vec!["GET".into()],
                path: parse_pattern(&path).unwrap_or_else(|_| unreachable_pattern()),
            },
            require: Requirement::Credential(0),
            scopes: ScopeRequirement::AllOf(vec!["read".into()]),
            rate_limit: None,
            span: Span::default(),
        });
    }
    Policy {
        files: vec!["bench.yaml".into()],
        settings: Settings::default(),
        credentials: vec![CredentialDef {
            name: sp("partner_key".into()),
            kind: CredentialKind::ApiKey(ApiKeyDef {
                sources: vec![Source::Header("x-api-key".into()), Source::Bearer],
                prefixes: vec!["pk_live_".into()],
            }),
        }],
        rate_limits: vec![],
        routes,
    }
}

fn unreachable_pattern() -> portcullis_engine::policy::PathPattern {
    portcullis_engine::policy::PathPattern {
        raw: "/".into(),
        segments: vec![],
    }
}

/// A path that hits route `i` of [`policy_with_routes`].
pub fn path_for(i: usize) -> String {
    match i % 3 {
        0 => format!("/svc{i}/items/it_42"),
        1 => format!("/svc{i}/static"),
        _ => format!("/svc{i}/files/a/b/c.txt"),
    }
}

/// An index of `n` keys (scopes `read`), and a few of the plaintext keys to present.
pub fn key_index(n: usize) -> (Arc<MemoryIndex>, Vec<String>) {
    let index = MemoryIndex::new();
    let mut sample = Vec::new();
    let scopes: Arc<[String]> = Arc::from(vec!["read".to_string()]);
    for i in 0..n {
        let key = generate("pk_live_").unwrap_or_default();
        let mut record =
            KeyRecord::new(&format!("key_{i}"), &format!("consumer_{}", i % 1000), &[]);
        record.scopes = Arc::clone(&scopes);
        let (digest, entry) = KeyEntry::for_key(&key, record);
        index.insert(digest, entry);
        if i % (n / 64).max(1) == 0 {
            sample.push(key);
        }
    }
    (Arc::new(index), sample)
}

/// One request per key, each for route 0 of [`policy_with_routes`] with
/// the key in `x-api-key`.
pub fn key_requests(keys: &[String]) -> Vec<portcullis_engine::Request> {
    keys.iter()
        .map(|k| {
            let mut r = portcullis_engine::Request {
                method: "GET".into(),
                path: path_for(0),
                host: Some("api.example.com".into()),
                ..Default::default()
            };
            r.headers.append("x-api-key", k.as_str());
            r
        })
        .collect()
}

/// The YAML text of [`policy_with_routes`]: the same `n` routes, for
/// measuring the whole load (parse, validate, compile) from text.
pub fn policy_yaml_with_routes(n: usize) -> String {
    let mut out = String::with_capacity(200 + n * 120);
    out.push_str(
        "version: 1\ncredentials:\n  partner_key:\n    type: api_key\n    in: [header:x-api-key, bearer]\n    prefixes: [pk_live_]\nroutes:\n",
    );
    for i in 0..n {
        let path = match i % 3 {
            0 => format!("/svc{i}/items/{{id}}"),
            1 => format!("/svc{i}/static"),
            _ => format!("/svc{i}/files/**"),
        };
        out.push_str(&format!(
            "  - name: route{i}\n    match: {{methods: [GET], path: \"{path}\"}}\n    require: partner_key\n    scopes: {{all_of: [read]}}\n"
        ));
    }
    out
}

/// The workload harness behind the `portcullis-bench` binary: real servers,
/// real stores, open- and closed-loop load, reports (see docs/benchmarking.md).
pub mod harness;
pub mod jwt_case;
