//! Valid policies load, and load into the model they say.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis_engine::policy::{
    self, CredentialKind, JwtAlgorithm, JwtKeySource, MtlsSource, PatternSegment, Policy, RateKey,
    Requirement, ScopeRequirement, Source, Span, Unmatched,
};

/// The secret the valid `secret_env` policy reads (64 bytes: enough for HS384's 48).
const HS_VAR: &str = "PORTCULLIS_VALID_HS_SECRET";

fn set_secret() {
    std::env::set_var(HS_VAR, "k".repeat(64));
}

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/policy")
        .join(p)
}

fn load(p: &str) -> Policy {
    set_secret();
    policy::load(&data(p)).unwrap_or_else(|e| panic!("{p}:\n{e}"))
}

fn cred<'a>(p: &'a Policy, name: &str) -> &'a CredentialKind {
    &p.credentials
        .iter()
        .find(|c| c.name.value == name)
        .unwrap_or_else(|| panic!("no credential {name}"))
        .kind
}

fn cred_index(p: &Policy, name: &str) -> usize {
    p.credentials
        .iter()
        .position(|c| c.name.value == name)
        .unwrap()
}

#[test]
fn every_valid_policy_loads() {
    let mut n = 0;
    for entry in std::fs::read_dir(data("valid")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() || path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            set_secret();
            if let Err(e) = policy::load(&path) {
                panic!("{}:\n{e}", path.display());
            }
            n += 1;
        }
    }
    assert!(n >= 6, "only {n} valid policies");
}

