//! mTLS from gateway headers, through the public verifier API: one test per
//! attack class of SECURITY.md "mTLS identity forwarded by a gateway", plus
//! chain verification, validity and allowlist behaviour.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use portcullis_engine::credential::mtls::testing::{escaped_pem, quote, xfcc_header};
use portcullis_engine::credential::mtls::{cert::ClientCert, pem, MtlsVerifier};
use portcullis_engine::credential::{CredentialType, Outcome};
use portcullis_engine::policy::{MtlsAllow, MtlsDef, MtlsSource, Span, Spanned};
use portcullis_engine::{Headers, Reason, Request};

const SPIFFE_API: &str = "spiffe://portcullis.test/ns/billing/sa/api";
const CLIENT_SUBJECT: &str = "CN=client.portcullis.test,O=Portcullis Test";

fn pki_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pki")
}

fn pki(name: &str) -> String {
    std::fs::read_to_string(pki_dir().join(name)).unwrap()
}

/// 2026-06-01T00:00:00Z, inside every test certificate's window but the expired one's.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_780_272_000)
}

fn der(pem_text: &str) -> Vec<u8> {
    pem::certificates(pem_text).unwrap().remove(0)
}

fn fingerprint(pem_text: &str) -> String {
    ClientCert::parse(der(pem_text)).unwrap().fingerprint
}

fn allow_spiffe(ids: &[&str]) -> MtlsAllow {
    MtlsAllow {
        spiffe_ids: ids.iter().map(|s| s.to_string()).collect(),
        ..MtlsAllow::default()
    }
}

fn allow_subjects(s: &[&str]) -> MtlsAllow {
    MtlsAllow {
        subjects: s.iter().map(|s| s.to_string()).collect(),
        ..MtlsAllow::default()
    }
}

fn allow_fingerprints(f: &[&str]) -> MtlsAllow {
    MtlsAllow {
        fingerprints_sha256: f.iter().map(|s| s.to_string()).collect(),
        ..MtlsAllow::default()
    }
}

fn def(source: MtlsSource, ca_file: Option<&str>, allow: MtlsAllow) -> MtlsDef {
    MtlsDef {
        source,
        ca_file: ca_file.map(|f| Spanned::new(PathBuf::from(f), Span::default())),
        allow,
        grants: vec!["internal:call".to_string()],
    }
}

fn xfcc(ca_file: Option<&str>, allow: MtlsAllow) -> MtlsVerifier {
    MtlsVerifier::new(&def(MtlsSource::Xfcc, ca_file, allow), &pki_dir()).unwrap()
}

fn nginx(ca_file: Option<&str>, allow: MtlsAllow, verify: bool) -> MtlsVerifier {
    let source = MtlsSource::PemHeader {
        header: "ssl-client-cert".to_string(),
        verify_header: verify.then(|| "ssl-client-verify".to_string()),
    };
    MtlsVerifier::new(&def(source, ca_file, allow), &pki_dir()).unwrap()
}

fn req(headers: &[(&str, &str)]) -> Request {
    let mut h = Headers::new();
    for (k, v) in headers {
        h.append(k, *v);
    }
    Request {
        method: "GET".into(),
        path: "/internal/x".into(),
        headers: h,
        ..Request::default()
    }
}

fn with_xfcc(value: &str) -> Request {
    req(&[("x-forwarded-client-cert", value)])
}

#[track_caller]
fn assert_valid(o: Outcome, principal: &str) {
    match o {
        Outcome::Valid(id) => {
            assert_eq!(id.kind, CredentialType::Mtls);
            assert_eq!(&*id.principal, principal);
            assert_eq!(
                id.scopes.as_deref(),
                Some(&["internal:call".to_string()][..])
            );
        }
        other => panic!("expected valid `{principal}`, got {other:?}"),
    }
}

#[track_caller]
fn assert_denied(o: Outcome, reason: Reason) {
    match o {
        Outcome::Invalid(r, _) => assert_eq!(r, reason, "{o:?}"),
        other => panic!("expected {reason:?}, got {other:?}"),
    }
}

// ---------------------------------------------------------------- XFCC

