//! Helpers for policy tests (`*_test.yaml` fixtures, integration tests):
//! turn a client certificate into the header a gateway would send.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::cert::ClientCert;
use super::pem;

/// Everything but RFC 3986 unreserved characters is escaped (`+` included).
const ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The gateway identity written in the `By` field.
pub const TEST_PROXY_ID: &str = "spiffe://portcullis.test/gateway";

/// A URL-escaped PEM, as nginx's `$ssl_client_escaped_cert` forwards it.
pub fn escaped_pem(cert_pem: &str) -> String {
    utf8_percent_encode(cert_pem, ESCAPE).to_string()
}

/// A well-formed single-element XFCC value, as Envoy's `SANITIZE_SET` writes
/// it: `By`, `Hash` (SHA-256 of the DER), `Cert`, `Subject` (RFC 4514) and
/// `URI`. `uri` should be the certificate's URI SAN (the verifier refuses an
/// XFCC `URI` the certificate does not carry); `None` writes an empty `URI=`.
/// If `cert_pem` is not one certificate, `Hash` and `Subject` are left out
/// (and the verifier will refuse the value).
pub fn xfcc_header(cert_pem: &str, uri: Option<&str>) -> String {
    let mut out = format!("By={TEST_PROXY_ID}");
    let parsed = pem::certificates(cert_pem)
        .ok()
        .filter(|c| c.len() == 1)
        .and_then(|mut c| c.pop())
        .and_then(|der| ClientCert::parse(der).ok());
    if let Some(c) = &parsed {
        out.push_str(";Hash=");
        out.push_str(&c.fingerprint);
    }
    out.push_str(";Cert=\"");
    out.push_str(&escaped_pem(cert_pem));
    out.push('"');
    if let Some(c) = &parsed {
        out.push_str(";Subject=\"");
        out.push_str(&quote(&c.subject));
        out.push('"');
    }
    out.push_str(";URI=");
    out.push_str(uri.unwrap_or_default());
    out
}

/// Escapes `"` and `\` for an XFCC quoted value.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The URI SANs of a PEM certificate (empty if it does not parse), for
/// callers that want `xfcc_header` to claim the certificate's own URI.
pub fn cert_uris(cert_pem: &str) -> Vec<String> {
    pem::certificates(cert_pem)
        .ok()
        .filter(|c| c.len() == 1)
        .and_then(|mut c| c.pop())
        .and_then(|der| ClientCert::parse(der).ok())
        .map(|c| c.uris)
        .unwrap_or_default()
}