#[test]
fn the_spec_policy_maps_to_the_model() {
    let p = load("valid/spec.yaml");
    let dir = data("valid");
    assert_eq!(p.files, vec![data("valid/spec.yaml")]);
    assert_eq!(p.settings.unmatched, Unmatched::Deny);
    assert_eq!(p.settings.identity_headers.principal, "x-auth-principal");
    let names: Vec<&str> = p
        .credentials
        .iter()
        .map(|c| c.name.value.as_str())
        .collect();
    assert_eq!(names, ["partner_key", "user_jwt", "mesh", "ops"]);
    // Names keep the place they were written (file 0, line 12, column 3).
    assert_eq!(
        p.credentials[0].name.span,
        Span {
            file: 0,
            line: 12,
            col: 3
        }
    );

    let CredentialKind::ApiKey(k) = cred(&p, "partner_key") else {
        panic!()
    };
    assert_eq!(
        k.sources,
        [Source::Header("x-api-key".into()), Source::Bearer]
    );
    assert_eq!(k.prefixes, ["pk_live_", "pk_test_"]);

    let CredentialKind::Jwt(j) = cred(&p, "user_jwt") else {
        panic!()
    };
    assert_eq!(j.sources, [Source::Bearer]);
    assert_eq!(j.issuer.as_deref(), Some("https://auth.example.com/"));
    assert_eq!(j.audience, ["payments-api"]);
    assert_eq!(j.algorithms, [JwtAlgorithm::ES256]);
    // Relative paths resolve against the policy file's directory.
    assert_eq!(
        j.keys.value,
        JwtKeySource::JwksFile(dir.join("keys/auth-jwks.json"))
    );
    assert_eq!(j.leeway, Duration::from_secs(30));
    assert_eq!(j.max_lifetime, Some(Duration::from_secs(3600)));
    assert_eq!(j.require_claims, ["sub", "exp", "iat"]);
    assert_eq!(j.scopes_claim.as_deref(), Some("scope"));
    assert_eq!(j.principal_claim, "sub");
    assert_eq!(j.typ, None);
    assert_eq!(j.max_token_bytes, 8192);
    assert_eq!(j.cache_size, 10_000);

    let CredentialKind::Mtls(m) = cred(&p, "mesh") else {
        panic!()
    };
    assert_eq!(m.source, MtlsSource::Xfcc);
    assert_eq!(
        m.ca_file.as_ref().unwrap().value,
        dir.join("certs/mesh-ca.pem")
    );
    assert_eq!(m.allow.spiffe_ids, ["spiffe://corp.example/ns/billing/*"]);
    assert!(m.allow.subjects.is_empty() && m.allow.fingerprints_sha256.is_empty());
    assert_eq!(m.grants, ["internal:call"]);

    let CredentialKind::Basic(b) = cred(&p, "ops") else {
        panic!()
    };
    assert_eq!(b.htpasswd_file.value, dir.join("secrets/ops.htpasswd"));
    assert_eq!(b.grants, ["ops:read"]);
    assert_eq!(b.realm, "portcullis");
    assert_eq!(b.cache_ttl, Duration::from_secs(30));

    assert_eq!(p.rate_limits.len(), 1);
    let r = &p.rate_limits[0];
    assert_eq!(
        (r.name.value.as_str(), r.limit, r.per, r.burst, r.key),
        (
            "partner",
            100,
            Duration::from_secs(1),
            200,
            RateKey::Consumer
        )
    );

    let routes: Vec<&str> = p.routes.iter().map(|r| r.name.value.as_str()).collect();
    assert_eq!(
        routes,
        ["charges.read", "refunds.create", "internal", "health"]
    );
    let charges = &p.routes[0];
    assert_eq!(charges.matcher.host.as_deref(), Some("api.example.com"));
    assert_eq!(charges.matcher.methods, ["GET", "HEAD"]);
    assert_eq!(
        charges.matcher.path.segments,
        [
            PatternSegment::Static("v1".into()),
            PatternSegment::Static("charges".into()),
            PatternSegment::Param("id".into())
        ]
    );
    let (pk, uj, mesh) = (
        cred_index(&p, "partner_key"),
        cred_index(&p, "user_jwt"),
        cred_index(&p, "mesh"),
    );
    assert_eq!(
        charges.require,
        Requirement::AnyOf(vec![
            Requirement::Credential(pk),
            Requirement::Credential(uj)
        ])
    );
    assert_eq!(
        charges.scopes,
        ScopeRequirement::AllOf(vec!["charges:read".into()])
    );
    assert_eq!(charges.rate_limit, Some(0));
    assert_eq!(
        p.routes[1].require,
        Requirement::AllOf(vec![
            Requirement::Credential(pk),
            Requirement::Credential(uj)
        ])
    );
    assert_eq!(p.routes[1].matcher.host, None);
    assert_eq!(p.routes[2].require, Requirement::Credential(mesh));
    assert_eq!(
        p.routes[2].matcher.path.segments.last(),
        Some(&PatternSegment::Rest)
    );
    assert_eq!(p.routes[3].require, Requirement::Public);
    assert_eq!(p.routes[3].scopes, ScopeRequirement::None);
    assert!(p.routes[3].matcher.methods.is_empty());
}

#[test]
fn defaults_fill_what_is_left_out() {
    let p = load("valid/minimal.yaml");
    assert!(p.credentials.is_empty() && p.routes.is_empty() && p.rate_limits.is_empty());
    assert_eq!(p.settings, Default::default());

    let p = policy::load_str(
        Path::new("p.yaml"),
        "version: 1\ncredentials:\n  k: {type: api_key}\n  j: {type: jwt, algorithms: [ES256], keys: {jwks_url: \"https://a.example/j\"}}\nrate_limits:\n  r: {limit: 7, per: 1m}\n",
    )
    .unwrap();
    let CredentialKind::ApiKey(k) = cred(&p, "k") else {
        panic!()
    };
    assert_eq!(k.sources, [Source::Header("x-api-key".into())]);
    assert!(k.prefixes.is_empty());
    let CredentialKind::Jwt(j) = cred(&p, "j") else {
        panic!()
    };
    assert_eq!(j.sources, [Source::Bearer]);
    assert_eq!(j.require_claims, ["exp"]);
    assert_eq!(j.principal_claim, "sub");
    assert_eq!(
        j.keys.value,
        JwtKeySource::JwksUrl {
            url: "https://a.example/j".into(),
            refresh: Duration::from_secs(300),
            refetch_min_interval: Duration::from_secs(30),
        }
    );
    let r = &p.rate_limits[0];
    assert_eq!((r.burst, r.key), (7, RateKey::Consumer));
}

