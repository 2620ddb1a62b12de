//! mTLS identity from gateway headers: the TLS handshake happened at the
//! gateway, which forwards the client certificate in a header it controls
//! (it must strip any client-supplied copy).
//!
//! Two sources: Envoy's `x-forwarded-client-cert` ([`xfcc`], only the last
//! element, the one the trusted proxy appended, is read) and a URL-escaped
//! PEM header ([`pem`]; nginx, Traefik, Caddy), optionally gated by a
//! verification-status header that must say exactly `SUCCESS`.
//!
//! Then: validity dates at the decision time (always), the chain against
//! `ca_file` when configured ([`chain`]), identity ([`cert`], [`spiffe`])
//! and the allowlist ([`allow`]). Outcomes: header absent → absent;
//! malformed → `credential_invalid`; outside its validity window →
//! `credential_expired`; well-formed but not allowed → `certificate_not_allowed`.
//!
//! XFCC without `Cert` (Envoy's default forwards only `By` and `Hash`, plus
//! `Subject`/`URI`/`DNS` when configured): with a `ca_file` this is refused,
//! since there is nothing to verify; without one, the trusted proxy vouches
//! for `Hash` and `URI`, so fingerprint and SPIFFE allowlists apply, but the
//! subject allowlist does not (the proxy's subject string is OpenSSL's, not
//! ours) and no dates can be checked (the proxy checked them in the handshake).

pub mod allow;
pub mod cert;
pub mod chain;
pub mod pem;
pub mod spiffe;
pub mod testing;
pub mod xfcc;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use self::allow::{Allowlist, Presented};
use self::cert::ClientCert;
use self::chain::{ChainError, TrustStore};
use self::spiffe::SpiffeId;
use crate::credential::{CredentialType, Identity, Outcome};
use crate::decision::Reason;
use crate::policy::{MtlsDef, MtlsSource};
use crate::request::{HeaderLookup, Request};

/// The XFCC header name.
pub const XFCC_HEADER: &str = "x-forwarded-client-cert";
/// Bytes of a PEM header accepted before decoding.
pub const MAX_PEM_HEADER_BYTES: usize = 16 * 1024;
/// What a verification-status header must say, exactly.
pub const VERIFY_SUCCESS: &str = "SUCCESS";

enum Source {
    Xfcc,
    PemHeader {
        header: String,
        verify_header: Option<String>,
    },
}

pub struct MtlsVerifier {
    source: Source,
    trust: Option<TrustStore>,
    allow: Allowlist,
    grants: Arc<[String]>,
}

impl fmt::Debug for MtlsVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Xfcc => XFCC_HEADER,
            Source::PemHeader { header, .. } => header,
        };
        f.debug_struct("MtlsVerifier")
            .field("source", &source)
            .field("ca_anchors", &self.trust.as_ref().map(TrustStore::len))
            .field("allow", &self.allow)
            .finish()
    }
}

