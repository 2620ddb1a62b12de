//! Signing JWTs and presenting client certificates for policy tests.
//! Filled in as the JWT and mTLS credentials land.

use std::path::Path;
use std::time::SystemTime;

use crate::credential::mtls;
use crate::testing::{CertFixture, CertRequest, JwtRequest, JwtSigner};

pub(crate) fn sign_jwt(
    _signer: &JwtSigner,
    _req: &JwtRequest,
    _dir: &Path,
    _now: SystemTime,
) -> Result<String, String> {
    Err("jwt signing in policy tests is not available yet".into())
}

/// The headers a gateway would send for this client certificate: an XFCC
/// element (as Envoy's trusted proxy adds it) or a URL-escaped PEM header.
pub(crate) fn cert_headers(
    f: &CertFixture,
    req: &CertRequest,
    dir: &Path,
) -> Result<Vec<(String, String)>, String> {
    let path = dir.join(&f.cert_file);
    let pem = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    match req.as_.as_deref().unwrap_or("xfcc") {
        "xfcc" => {
            // A file may hold the leaf then its intermediates: the leaf goes in
            // `Cert`, the whole file in `Chain`, as Envoy forwards them.
            const END: &str = "-----END CERTIFICATE-----";
            let leaf = match pem.find(END) {
                Some(i) => pem.get(..i + END.len()).unwrap_or(&pem).to_string() + "\n",
                None => pem.clone(),
            };
            let uri = req
                .uri
                .clone()
                .or_else(|| mtls::testing::cert_uris(&leaf).into_iter().next());
            let mut value = mtls::testing::xfcc_header(&leaf, uri.as_deref());
            if leaf.trim() != pem.trim() {
                value.push_str(";Chain=\"");
                value.push_str(&mtls::testing::escaped_pem(&pem));
                value.push('"');
            }
            Ok(vec![("x-forwarded-client-cert".into(), value)])
        }
        other => {
            let Some(name) = other.strip_prefix("pem_header:") else {
                return Err(format!("`as: {other}` must be `xfcc` or `pem_header:NAME`"));
            };
            let mut headers = vec![(name.to_ascii_lowercase(), mtls::testing::escaped_pem(&pem))];
            if let Some(v) = &req.verify_header {
                headers.push((v.to_ascii_lowercase(), "SUCCESS".into()));
            }
            Ok(headers)
        }
    }
}
