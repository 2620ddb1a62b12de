//! Signing JWTs and presenting client certificates for policy tests.
//! Filled in as the JWT and mTLS credentials land.

use std::path::Path;
use std::time::SystemTime;

use crate::testing::{CertFixture, CertRequest, JwtRequest, JwtSigner};

pub(crate) fn sign_jwt(
    _signer: &JwtSigner,
    _req: &JwtRequest,
    _dir: &Path,
    _now: SystemTime,
) -> Result<String, String> {
    Err("jwt signing in policy tests is not available yet".into())
}

pub(crate) fn cert_headers(
    _f: &CertFixture,
    _req: &CertRequest,
    _dir: &Path,
) -> Result<Vec<(String, String)>, String> {
    Err("client certificates in policy tests are not available yet".into())
}