#[test]
fn xfcc_valid_spiffe_certificate_is_allowed() {
    let v = xfcc(
        None,
        allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]),
    );
    let h = xfcc_header(&pki("spiffe.pem"), Some(SPIFFE_API));
    assert_valid(v.verify(&with_xfcc(&h), now()), SPIFFE_API);
}

#[test]
fn xfcc_absent_or_empty_header_is_absent() {
    let v = xfcc(None, allow_spiffe(&["spiffe://portcullis.test/*"]));
    assert_eq!(v.verify(&req(&[]), now()), Outcome::Absent);
    assert_eq!(v.verify(&with_xfcc(""), now()), Outcome::Absent);
}

#[test]
fn xfcc_only_the_last_element_is_trusted() {
    let v = xfcc(
        None,
        allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]),
    );
    let allowed = xfcc_header(&pki("spiffe.pem"), Some(SPIFFE_API));
    let other = xfcc_header(&pki("client.pem"), None);
    // A client-supplied element (forwarded by APPEND_FORWARD) comes first: ignored.
    let forged = format!("{allowed},{other}");
    assert_denied(
        v.verify(&with_xfcc(&forged), now()),
        Reason::CertificateNotAllowed,
    );
    // The proxy's own element is last: used.
    let real = format!("{other},{allowed}");
    assert_valid(v.verify(&with_xfcc(&real), now()), SPIFFE_API);
    // Spaces after the element separator are tolerated.
    let spaced = format!("{other}, {allowed}");
    assert_valid(v.verify(&with_xfcc(&spaced), now()), SPIFFE_API);
}

#[test]
fn xfcc_keys_are_case_insensitive() {
    let v = xfcc(
        None,
        allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]),
    );
    let spiffe = pki("spiffe.pem");
    let h = format!(
        "by=spiffe://portcullis.test/gw;HASH={};cErT=\"{}\";uri={SPIFFE_API}",
        fingerprint(&spiffe),
        escaped_pem(&spiffe)
    );
    assert_valid(v.verify(&with_xfcc(&h), now()), SPIFFE_API);
}

#[test]
fn xfcc_quoted_subject_never_produces_a_uri() {
    let allow = allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]);
    let client = pki("client.pem");
    let fp = fingerprint(&client);
    let injected = format!("CN=x;URI={SPIFFE_API}");
    let comma = format!("CN=x,By=y;URI={SPIFFE_API}");
    // Without Cert: the only identity is Hash and URI; the Subject text must stay text.
    let v = xfcc(None, allow.clone());
    for subject in [&injected, &comma] {
        let h = format!("By=spiffe://portcullis.test/gw;Hash={fp};Subject=\"{subject}\";URI=");
        assert_denied(
            v.verify(&with_xfcc(&h), now()),
            Reason::CertificateNotAllowed,
        );
    }
    // With Cert: the certificate (no URI SAN) decides, whatever the Subject says.
    let h = format!(
        "Hash={fp};Cert=\"{}\";Subject=\"{}\"",
        escaped_pem(&client),
        quote(&injected)
    );
    assert_denied(
        xfcc(None, allow).verify(&with_xfcc(&h), now()),
        Reason::CertificateNotAllowed,
    );
}

#[test]
fn xfcc_unbalanced_quotes_deny() {
    let v = xfcc(
        None,
        allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]),
    );
    let good = xfcc_header(&pki("spiffe.pem"), Some(SPIFFE_API));
    for h in [
        // An open quote in a client-supplied element would swallow the proxy's element.
        format!("Subject=\"CN=evil,{good}"),
        format!("{good};Subject=\"CN=x"),
        format!("{good};Subject=\"CN=x\\\""),
        format!("{good};DNS=a\"b"),
        format!("{good};Subject=\"a\"b"),
    ] {
        assert_denied(v.verify(&with_xfcc(&h), now()), Reason::CredentialInvalid);
    }
}