#[test]
fn jwt_variants() {
    let p = load("valid/jwt_variants.yaml");
    let CredentialKind::Jwt(remote) = cred(&p, "remote") else {
        panic!()
    };
    assert_eq!(remote.audience, ["payments-api"]);
    assert_eq!(
        remote.keys.value,
        JwtKeySource::JwksUrl {
            url: "https://auth.example.com/.well-known/jwks.json".into(),
            refresh: Duration::from_secs(600),
            refetch_min_interval: Duration::from_secs(60),
        }
    );
    assert_eq!(remote.typ.as_deref(), Some("at+jwt"));
    assert_eq!(
        (remote.max_token_bytes, remote.cache_size, remote.leeway),
        (4096, 0, Duration::from_secs(1))
    );
    assert!(remote.require_claims.is_empty());

    let CredentialKind::Jwt(pem) = cred(&p, "pem") else {
        panic!()
    };
    // `header:NAME` names are stored lowercase.
    assert_eq!(pem.sources, [Source::Header("x-id-token".into())]);
    assert_eq!(
        pem.keys.value,
        JwtKeySource::PemFile(data("valid").join("../keys/rsa.pub.pem"))
    );

    let CredentialKind::Jwt(shared) = cred(&p, "shared") else {
        panic!()
    };
    assert_eq!(shared.keys.value, JwtKeySource::SecretEnv(HS_VAR.into()));
    assert_eq!(
        shared.algorithms,
        [JwtAlgorithm::HS256, JwtAlgorithm::HS384]
    );
    assert_eq!(shared.scopes_claim.as_deref(), Some("scp"));
    assert_eq!(shared.principal_claim, "client_id");
}

#[test]
fn secret_env_length_is_checked_per_algorithm() {
    let var = "PORTCULLIS_VALID_HS_SECRET_48";
    std::env::set_var(var, "z".repeat(48));
    let text = |algs: &str| {
        format!("version: 1\ncredentials:\n  j:\n    type: jwt\n    algorithms: [{algs}]\n    keys: {{secret_env: {var}}}\n")
    };
    let f = Path::new("p.yaml");
    assert!(policy::load_str(f, &text("HS256")).is_ok());
    assert!(policy::load_str(f, &text("HS256, HS384")).is_ok());
    let err = policy::load_str(f, &text("HS512")).unwrap_err();
    assert!(
        err.0[0].message.contains("HS512 needs at least 64 bytes"),
        "{err}"
    );
}

#[test]
fn mtls_pem_header() {
    let p = load("valid/mtls_pem_header.yaml");
    let CredentialKind::Mtls(m) = cred(&p, "nginx_client") else {
        panic!()
    };
    assert_eq!(
        m.source,
        MtlsSource::PemHeader {
            header: "x-ssl-client-cert".into(),
            verify_header: Some("x-ssl-client-verify".into()),
        }
    );
    // Fingerprints are normalised: lowercase hex, no separators.
    assert_eq!(
        m.allow.fingerprints_sha256,
        ["abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"]
    );
    assert_eq!(m.allow.subjects, ["CN=billing,O=Example"]);
    assert_eq!(m.ca_file, None);
    assert_eq!(
        p.routes[0].scopes,
        ScopeRequirement::AnyOf(vec!["internal:read".into()])
    );
}

