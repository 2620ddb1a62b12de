//! SPIFFE identities (SECURITY.md, "SPIFFE IDs"): every malformed shape is no
//! identity, one URI SAN only, whole-segment and exact-trust-domain matching.
//! Leaves are minted here, signed by the checked-in test intermediate, and
//! verified against the checked-in root through an XFCC `Chain`, so each
//! case differs from an allowed one only in its URI SAN.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_engine::credential::mtls::testing::{escaped_pem, xfcc_header};
use portcullis_engine::credential::mtls::MtlsVerifier;
use portcullis_engine::credential::Outcome;
use portcullis_engine::policy::{MtlsAllow, MtlsDef, MtlsSource, Span, Spanned};
use portcullis_engine::{Headers, Reason, Request};
use rcgen::{
    date_time_ymd, CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType,
};

fn pki_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pki")
}

fn pki(name: &str) -> String {
    std::fs::read_to_string(pki_dir().join(name)).unwrap()
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_780_272_000)
}

/// A client leaf with these URI SANs, issued by the test intermediate.
fn mint(uris: &[&str]) -> String {
    let ca_key = KeyPair::from_pem(&pki("intermediate-ca.key.pem")).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&pki("intermediate-ca.pem"), ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.remove(DnType::CommonName);
    p.distinguished_name.push(DnType::CommonName, "minted");
    for u in uris {
        p.subject_alt_names
            .push(SanType::URI((*u).try_into().unwrap()));
    }
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = date_time_ymd(2025, 1, 1);
    p.not_after = date_time_ymd(2046, 1, 1);
    p.use_authority_key_identifier_extension = true;
    p.signed_by(&key, &issuer).unwrap().pem()
}

fn verifier(patterns: &[&str]) -> MtlsVerifier {
    try_verifier(patterns).unwrap()
}

fn try_verifier(patterns: &[&str]) -> Result<MtlsVerifier, String> {
    let def = MtlsDef {
        source: MtlsSource::Xfcc,
        ca_file: Some(Spanned::new(PathBuf::from("root-ca.pem"), Span::default())),
        allow: MtlsAllow {
            spiffe_ids: patterns.iter().map(|s| s.to_string()).collect(),
            ..MtlsAllow::default()
        },
        grants: vec![],
    };
    MtlsVerifier::new(&def, &pki_dir())
}

/// The XFCC an Envoy with `cert` and `chain` details would send.
fn present(v: &MtlsVerifier, leaf_pem: &str) -> Outcome {
    let h = format!(
        "{};Chain=\"{}\"",
        xfcc_header(leaf_pem, None),
        escaped_pem(&format!("{leaf_pem}{}", pki("intermediate-ca.pem")))
    );
    let mut headers = Headers::new();
    headers.append("x-forwarded-client-cert", h);
    let req = Request {
        method: "GET".into(),
        path: "/".into(),
        headers,
        ..Request::default()
    };
    v.verify(&req, now())
}

