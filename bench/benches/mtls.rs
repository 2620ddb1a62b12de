//! Issue 4 benchmarks: the mTLS verifier's decision (XFCC and nginx PEM
//! header, with and without chain verification against `ca_file`), and
//! HTTP Basic with a success-cache hit against a miss (a full bcrypt or
//! argon2 verification), and an unknown user against a wrong password.
//!
//! Fixtures are the checked-in test PKI and htpasswd files, whose bcrypt
//! hashes use cost 4 (the minimum) and argon2 `m=256,t=1,p=1`: a miss here
//! is the floor, and a real cost-10 bcrypt is 2^6 = 64 times slower.
//!
//! Run: `cargo bench -p portcullis-bench --bench mtls`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_engine::credential::basic::BasicVerifier;
use portcullis_engine::credential::mtls::testing::{escaped_pem, xfcc_header};
use portcullis_engine::credential::mtls::MtlsVerifier;
use portcullis_engine::credential::Outcome;
use portcullis_engine::policy::{BasicDef, MtlsAllow, MtlsDef, MtlsSource, Span, Spanned};
use portcullis_engine::{Headers, Reason, Request};

const SPIFFE_API: &str = "spiffe://portcullis.test/ns/billing/sa/api";

fn data(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/tests/data")
        .join(sub)
}

fn pki(name: &str) -> String {
    std::fs::read_to_string(data("pki").join(name)).unwrap()
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_780_272_000)
}

fn request(headers: &[(&str, &str)]) -> Request {
    let mut h = Headers::new();
    for (k, v) in headers {
        h.append(k, *v);
    }
    Request {
        method: "GET".into(),
        path: "/internal/x".into(),
        host: None,
        headers: h,
        source_ip: None,
    }
}

fn mtls(source: MtlsSource, ca_file: Option<&str>) -> MtlsVerifier {
    let def = MtlsDef {
        source,
        ca_file: ca_file.map(|f| Spanned::new(PathBuf::from(f), Span::default())),
        allow: MtlsAllow {
            spiffe_ids: vec!["spiffe://portcullis.test/ns/billing/*".into()],
            ..MtlsAllow::default()
        },
        grants: vec!["internal:call".into()],
    };
    MtlsVerifier::new(&def, &data("pki")).unwrap()
}

fn assert_valid(o: &Outcome) {
    assert!(matches!(o, Outcome::Valid(_)), "{o:?}");
}

fn mtls_decision(c: &mut Criterion) {
    let leaf = pki("spiffe.pem");
    let with_chain = format!(
        "{};Chain=\"{}\"",
        xfcc_header(&leaf, Some(SPIFFE_API)),
        escaped_pem(&pki("spiffe-chain.pem"))
    );
    let fp = portcullis_engine::credential::mtls::cert::ClientCert::parse(
        portcullis_engine::credential::mtls::pem::certificates(&leaf)
            .unwrap()
            .remove(0),
    )
    .unwrap()
    .fingerprint;
    let cases: Vec<(&str, MtlsVerifier, Request)> = vec![
        (
            "xfcc_hash_uri_only",
            mtls(MtlsSource::Xfcc, None),
            request(&[(
                "x-forwarded-client-cert",
                &format!("By=spiffe://portcullis.test/gw;Hash={fp};URI={SPIFFE_API}"),
            )]),
        ),
        (
            "xfcc_cert_no_ca",
            mtls(MtlsSource::Xfcc, None),
            request(&[("x-forwarded-client-cert", &with_chain)]),
        ),
        (
            "xfcc_cert_chain_verified",
            mtls(MtlsSource::Xfcc, Some("root-ca.pem")),
            request(&[("x-forwarded-client-cert", &with_chain)]),
        ),
        (
            "pem_header_no_ca",
            mtls(
                MtlsSource::PemHeader {
                    header: "ssl-client-cert".into(),
                    verify_header: Some("ssl-client-verify".into()),
                },
                None,
            ),
            request(&[
                ("ssl-client-cert", &escaped_pem(&leaf)),
                ("ssl-client-verify", "SUCCESS"),
            ]),
        ),
        (
            "pem_header_chain_verified",
            mtls(
                MtlsSource::PemHeader {
                    header: "ssl-client-cert".into(),
                    verify_header: Some("ssl-client-verify".into()),
                },
                Some("intermediate-ca.pem"),
            ),
            request(&[
                ("ssl-client-cert", &escaped_pem(&leaf)),
                ("ssl-client-verify", "SUCCESS"),
            ]),
        ),
    ];
    let mut g = c.benchmark_group("mtls_verify");
    for (name, v, req) in &cases {
        assert_valid(&v.verify(req, now()));
        g.bench_function(*name, |b| b.iter(|| v.verify(black_box(req), now())));
    }
    // A refusal: a certificate from an unrelated CA, chain-verified.
    let rogue = pki("rogue-client.pem");
    let rogue_req = request(&[(
        "x-forwarded-client-cert",
        &format!(
            "{};Chain=\"{}\"",
            xfcc_header(&rogue, Some(SPIFFE_API)),
            escaped_pem(&format!("{rogue}{}", pki("rogue-ca.pem")))
        ),
    )]);
    let v = mtls(MtlsSource::Xfcc, Some("root-ca.pem"));
    assert!(matches!(
        v.verify(&rogue_req, now()),
        Outcome::Invalid(Reason::CredentialInvalid, _)
    ));
    g.bench_function("xfcc_unrelated_ca_denied", |b| {
        b.iter(|| v.verify(black_box(&rogue_req), now()))
    });
    g.finish();
}

fn basic(file: &str, ttl: Duration) -> BasicVerifier {
    let def = BasicDef {
        htpasswd_file: Spanned::new(PathBuf::from(file), Span::default()),
        grants: vec!["ops:read".into()],
        realm: "ops".into(),
        cache_ttl: ttl,
    };
    BasicVerifier::new(&def, &data("htpasswd")).unwrap()
}

fn basic_req(user: &str, password: &str) -> Request {
    let v = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
    request(&[("authorization", &v)])
}

fn basic_verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("basic_verify");
    let alice = basic_req("alice", "alice-pw");
    let cached = basic("bcrypt-only.htpasswd", Duration::from_secs(3600));
    assert_valid(&cached.verify(&alice, now()));
    g.bench_function("cache_hit", |b| {
        b.iter(|| cached.verify(black_box(&alice), now()))
    });
    let uncached = basic("bcrypt-only.htpasswd", Duration::ZERO);
    assert_valid(&uncached.verify(&alice, now()));
    g.bench_function("miss_bcrypt_cost4", |b| {
        b.iter(|| uncached.verify(black_box(&alice), now()))
    });
    let wrong = basic_req("alice", "wrong-pw");
    g.bench_function("wrong_password_bcrypt_cost4", |b| {
        b.iter(|| uncached.verify(black_box(&wrong), now()))
    });
    let unknown = basic_req("mallory", "wrong-pw");
    assert_eq!(
        uncached.verify(&unknown, now()),
        uncached.verify(&wrong, now())
    );
    g.bench_function("unknown_user_bcrypt_cost4", |b| {
        b.iter(|| uncached.verify(black_box(&unknown), now()))
    });
    let argon = basic("users.htpasswd", Duration::ZERO);
    let dave = basic_req("dave", "dave-pw");
    assert_valid(&argon.verify(&dave, now()));
    g.bench_function("miss_argon2id_m256_t1", |b| {
        b.iter(|| argon.verify(black_box(&dave), now()))
    });
    g.finish();
}

criterion_group!(benches, mtls_decision, basic_verify);
criterion_main!(benches);