#[test]
fn routes_that_differ_by_host_or_method_set_are_not_duplicates() {
    let p = load("valid/everything_else.yaml");
    assert_eq!(p.settings.unmatched, Unmatched::Allow);
    assert_eq!(p.settings.identity_headers.principal, "x-user");
    assert_eq!(p.settings.identity_headers.consumer, "x-app");
    assert_eq!(p.settings.identity_headers.scopes, "x-auth-scopes");
    assert_eq!(p.routes.len(), 7);
    let CredentialKind::Basic(b) = cred(&p, "ops") else {
        panic!()
    };
    assert_eq!(
        b.htpasswd_file.value,
        Path::new("/etc/portcullis/ops.htpasswd")
    );
    assert_eq!(
        (b.realm.as_str(), b.cache_ttl),
        ("ops area", Duration::from_secs(5))
    );
    let per_ip = &p.rate_limits[0];
    assert_eq!(
        (per_ip.per, per_ip.burst, per_ip.key),
        (Duration::from_millis(500), 5, RateKey::SourceIp)
    );
    let daily = &p.rate_limits[1];
    assert_eq!(
        (daily.per, daily.burst, daily.key),
        (Duration::from_secs(86_400), 1, RateKey::Principal)
    );
    let (key, ops) = (cred_index(&p, "key"), cred_index(&p, "ops"));
    assert_eq!(
        p.routes[2].require,
        Requirement::AllOf(vec![
            Requirement::Credential(key),
            Requirement::AnyOf(vec![
                Requirement::Credential(ops),
                Requirement::Credential(key)
            ])
        ])
    );
    assert_eq!(p.routes[2].rate_limit, Some(0));
    assert_eq!(p.routes[3].rate_limit, Some(1));
}

#[test]
fn a_directory_is_one_policy() {
    let p = load("valid/split");
    // Sorted, `*_test.yaml` and non-yaml files skipped.
    assert_eq!(
        p.files,
        vec![
            data("valid/split/10-credentials.yaml"),
            data("valid/split/20-routes.yml")
        ]
    );
    assert_eq!(p.routes.len(), 1);
    // Names resolve across files; spans say which file.
    assert_eq!(p.routes[0].require, Requirement::Credential(0));
    assert_eq!(p.routes[0].rate_limit, Some(0));
    assert_eq!(p.routes[0].name.span.file, 1);
    assert_eq!(p.credentials[0].name.span.file, 0);
}

#[test]
fn load_sources_merges_texts() {
    let p = policy::load_sources(&[
        (
            PathBuf::from("/etc/p/a.yaml"),
            "version: 1\ncredentials:\n  k: {type: basic, htpasswd_file: users}\n".into(),
        ),
        (
            PathBuf::from("/srv/q/b.yaml"),
            "version: 1\nroutes:\n  - {name: r, match: {path: /r}, require: k}\n".into(),
        ),
    ])
    .unwrap();
    let CredentialKind::Basic(b) = cred(&p, "k") else {
        panic!()
    };
    // Each file's relative paths resolve against its own directory.
    assert_eq!(b.htpasswd_file.value, Path::new("/etc/p/users"));
    assert_eq!(p.routes[0].span.file, 1);
}

#[test]
fn a_loaded_policy_compiles_and_decides() {
    use portcullis_engine::credential::apikey::{
        fingerprint, generate, KeyDigest, KeyEntry, KeyRecord, MemoryIndex,
    };
    use portcullis_engine::{Engine, Headers, Request};
    use std::sync::Arc;

    let keys = MemoryIndex::new();
    let key = generate("pk_live_").unwrap();
    let rec = KeyRecord {
        id: Arc::from("key_1"),
        consumer: Arc::from("acme"),
        scopes: Arc::from(Vec::<String>::new()),
        created_at: 0,
        expires_at: None,
        not_before: None,
        revoked_at: None,
        allowed_cidrs: vec![],
        metadata: Default::default(),
        rate_limit: None,
    };
    keys.insert(
        KeyDigest::of(&key),
        KeyEntry {
            record: Arc::new(rec),
            fingerprint: fingerprint(&key).into(),
            key_expires_at: None,
        },
    );
    let engine =
        Engine::from_path(&data("valid/split"), Arc::new(keys)).unwrap_or_else(|e| panic!("{e}"));
    let request = |key: Option<&str>| {
        let mut headers = Headers::new();
        if let Some(k) = key {
            headers.append("x-api-key", k);
        }
        Request {
            method: "GET".into(),
            path: "/v1/charges/ch_1".into(),
            host: None,
            headers,
            source_ip: None,
        }
    };
    let d = engine.decide(&request(Some(&key)));
    assert!(d.allow, "{d:?}");
    assert_eq!(d.route.as_deref(), Some("charges"));
    let d = engine.decide(&request(None));
    assert!(!d.allow);
    assert_eq!(d.status, 401);
}
