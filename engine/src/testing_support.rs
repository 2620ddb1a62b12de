//! Signing JWTs and presenting client certificates for policy tests.
//! Filled in as the JWT and mTLS credentials land.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::credential::{jwt, mtls};
use crate::policy::JwtAlgorithm;
use crate::testing::{CertFixture, CertRequest, JwtRequest, JwtSigner};

/// Signs the case's claims with a fixture signer. String claim values of the
/// form `now`, `now+1h` or `now-5m` become unix times relative to the test's clock.
pub(crate) fn sign_jwt(
    signer: &JwtSigner,
    req: &JwtRequest,
    dir: &Path,
    now: SystemTime,
) -> Result<String, String> {
    let alg = JwtAlgorithm::from_name(&signer.alg)
        .ok_or_else(|| format!("unknown algorithm `{}`", signer.alg))?;
    let key: Vec<u8> = match (&signer.private_key_file, &signer.secret_env) {
        (Some(f), None) => {
            let path = dir.join(f);
            std::fs::read(&path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?
        }
        (None, Some(var)) => std::env::var(var)
            .map_err(|_| format!("environment variable `{var}` is not set"))?
            .into_bytes(),
        _ => {
            return Err(
                "a jwt signer needs exactly one of `private_key_file` and `secret_env`".into(),
            )
        }
    };
    let unix = i64::try_from(
        now.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
    .unwrap_or(0);
    let claims = relative_times(&req.claims, unix)?;
    jwt::testing::sign(
        alg,
        &key,
        signer.kid.as_deref(),
        req.typ.as_deref(),
        &claims,
    )
}

fn relative_times(v: &serde_json::Value, now: i64) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match v {
        Value::String(s) if s == "now" => Value::from(now),
        Value::String(s) if s.starts_with("now+") || s.starts_with("now-") => {
            let (sign, d) = s.split_at(4);
            let secs = crate::policy::duration::parse(d)
                .map_err(|_| format!("`{s}`: expected now+DURATION or now-DURATION"))?
                .as_secs();
            let secs = i64::try_from(secs).unwrap_or(i64::MAX);
            Value::from(if sign.ends_with('+') {
                now.saturating_add(secs)
            } else {
                now.saturating_sub(secs)
            })
        }
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, x) in m {
                out.insert(k.clone(), relative_times(x, now)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
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