/// A refusal: the reason code and a fixed detail for traces.
struct Deny(Reason, &'static str);

fn invalid(why: &'static str) -> Deny {
    Deny(Reason::CredentialInvalid, why)
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

impl MtlsVerifier {
    /// The request headers this credential reads (lowercase): the
    /// certificate header and, if configured, the verification-status
    /// header. The server reads them only from trusted proxies.
    pub fn header_names(&self) -> Vec<&str> {
        match &self.source {
            Source::Xfcc => vec![XFCC_HEADER],
            Source::PemHeader {
                header,
                verify_header,
            } => {
                let mut v = vec![header.as_str()];
                v.extend(verify_header.as_deref());
                v
            }
        }
    }

    /// Validates the allowlist and reads `ca_file` (relative to `base_dir`) once.
    pub fn new(def: &MtlsDef, base_dir: &Path) -> Result<Self, String> {
        let source = match &def.source {
            MtlsSource::Xfcc => Source::Xfcc,
            MtlsSource::PemHeader {
                header,
                verify_header,
            } => Source::PemHeader {
                header: header.to_ascii_lowercase(),
                verify_header: verify_header.as_ref().map(|h| h.to_ascii_lowercase()),
            },
        };
        let trust = match &def.ca_file {
            None => None,
            Some(p) => Some(TrustStore::load(&base_dir.join(&p.value))?),
        };
        Ok(Self {
            source,
            trust,
            allow: Allowlist::new(&def.allow)?,
            grants: def.grants.clone().into(),
        })
    }

    pub fn verify(&self, req: &Request, now: SystemTime) -> Outcome {
        let presented = match &self.source {
            Source::Xfcc => self.read_xfcc(req, now),
            Source::PemHeader {
                header,
                verify_header,
            } => self.read_pem_header(req, header, verify_header.as_deref(), now),
        };
        match presented {
            Err(Deny(reason, why)) => Outcome::Invalid(reason, why),
            Ok(None) => Outcome::Absent,
            Ok(Some(p)) if self.allow.permits(&p) => Outcome::Valid(Identity {
                kind: CredentialType::Mtls,
                principal: p.principal().into(),
                consumer: None,
                scopes: Some(Arc::clone(&self.grants)),
                fingerprint: None,
                rate_override: None,
            }),
            Ok(Some(_)) => Outcome::Invalid(
                Reason::CertificateNotAllowed,
                "client certificate is not on the allowlist",
            ),
        }
    }

    fn read_xfcc(&self, req: &Request, now: SystemTime) -> Result<Option<Presented>, Deny> {
        let value = match req.headers.get_one(XFCC_HEADER) {
            HeaderLookup::Absent => return Ok(None),
            HeaderLookup::Repeated => {
                return Err(Deny(
                    Reason::AmbiguousCredential,
                    "x-forwarded-client-cert given more than once",
                ))
            }
            HeaderLookup::NotUtf8 => return Err(invalid("x-forwarded-client-cert is not utf-8")),
            HeaderLookup::One(v) => v,
        };
        if value.trim_matches(' ').is_empty() {
            return Ok(None);
        }
        let el =
            xfcc::parse_last(value).map_err(|_| invalid("malformed x-forwarded-client-cert"))?;
        let chain = match &el.chain {
            Some(c) => decode_certs(c)?,
            None => Vec::new(),
        };
        let leaf = match &el.cert {
            Some(c) => {
                let mut one = decode_certs(c)?;
                if one.len() != 1 {
                    return Err(invalid("xfcc Cert holds more than one certificate"));
                }
                one.pop()
            }
            None => chain.first().cloned(),
        };
        let Some(leaf) = leaf else {
            return self.vouched(&el).map(Some);
        };
        let cert =
            ClientCert::parse(leaf).map_err(|_| invalid("xfcc Cert is not a certificate"))?;
        if let Some(hash) = &el.hash {
            let hash = allow::normalize_fingerprint(hash)
                .map_err(|_| invalid("xfcc Hash is not a sha-256 hex digest"))?;
            if hash != cert.fingerprint {
                return Err(invalid("xfcc Hash does not match the Cert"));
            }
        }
        if el.uris.iter().any(|u| !cert.uris.contains(u)) {
            return Err(invalid("xfcc URI is not a URI SAN of the Cert"));
        }
        let intermediates: Vec<Vec<u8>> = chain.into_iter().filter(|d| *d != cert.der).collect();
        self.check(cert, &intermediates, now).map(Some)
    }

    /// Identity from an XFCC element without a certificate: only what the
    /// trusted proxy vouches for (`Hash`, a single `URI`), and only without `ca_file`.
    fn vouched(&self, el: &xfcc::Element) -> Result<Presented, Deny> {
        if self.trust.is_some() {
            return Err(invalid(
                "xfcc element has no Cert or Chain, which ca_file verification requires",
            ));
        }
        let hash = el
            .hash
            .as_deref()
            .ok_or_else(|| invalid("xfcc element has neither Cert nor Hash"))?;
        let fingerprint = allow::normalize_fingerprint(hash)
            .map_err(|_| invalid("xfcc Hash is not a sha-256 hex digest"))?;
        Ok(Presented {
            spiffe: single_spiffe(&el.uris),
            subject: None,
            fingerprint,
        })
    }

    fn read_pem_header(
        &self,
        req: &Request,
        header: &str,
        verify_header: Option<&str>,
        now: SystemTime,
    ) -> Result<Option<Presented>, Deny> {
        let value = match req.headers.get_one(header) {
            HeaderLookup::Absent => return Ok(None),
            HeaderLookup::Repeated => {
                return Err(Deny(
                    Reason::AmbiguousCredential,
                    "client certificate header given more than once",
                ))
            }
            HeaderLookup::NotUtf8 => return Err(invalid("client certificate header is not utf-8")),
            HeaderLookup::One(v) => v,
        };
        // nginx sends an empty `$ssl_client_escaped_cert` when no certificate was presented.
        if value.trim_matches(' ').is_empty() {
            return Ok(None);
        }
        if let Some(vh) = verify_header {
            match req.headers.get_one(vh) {
                HeaderLookup::One(VERIFY_SUCCESS) => {}
                HeaderLookup::Repeated => {
                    return Err(Deny(
                        Reason::AmbiguousCredential,
                        "certificate verification header given more than once",
                    ))
                }
                _ => {
                    return Err(invalid(
                        "certificate verification header does not say SUCCESS",
                    ))
                }
            }
        }
        if value.len() > MAX_PEM_HEADER_BYTES {
            return Err(invalid("client certificate header is too long"));
        }
        if value.bytes().any(|b| b.is_ascii_control()) {
            return Err(invalid(
                "client certificate header holds a control character",
            ));
        }
        let mut certs = decode_certs(value)?;
        if certs.len() != 1 {
            return Err(invalid(
                "client certificate header must hold exactly one certificate",
            ));
        }
        let der = certs.pop().unwrap_or_default();
        let cert = ClientCert::parse(der)
            .map_err(|_| invalid("client certificate header is not a certificate"))?;
        self.check(cert, &[], now).map(Some)
    }

    /// Dates, then the chain when `ca_file` is set, then the identity.
    fn check(
        &self,
        cert: ClientCert,
        intermediates: &[Vec<u8>],
        now: SystemTime,
    ) -> Result<Presented, Deny> {
        let t = unix(now);
        if t < cert.not_before {
            return Err(Deny(
                Reason::CredentialExpired,
                "client certificate is not valid yet",
            ));
        }
        if t > cert.not_after {
            return Err(Deny(
                Reason::CredentialExpired,
                "client certificate expired",
            ));
        }
        if let Some(trust) = &self.trust {
            trust
                .verify(&cert.der, intermediates, now)
                .map_err(|e| match e {
                    ChainError::Expired => Deny(
                        Reason::CredentialExpired,
                        "a certificate of the chain is expired or not valid yet",
                    ),
                    ChainError::Invalid => {
                        invalid("client certificate does not verify against ca_file")
                    }
                })?;
        }
        Ok(Presented {
            spiffe: single_spiffe(&cert.uris),
            subject: Some(cert.subject),
            fingerprint: cert.fingerprint,
        })
    }
}

/// An X.509 SVID has exactly one URI SAN: several, or one that is not a
/// valid SPIFFE ID, is no SPIFFE identity at all.
fn single_spiffe(uris: &[String]) -> Option<SpiffeId> {
    match uris {
        [one] => SpiffeId::parse(one).ok(),
        _ => None,
    }
}

fn decode_certs(escaped: &str) -> Result<Vec<Vec<u8>>, Deny> {
    let text = pem::percent_decode(escaped)
        .map_err(|_| invalid("forwarded certificate is not valid percent-encoding"))?;
    pem::certificates(&text).map_err(|_| invalid("forwarded certificate is not a pem certificate"))
}
