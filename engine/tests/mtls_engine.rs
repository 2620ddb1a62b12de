//! mTLS and Basic end to end: YAML policy → loader → compiled engine →
//! decision, with the checked-in PKI and htpasswd fixtures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use portcullis_engine::credential::apikey::MemoryIndex;
use portcullis_engine::credential::mtls::testing::{cert_uris, escaped_pem, xfcc_header};
use portcullis_engine::credential::KeyStore;
use portcullis_engine::{policy, Engine, Headers, Reason, Request};

const SPIFFE_API: &str = "spiffe://portcullis.test/ns/billing/sa/api";

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn pki(name: &str) -> String {
    std::fs::read_to_string(data().join("pki").join(name)).unwrap()
}

/// The policy is placed in `tests/data`, so `pki/...` and `htpasswd/...` resolve.
const POLICY: &str = r#"
version: 1
credentials:
  mesh:
    type: mtls
    in: xfcc
    ca_file: pki/root-ca.pem
    allow:
      spiffe_ids: ["spiffe://portcullis.test/ns/billing/*"]
    grants: [internal:call]
  edge:
    type: mtls
    in: "pem_header:X-SSL-Client-Cert"
    verify_header: X-SSL-Client-Verify
    ca_file: pki/intermediate-ca.pem
    allow:
      subjects: ["CN=client.portcullis.test,O=Portcullis Test"]
    grants: [edge:call]
  ops:
    type: basic
    htpasswd_file: htpasswd/users.htpasswd
    realm: ops
    grants: [ops:read]
routes:
  - name: internal
    match: {path: "/internal/**"}
    require: mesh
    scopes: {all_of: [internal:call]}
  - name: edge
    match: {path: "/edge/**"}
    require: edge
  - name: ops
    match: {path: "/ops/**"}
    require: ops
    scopes: {all_of: [ops:read]}
"#;

fn engine() -> Engine {
    let p = policy::load_str(&data().join("policy.yaml"), POLICY).unwrap();
    Engine::new(&p, Arc::new(MemoryIndex::new()) as Arc<dyn KeyStore>).unwrap()
}

fn req(path: &str, headers: &[(&str, &str)]) -> Request {
    let mut h = Headers::new();
    for (k, v) in headers {
        h.append(k, *v);
    }
    Request {
        method: "GET".into(),
        path: path.into(),
        headers: h,
        ..Request::default()
    }
}

#[test]
fn xfcc_with_chain_is_allowed_and_names_the_spiffe_principal() {
    let e = engine();
    assert_eq!(cert_uris(&pki("spiffe.pem")), [SPIFFE_API]);
    assert!(cert_uris(&pki("client.pem")).is_empty());
    let h = format!(
        "{};Chain=\"{}\"",
        xfcc_header(&pki("spiffe.pem"), Some(SPIFFE_API)),
        escaped_pem(&pki("spiffe-chain.pem"))
    );
    let d = e.decide(&req("/internal/x", &[("x-forwarded-client-cert", &h)]));
    assert!(d.allow, "{d:?}");
    assert_eq!(&*d.principal.unwrap().id, SPIFFE_API);

    let rogue = pki("rogue-client.pem");
    let h = format!(
        "{};Chain=\"{}\"",
        xfcc_header(&rogue, Some(SPIFFE_API)),
        escaped_pem(&format!("{rogue}{}", pki("rogue-ca.pem")))
    );
    let d = e.decide(&req("/internal/x", &[("x-forwarded-client-cert", &h)]));
    assert_eq!((d.status, d.reason), (401, Reason::CredentialInvalid));

    let h = format!(
        "{};Chain=\"{}\"",
        xfcc_header(&pki("client.pem"), None),
        escaped_pem(&pki("client-chain.pem"))
    );
    let d = e.decide(&req("/internal/x", &[("x-forwarded-client-cert", &h)]));
    assert_eq!((d.status, d.reason), (403, Reason::CertificateNotAllowed));

    let d = e.decide(&req("/internal/x", &[]));
    assert_eq!((d.status, d.reason), (401, Reason::CredentialMissing));
}

#[test]
fn nginx_pem_header_needs_success() {
    let e = engine();
    let cert = escaped_pem(&pki("client.pem"));
    let ok = req(
        "/edge/x",
        &[
            ("X-SSL-Client-Cert", &cert),
            ("X-SSL-Client-Verify", "SUCCESS"),
        ],
    );
    let d = e.decide(&ok);
    assert!(d.allow, "{d:?}");
    assert_eq!(
        &*d.principal.unwrap().id,
        "CN=client.portcullis.test,O=Portcullis Test"
    );
    let failed = req(
        "/edge/x",
        &[
            ("X-SSL-Client-Cert", &cert),
            ("X-SSL-Client-Verify", "FAILED:certificate has expired"),
        ],
    );
    assert_eq!(e.decide(&failed).reason, Reason::CredentialInvalid);
    let expired = req(
        "/edge/x",
        &[
            ("X-SSL-Client-Cert", &escaped_pem(&pki("expired.pem"))),
            ("X-SSL-Client-Verify", "SUCCESS"),
        ],
    );
    assert_eq!(e.decide(&expired).reason, Reason::CredentialExpired);
}

#[test]
fn basic_is_allowed_with_the_right_password_and_challenged_otherwise() {
    let e = engine();
    let auth = |user: &str, pw: &str| {
        let v = format!("Basic {}", STANDARD.encode(format!("{user}:{pw}")));
        req("/ops/x", &[("authorization", &v)])
    };
    let d = e.decide(&auth("dave", "dave-pw"));
    assert!(d.allow, "{d:?}");
    assert_eq!(&*d.principal.unwrap().id, "dave");
    for d in [
        e.decide(&auth("dave", "nope")),
        e.decide(&auth("nobody", "nope")),
    ] {
        assert_eq!((d.status, d.reason), (401, Reason::CredentialInvalid));
        let challenge = d
            .headers
            .iter()
            .find(|(k, _)| &**k == "www-authenticate")
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        assert!(challenge.contains("Basic realm=\"ops\""), "{challenge}");
    }
}