#[test]
fn xfcc_hash_that_does_not_match_cert_denies() {
    let v = xfcc(
        None,
        allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]),
    );
    let spiffe = pki("spiffe.pem");
    let wrong = fingerprint(&pki("client.pem"));
    let h = format!(
        "Hash={wrong};Cert=\"{}\";URI={SPIFFE_API}",
        escaped_pem(&spiffe)
    );
    assert_denied(v.verify(&with_xfcc(&h), now()), Reason::CredentialInvalid);
    // A Hash that is no SHA-256 (a SHA-1, say) is malformed.
    let h = format!("Hash={};Cert=\"{}\"", "ab".repeat(20), escaped_pem(&spiffe));
    assert_denied(v.verify(&with_xfcc(&h), now()), Reason::CredentialInvalid);
    // The right Hash in upper case or with colons is the same digest.
    let fp = fingerprint(&spiffe).to_uppercase();
    let h = format!("Hash={fp};Cert=\"{}\"", escaped_pem(&spiffe));
    assert_valid(v.verify(&with_xfcc(&h), now()), SPIFFE_API);
}

#[test]
fn xfcc_control_characters_deny() {
    let v = xfcc(
        None,
        allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]),
    );
    let good = xfcc_header(&pki("spiffe.pem"), Some(SPIFFE_API));
    assert_valid(v.verify(&with_xfcc(&good), now()), SPIFFE_API);
    let cut = good.find(";Cert=").unwrap();
    for c in ["\r", "\n", "\r\n", "\0", "\t", "\x7f"] {
        let mut inside = good.clone();
        inside.insert_str(cut, c);
        assert_denied(
            v.verify(&with_xfcc(&inside), now()),
            Reason::CredentialInvalid,
        );
        let at_end = format!("{good}{c}");
        assert_denied(
            v.verify(&with_xfcc(&at_end), now()),
            Reason::CredentialInvalid,
        );
        // Inside a quoted value too.
        let quoted = good.replacen("Subject=\"", &format!("Subject=\"{c}"), 1);
        assert_denied(
            v.verify(&with_xfcc(&quoted), now()),
            Reason::CredentialInvalid,
        );
    }
}

#[test]
fn xfcc_cert_is_percent_decoded_never_form_decoded() {
    let v = xfcc(
        None,
        allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]),
    );
    let spiffe = pki("spiffe.pem");
    assert!(spiffe.contains('+'), "regenerate until the PEM holds a `+`");
    // Only newlines and spaces escaped: `+`, `/` and `=` travel raw, and must stay so.
    let minimal = spiffe.replace('\n', "%0A").replace(' ', "%20");
    let h = format!("Cert=\"{minimal}\";URI={SPIFFE_API}");
    assert_valid(v.verify(&with_xfcc(&h), now()), SPIFFE_API);
    // Form encoding writes spaces as `+`: percent-decoding keeps them, so the PEM is refused.
    let form = spiffe.replace('\n', "%0A").replace(' ', "+");
    let h = format!("Cert=\"{form}\"");
    assert_denied(v.verify(&with_xfcc(&h), now()), Reason::CredentialInvalid);
    // A `%` that is not an escape is malformed, not passed through.
    let h = format!("Cert=\"{}%zz\"", escaped_pem(&spiffe));
    assert_denied(v.verify(&with_xfcc(&h), now()), Reason::CredentialInvalid);
}

#[test]
fn xfcc_repeated_header_is_ambiguous() {
    let v = xfcc(
        None,
        allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]),
    );
    let h = xfcc_header(&pki("spiffe.pem"), Some(SPIFFE_API));
    let r = req(&[
        ("x-forwarded-client-cert", &h),
        ("X-Forwarded-Client-Cert", &h),
    ]);
    assert_denied(v.verify(&r, now()), Reason::AmbiguousCredential);
    let mut bad = req(&[]);
    bad.headers.append_invalid("x-forwarded-client-cert");
    assert_denied(v.verify(&bad, now()), Reason::CredentialInvalid);
}

#[test]
fn xfcc_is_read_only_when_configured() {
    // A pem_header credential never looks at XFCC (and the reverse).
    let h = xfcc_header(&pki("spiffe.pem"), Some(SPIFFE_API));
    let allow = allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]);
    assert_eq!(
        nginx(None, allow.clone(), false).verify(&with_xfcc(&h), now()),
        Outcome::Absent
    );
    let pem_req = req(&[("ssl-client-cert", &escaped_pem(&pki("spiffe.pem")))]);
    assert_eq!(xfcc(None, allow).verify(&pem_req, now()), Outcome::Absent);
}