#[track_caller]
fn assert_allowed(o: &Outcome, principal: &str) {
    match o {
        Outcome::Valid(id) => assert_eq!(&*id.principal, principal),
        other => panic!("expected `{principal}` allowed, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_allowed(o: &Outcome) {
    assert!(
        matches!(o, Outcome::Invalid(Reason::CertificateNotAllowed, _)),
        "{o:?}"
    );
}

#[test]
fn spiffe_malformed_ids_are_never_identities() {
    let v = verifier(&[
        "spiffe://portcullis.test/ns/billing/*",
        "spiffe://portcullis.test/ns/admin/*",
    ]);
    // The control: a well-formed ID minted the same way is allowed.
    let ok = "spiffe://portcullis.test/ns/billing/sa/api";
    assert_allowed(&present(&v, &mint(&[ok])), ok);
    let long = format!("spiffe://portcullis.test/ns/billing/{}", "a".repeat(2100));
    for bad in [
        "SPIFFE://portcullis.test/ns/billing/sa/api",
        "spiffe://PORTCULLIS.TEST/ns/billing/sa/api",
        "spiffe://Portcullis.test/ns/billing/sa/api",
        "spiffe://portcullis.test:443/ns/billing/sa/api",
        "spiffe://admin@portcullis.test/ns/billing/sa/api",
        "spiffe://portcullis.test/ns/billing/sa/api?x=1",
        "spiffe://portcullis.test/ns/billing/sa/api#frag",
        "spiffe://portcullis.test/ns/billing/sa/%61pi",
        "spiffe://portcullis.test/ns/billing%2Fsa/api",
        "spiffe://portcullis.test/ns//billing/sa/api",
        "spiffe://portcullis.test/ns/billing/sa/api/",
        "spiffe://portcullis.test/ns/billing/./sa/api",
        "spiffe://portcullis.test/ns/billing/../admin/sa/root",
        "spiffe://portcullis.test/ns/billing/sa/a pi",
        "spiffe:portcullis.test/ns/billing/sa/api",
        "https://portcullis.test/ns/billing/sa/api",
        &long,
    ] {
        assert_not_allowed(&present(&v, &mint(&[bad])));
    }
}

#[test]
fn spiffe_two_uri_sans_are_no_spiffe_identity() {
    let both = [
        "spiffe://portcullis.test/ns/billing/sa/api",
        "spiffe://portcullis.test/ns/admin/sa/root",
    ];
    let v = verifier(&both);
    // Checked-in two-URI leaf, and a minted one where one URI is not SPIFFE at all.
    assert_not_allowed(&present(&v, &pki("two-uris.pem")));
    assert_not_allowed(&present(&v, &mint(&[both[0], "https://billing.example"])));
    assert_allowed(&present(&v, &pki("spiffe.pem")), both[0]);
    // Still a valid certificate: a subject allowlist applies, and the principal is the subject.
    let by_subject = MtlsVerifier::new(
        &MtlsDef {
            source: MtlsSource::Xfcc,
            ca_file: Some(Spanned::new(PathBuf::from("root-ca.pem"), Span::default())),
            allow: MtlsAllow {
                subjects: vec!["CN=two-uris,O=Portcullis Test".into()],
                ..MtlsAllow::default()
            },
            grants: vec![],
        },
        &pki_dir(),
    )
    .unwrap();
    assert_allowed(
        &present(&by_subject, &pki("two-uris.pem")),
        "CN=two-uris,O=Portcullis Test",
    );
}

#[test]
fn spiffe_wildcard_matches_whole_segments_only() {
    let v = verifier(&["spiffe://portcullis.test/ns/prod/*"]);
    let ok = "spiffe://portcullis.test/ns/prod/sa/api";
    assert_allowed(&present(&v, &mint(&[ok])), ok);
    for bad in [
        "spiffe://portcullis.test/ns/production/sa/api",
        "spiffe://portcullis.test/ns/prod",
        "spiffe://portcullis.test/ns/pro/sa/api",
        "spiffe://portcullis.test/ns/Prod/sa/api",
        "spiffe://portcullis.test/ns-prod/sa/api",
    ] {
        assert_not_allowed(&present(&v, &mint(&[bad])));
    }
    // An exact entry matches exactly: no prefix, no extra segment.
    let exact = verifier(&["spiffe://portcullis.test/ns/prod/sa/api"]);
    assert_allowed(&present(&exact, &mint(&[ok])), ok);
    assert_not_allowed(&present(
        &exact,
        &mint(&["spiffe://portcullis.test/ns/prod/sa/api/x"]),
    ));
    assert_not_allowed(&present(
        &exact,
        &mint(&["spiffe://portcullis.test/ns/prod/sa/apix"]),
    ));
}

#[test]
fn spiffe_trust_domain_is_matched_exactly() {
    let v = verifier(&["spiffe://portcullis.test/*"]);
    let ok = "spiffe://portcullis.test/ns/a";
    assert_allowed(&present(&v, &mint(&[ok])), ok);
    for bad in [
        "spiffe://portcullis.test.evil.com/ns/a",
        "spiffe://evil.portcullis.test/ns/a",
        "spiffe://portcullis.testx/ns/a",
        "spiffe://portcullis-test/ns/a",
        "spiffe://portcullis.test/",
        "spiffe://portcullis.test",
    ] {
        assert_not_allowed(&present(&v, &mint(&[bad])));
    }
}

#[test]
fn spiffe_wildcard_only_as_last_whole_segment_at_load() {
    for bad in [
        "spiffe://portcullis.test/ns/*/sa/api",
        "spiffe://portcullis.test/ns/prod*",
        "spiffe://portcullis.test/ns/*prod",
        "spiffe://*.portcullis.test/ns/a",
        "spiffe://portcullis.test/**",
        "spiffe://portcullis.test/ns/*/*",
        "spiffe://portcullis.test",
        "spiffe://portcullis.test/ns/",
        "spiffe://Portcullis.test/ns/*",
        "spiffe://portcullis.test/ns/../*",
        "*",
    ] {
        let err = try_verifier(&[bad]).unwrap_err();
        assert!(err.contains(bad), "{bad}: {err}");
    }
}

#[test]
fn spiffe_vouched_uri_without_cert_is_validated_too() {
    // XFCC without Cert and without ca_file: the proxy's URI is still parsed strictly.
    let def = MtlsDef {
        source: MtlsSource::Xfcc,
        ca_file: None,
        allow: MtlsAllow {
            spiffe_ids: vec!["spiffe://portcullis.test/ns/billing/*".into()],
            ..MtlsAllow::default()
        },
        grants: vec![],
    };
    let v = MtlsVerifier::new(&def, &pki_dir()).unwrap();
    let hash = "ab".repeat(32);
    let check = |uri: &str| {
        let mut headers = Headers::new();
        headers.append("x-forwarded-client-cert", format!("Hash={hash};URI={uri}"));
        v.verify(
            &Request {
                method: "GET".into(),
                path: "/".into(),
                headers,
                ..Request::default()
            },
            now(),
        )
    };
    let ok = "spiffe://portcullis.test/ns/billing/sa/api";
    assert_allowed(&check(ok), ok);
    for bad in [
        "spiffe://portcullis.test/ns/billing/../admin",
        "spiffe://PORTCULLIS.TEST/ns/billing/sa/api",
        "spiffe://portcullis.test/ns/billing/sa/api/",
        "spiffe://portcullis.test.evil.com/ns/billing/sa/api",
    ] {
        assert_not_allowed(&check(bad));
    }
}
