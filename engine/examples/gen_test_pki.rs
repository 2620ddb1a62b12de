//! Generates the test PKI checked in under `engine/tests/data/pki/`.
//!
//! ```text
//! cargo run -p portcullis-engine --example gen_test_pki -- engine/tests/data/pki
//! ```
//!
//! Every run makes fresh keys, so every certificate (and fingerprint) changes;
//! the tests read the files and compute what they need, so nothing else has
//! to be edited after a regeneration. All keys are ECDSA P-256 and for tests only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// The trust domain of every SPIFFE ID in the test PKI.
const TD: &str = "portcullis.test";

struct Ca {
    cert: Certificate,
    key: KeyPair,
    params: CertificateParams,
}

impl Ca {
    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Portcullis Test");
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(cn: &str, path_len: Option<u8>) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = date_time_ymd(2025, 1, 1);
    p.not_after = date_time_ymd(2046, 1, 1);
    p.use_authority_key_identifier_extension = true;
    p
}

fn root(cn: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let params = ca_params(cn, None);
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key, params }
}

fn intermediate(cn: &str, parent: &Ca) -> Ca {
    let key = KeyPair::generate().unwrap();
    let params = ca_params(cn, Some(0));
    let cert = params.signed_by(&key, &parent.issuer()).unwrap();
    Ca { cert, key, params }
}

struct Leaf<'a> {
    cn: &'a str,
    dns: Option<&'a str>,
    uris: &'a [&'a str],
    eku: ExtendedKeyUsagePurpose,
    from: (i32, u8, u8),
    until: (i32, u8, u8),
}

impl Default for Leaf<'_> {
    fn default() -> Self {
        Self {
            cn: "client.portcullis.test",
            dns: None,
            uris: &[],
            eku: ExtendedKeyUsagePurpose::ClientAuth,
            from: (2025, 1, 1),
            until: (2046, 1, 1),
        }
    }
}

fn leaf(spec: Leaf<'_>, issuer: &Ca) -> Certificate {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(spec.cn);
    if let Some(d) = spec.dns {
        p.subject_alt_names
            .push(SanType::DnsName(d.try_into().unwrap()));
    }
    for u in spec.uris {
        p.subject_alt_names
            .push(SanType::URI((*u).try_into().unwrap()));
    }
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![spec.eku];
    p.not_before = date_time_ymd(spec.from.0, spec.from.1, spec.from.2);
    p.not_after = date_time_ymd(spec.until.0, spec.until.1, spec.until.2);
    p.use_authority_key_identifier_extension = true;
    p.signed_by(&key, &issuer.issuer()).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) {
    let path: PathBuf = dir.join(name);
    fs::write(&path, text).unwrap();
    println!("wrote {}", path.display());
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "engine/tests/data/pki".to_string()),
    );
    fs::create_dir_all(&dir).unwrap();

    let root_ca = root("Portcullis Test Root CA");
    let inter = intermediate("Portcullis Test Intermediate CA", &root_ca);
    // Same subject as the real root, different key: only the key may decide.
    let rogue = root("Portcullis Test Root CA");

    let spiffe_api = format!("spiffe://{TD}/ns/billing/sa/api");
    let spiffe_admin = format!("spiffe://{TD}/ns/admin/sa/root");
    let spiffe_expired = format!("spiffe://{TD}/ns/billing/sa/expired");
    let spiffe_server = format!("spiffe://{TD}/ns/billing/sa/server");

    let client = leaf(
        Leaf {
            dns: Some("client.portcullis.test"),
            ..Leaf::default()
        },
        &inter,
    );
    let spiffe = leaf(
        Leaf {
            cn: "billing-api",
            uris: &[&spiffe_api],
            ..Leaf::default()
        },
        &inter,
    );
    let two_uris = leaf(
        Leaf {
            cn: "two-uris",
            uris: &[&spiffe_api, &spiffe_admin],
            ..Leaf::default()
        },
        &inter,
    );
    let expired = leaf(
        Leaf {
            cn: "expired.portcullis.test",
            uris: &[&spiffe_expired],
            from: (2000, 1, 1),
            until: (2001, 1, 1),
            ..Leaf::default()
        },
        &inter,
    );
    let server_eku = leaf(
        Leaf {
            cn: "server-only.portcullis.test",
            uris: &[&spiffe_server],
            eku: ExtendedKeyUsagePurpose::ServerAuth,
            ..Leaf::default()
        },
        &inter,
    );
    let rogue_client = leaf(
        Leaf {
            cn: "billing-api",
            uris: &[&spiffe_api],
            ..Leaf::default()
        },
        &rogue,
    );

    write(&dir, "root-ca.pem", &root_ca.cert.pem());
    write(&dir, "root-ca.key.pem", &root_ca.key.serialize_pem());
    write(&dir, "intermediate-ca.pem", &inter.cert.pem());
    write(&dir, "intermediate-ca.key.pem", &inter.key.serialize_pem());
    write(&dir, "rogue-ca.pem", &rogue.cert.pem());
    write(&dir, "client.pem", &client.pem());
    write(
        &dir,
        "client-chain.pem",
        &format!("{}{}", client.pem(), inter.cert.pem()),
    );
    write(&dir, "spiffe.pem", &spiffe.pem());
    write(
        &dir,
        "spiffe-chain.pem",
        &format!("{}{}", spiffe.pem(), inter.cert.pem()),
    );
    write(&dir, "two-uris.pem", &two_uris.pem());
    write(&dir, "expired.pem", &expired.pem());
    write(&dir, "server-eku.pem", &server_eku.pem());
    write(&dir, "rogue-client.pem", &rogue_client.pem());
}