#[test]
fn xfcc_uri_not_carried_by_the_cert_denies() {
    let v = xfcc(
        None,
        allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]),
    );
    // client.pem has no URI SAN; an element claiming one is inconsistent.
    let h = xfcc_header(&pki("client.pem"), Some(SPIFFE_API));
    assert_denied(v.verify(&with_xfcc(&h), now()), Reason::CredentialInvalid);
}

#[test]
fn xfcc_unknown_or_repeated_keys_deny() {
    let v = xfcc(
        None,
        allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]),
    );
    let good = xfcc_header(&pki("spiffe.pem"), Some(SPIFFE_API));
    let fp = fingerprint(&pki("spiffe.pem"));
    for h in [
        format!("{good};Role=admin"),
        format!("{good};Hash={fp}"),
        format!("{good};Subject=\"CN=x\""),
        format!("{good};Cert=\"{}\"", escaped_pem(&pki("client.pem"))),
    ] {
        assert_denied(v.verify(&with_xfcc(&h), now()), Reason::CredentialInvalid);
    }
    // Two certificates in `Cert` is not one certificate.
    let h = format!("Cert=\"{}\"", escaped_pem(&pki("spiffe-chain.pem")));
    assert_denied(v.verify(&with_xfcc(&h), now()), Reason::CredentialInvalid);
}

#[test]
fn xfcc_without_cert_uses_only_what_the_proxy_vouches_for() {
    let spiffe = pki("spiffe.pem");
    let fp = fingerprint(&spiffe);
    let by_uri = format!("By=spiffe://portcullis.test/gw;Hash={fp};Subject=\"CN=billing-api,O=Portcullis Test\";URI={SPIFFE_API}");
    // No ca_file: SPIFFE ID from URI, fingerprint from Hash.
    let v = xfcc(
        None,
        allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]),
    );
    assert_valid(v.verify(&with_xfcc(&by_uri), now()), SPIFFE_API);
    let by_hash = format!("By=spiffe://portcullis.test/gw;Hash={fp}");
    let v = xfcc(None, allow_fingerprints(&[&fp]));
    assert_valid(
        v.verify(&with_xfcc(&by_hash), now()),
        &format!("sha256:{fp}"),
    );
    // The subject allowlist needs a certificate: the proxy's Subject string is not matched.
    let v = xfcc(None, allow_subjects(&["CN=billing-api,O=Portcullis Test"]));
    assert_denied(
        v.verify(&with_xfcc(&by_uri), now()),
        Reason::CertificateNotAllowed,
    );
    // Two URIs in the element are no SPIFFE identity.
    let two = format!("Hash={fp};URI={SPIFFE_API};URI=spiffe://portcullis.test/ns/admin/sa/root");
    let v = xfcc(None, allow_spiffe(&["spiffe://portcullis.test/*"]));
    assert_denied(
        v.verify(&with_xfcc(&two), now()),
        Reason::CertificateNotAllowed,
    );
    // With a ca_file there is nothing to verify: refused.
    let v = xfcc(
        Some("root-ca.pem"),
        allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]),
    );
    assert_denied(
        v.verify(&with_xfcc(&by_uri), now()),
        Reason::CredentialInvalid,
    );
    // Neither Cert nor Hash: nothing identifies the certificate.
    let v = xfcc(
        None,
        allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]),
    );
    let h = format!("By=spiffe://portcullis.test/gw;URI={SPIFFE_API}");
    assert_denied(v.verify(&with_xfcc(&h), now()), Reason::CredentialInvalid);
}

#[test]
fn xfcc_chain_supplies_the_intermediate() {
    let v = xfcc(
        Some("root-ca.pem"),
        allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]),
    );
    let leaf = xfcc_header(&pki("spiffe.pem"), Some(SPIFFE_API));
    // Without the intermediate the path cannot be built.
    assert_denied(
        v.verify(&with_xfcc(&leaf), now()),
        Reason::CredentialInvalid,
    );
    let chain = format!("{leaf};Chain=\"{}\"", escaped_pem(&pki("spiffe-chain.pem")));
    assert_valid(v.verify(&with_xfcc(&chain), now()), SPIFFE_API);
    // Chain alone: its first certificate is the leaf.
    let fp = fingerprint(&pki("spiffe.pem"));
    let only_chain = format!(
        "Hash={fp};Chain=\"{}\"",
        escaped_pem(&pki("spiffe-chain.pem"))
    );
    assert_valid(v.verify(&with_xfcc(&only_chain), now()), SPIFFE_API);
}

// ---------------------------------------------------------------- PEM header (nginx, Traefik, Caddy)

#[test]
fn pem_header_escaped_cert_is_allowed() {
    let v = nginx(Some("root-ca.pem"), allow_subjects(&[CLIENT_SUBJECT]), true);
    let chain_less = req(&[
        ("ssl-client-cert", &escaped_pem(&pki("client.pem"))),
        ("ssl-client-verify", "SUCCESS"),
    ]);
    // One certificate only: the intermediate must be a trust anchor for a chain check.
    assert_denied(v.verify(&chain_less, now()), Reason::CredentialInvalid);
    let v = nginx(
        Some("intermediate-ca.pem"),
        allow_subjects(&[CLIENT_SUBJECT]),
        true,
    );
    assert_valid(v.verify(&chain_less, now()), CLIENT_SUBJECT);
    let v = nginx(None, allow_subjects(&[CLIENT_SUBJECT]), true);
    assert_valid(v.verify(&chain_less, now()), CLIENT_SUBJECT);
}

#[test]
fn pem_header_verify_header_must_say_exactly_success() {
    let v = nginx(None, allow_subjects(&[CLIENT_SUBJECT]), true);
    let cert = escaped_pem(&pki("client.pem"));
    for status in [
        "NONE",
        "FAILED:certificate has expired",
        "FAILED:unable to verify the first certificate",
        "success",
        " SUCCESS",
        "SUCCESS ",
        "SUCCESS,SUCCESS",
        "",
    ] {
        let r = req(&[("ssl-client-cert", &cert), ("ssl-client-verify", status)]);
        assert_denied(v.verify(&r, now()), Reason::CredentialInvalid);
    }
    let absent = req(&[("ssl-client-cert", &cert)]);
    assert_denied(v.verify(&absent, now()), Reason::CredentialInvalid);
    let twice = req(&[
        ("ssl-client-cert", &cert),
        ("ssl-client-verify", "SUCCESS"),
        ("ssl-client-verify", "SUCCESS"),
    ]);
    assert_denied(v.verify(&twice, now()), Reason::AmbiguousCredential);
    let ok = req(&[("ssl-client-cert", &cert), ("ssl-client-verify", "SUCCESS")]);
    assert_valid(v.verify(&ok, now()), CLIENT_SUBJECT);
}

#[test]
fn pem_header_empty_is_absent() {
    // nginx with `ssl_verify_client optional` and no client certificate.
    let v = nginx(None, allow_subjects(&[CLIENT_SUBJECT]), true);
    let r = req(&[("ssl-client-cert", ""), ("ssl-client-verify", "NONE")]);
    assert_eq!(v.verify(&r, now()), Outcome::Absent);
}

#[test]
fn pem_header_holds_exactly_one_certificate() {
    let v = nginx(None, allow_subjects(&[CLIENT_SUBJECT]), false);
    let client = pki("client.pem");
    let b64 = base64::engine::general_purpose::STANDARD.encode(der(&client));
    let inter = base64::engine::general_purpose::STANDARD.encode(der(&pki("intermediate-ca.pem")));
    for value in [
        escaped_pem(&pki("client-chain.pem")),
        escaped_pem(&format!("subject=CN=x\n{client}")),
        escaped_pem(&format!("{client}trailing")),
        escaped_pem(&client.replace("CERTIFICATE", "TRUSTED CERTIFICATE")),
        format!("{b64},{inter}"),
        "not a certificate".to_string(),
        escaped_pem("-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n"),
    ] {
        let r = req(&[("ssl-client-cert", &value)]);
        assert_denied(v.verify(&r, now()), Reason::CredentialInvalid);
    }
    let twice = req(&[
        ("ssl-client-cert", &escaped_pem(&client)),
        ("ssl-client-cert", &escaped_pem(&client)),
    ]);
    assert_denied(v.verify(&twice, now()), Reason::AmbiguousCredential);
}

#[test]
fn pem_header_accepts_bare_base64_der() {
    // Traefik (`passTLSClientCert`, URL-escaped, delimiters removed) and Caddy
    // (`certificate_der_base64`, raw): `+` must survive either way.
    let v = nginx(None, allow_subjects(&[CLIENT_SUBJECT]), false);
    let b64 = base64::engine::general_purpose::STANDARD.encode(der(&pki("client.pem")));
    let escaped = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    for value in [&b64, &escaped] {
        let r = req(&[("ssl-client-cert", value)]);
        assert_valid(v.verify(&r, now()), CLIENT_SUBJECT);
    }
    if b64.contains('+') {
        let spaced = b64.replace('+', " ");
        let r = req(&[("ssl-client-cert", &spaced)]);
        assert_denied(v.verify(&r, now()), Reason::CredentialInvalid);
    }
}

// ---------------------------------------------------------------- identity and allowlists

#[test]
fn fingerprint_allowlist_is_sha256_of_the_der() {
    let client = pki("client.pem");
    let fp = fingerprint(&client);
    let colons: Vec<String> = fp
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8(c.to_vec()).unwrap().to_uppercase())
        .collect();
    let v = nginx(None, allow_fingerprints(&[&colons.join(":")]), false);
    let r = req(&[("ssl-client-cert", &escaped_pem(&client))]);
    assert_valid(v.verify(&r, now()), CLIENT_SUBJECT);
    // Any other certificate is not this fingerprint.
    let other = req(&[("ssl-client-cert", &escaped_pem(&pki("spiffe.pem")))]);
    assert_denied(v.verify(&other, now()), Reason::CertificateNotAllowed);
    // nginx's `$ssl_client_fingerprint` is SHA-1: refused at load, with a hint.
    let sha1 = "a".repeat(40);
    let err = MtlsVerifier::new(
        &def(MtlsSource::Xfcc, None, allow_fingerprints(&[&sha1])),
        &pki_dir(),
    )
    .unwrap_err();
    assert!(err.contains("sha-1"), "{err}");
}

#[test]
fn subject_allowlist_is_exact_rfc4514() {
    let r = req(&[("ssl-client-cert", &escaped_pem(&pki("client.pem")))]);
    for near in [
        "O=Portcullis Test,CN=client.portcullis.test",
        "CN=client.portcullis.test, O=Portcullis Test",
        "cn=client.portcullis.test,o=portcullis test",
        "CN=client.portcullis.test",
        "/O=Portcullis Test/CN=client.portcullis.test",
    ] {
        let v = nginx(None, allow_subjects(&[near]), false);
        assert_denied(v.verify(&r, now()), Reason::CertificateNotAllowed);
    }
    let v = nginx(None, allow_subjects(&[CLIENT_SUBJECT]), false);
    assert_valid(v.verify(&r, now()), CLIENT_SUBJECT);
}

#[test]
fn valid_certificate_not_on_the_allowlist_is_not_allowed() {
    let v = xfcc(
        Some("root-ca.pem"),
        allow_spiffe(&["spiffe://portcullis.test/ns/payments/*"]),
    );
    let h = format!(
        "{};Chain=\"{}\"",
        xfcc_header(&pki("spiffe.pem"), Some(SPIFFE_API)),
        escaped_pem(&pki("spiffe-chain.pem"))
    );
    assert_denied(
        v.verify(&with_xfcc(&h), now()),
        Reason::CertificateNotAllowed,
    );
}

#[test]
fn malformed_certificate_is_invalid() {
    let v = xfcc(None, allow_spiffe(&["spiffe://portcullis.test/*"]));
    let client = pki("client.pem");
    let body: String = client.lines().filter(|l| !l.starts_with("-----")).collect();
    let truncated = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        &body[..body.len() - 8]
    );
    let h = format!("Cert=\"{}\"", escaped_pem(&truncated));
    assert_denied(v.verify(&with_xfcc(&h), now()), Reason::CredentialInvalid);
}

// ---------------------------------------------------------------- validity and chains

#[test]
fn expired_certificate_is_credential_expired() {
    let allow = allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]);
    let h = xfcc_header(
        &pki("expired.pem"),
        Some("spiffe://portcullis.test/ns/billing/sa/expired"),
    );
    for ca in [None, Some("root-ca.pem")] {
        assert_denied(
            xfcc(ca, allow.clone()).verify(&with_xfcc(&h), now()),
            Reason::CredentialExpired,
        );
    }
    // And it was fine in its own time: the date check is what refuses it.
    let then = UNIX_EPOCH + Duration::from_secs(963_000_000); // 2000-07-07
    assert_valid(
        xfcc(None, allow).verify(&with_xfcc(&h), then),
        "spiffe://portcullis.test/ns/billing/sa/expired",
    );
}

#[test]
fn not_yet_valid_certificate_is_credential_expired() {
    let v = xfcc(
        None,
        allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]),
    );
    let h = xfcc_header(&pki("spiffe.pem"), Some(SPIFFE_API));
    let before = UNIX_EPOCH + Duration::from_secs(1_717_200_000); // 2024-06-01
    assert_denied(v.verify(&with_xfcc(&h), before), Reason::CredentialExpired);
}

#[test]
fn chain_from_an_unrelated_ca_is_invalid() {
    let allow = allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]);
    // Same subject as our root, same SPIFFE ID as spiffe.pem, another key.
    let rogue = pki("rogue-client.pem");
    let h = format!(
        "{};Chain=\"{}\"",
        xfcc_header(&rogue, Some(SPIFFE_API)),
        escaped_pem(&format!("{rogue}{}", pki("rogue-ca.pem")))
    );
    assert_denied(
        xfcc(Some("root-ca.pem"), allow.clone()).verify(&with_xfcc(&h), now()),
        Reason::CredentialInvalid,
    );
    // Without ca_file the gateway's verification is all there is (documented).
    assert_valid(xfcc(None, allow).verify(&with_xfcc(&h), now()), SPIFFE_API);
}

#[test]
fn chain_requires_the_client_auth_eku() {
    let uri = "spiffe://portcullis.test/ns/billing/sa/server";
    let h = format!(
        "{};Chain=\"{}\"",
        xfcc_header(&pki("server-eku.pem"), Some(uri)),
        escaped_pem(&pki("intermediate-ca.pem"))
    );
    let allow = allow_spiffe(&["spiffe://portcullis.test/ns/billing/*"]);
    assert_denied(
        xfcc(Some("root-ca.pem"), allow).verify(&with_xfcc(&h), now()),
        Reason::CredentialInvalid,
    );
}

#[test]
fn ca_file_problems_fail_at_load() {
    let allow = allow_spiffe(&["spiffe://portcullis.test/*"]);
    let missing = MtlsVerifier::new(
        &def(MtlsSource::Xfcc, Some("nope.pem"), allow.clone()),
        &pki_dir(),
    )
    .unwrap_err();
    assert!(missing.contains("nope.pem"), "{missing}");
    let empty = MtlsVerifier::new(
        &def(MtlsSource::Xfcc, Some("README.md"), allow.clone()),
        &pki_dir(),
    )
    .unwrap_err();
    assert!(empty.contains("no pem certificate"), "{empty}");
    let key = MtlsVerifier::new(
        &def(MtlsSource::Xfcc, Some("root-ca.key.pem"), allow),
        &pki_dir(),
    )
    .unwrap_err();
    assert!(key.contains("no pem certificate"), "{key}");
}

#[test]
fn empty_allowlist_is_refused_at_load() {
    let err = MtlsVerifier::new(
        &def(MtlsSource::Xfcc, None, MtlsAllow::default()),
        &pki_dir(),
    )
    .unwrap_err();
    assert!(err.contains("allow"), "{err}");
}
