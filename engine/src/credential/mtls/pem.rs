//! Certificates as gateways forward them: URL-escaped PEM (nginx
//! `$ssl_client_escaped_cert`, Envoy `Cert` and `Chain`), or bare base64 DER
//! (Traefik `passTLSClientCert`, Caddy `certificate_der_base64`).
//!
//! The PEM framing is written by hand: the PEM readers at hand (x509-parser's,
//! rustls-pki-types', the `pem` crate) skip text around blocks and blocks with
//! other labels, while a forwarded certificate must be certificate blocks and
//! whitespace, nothing else.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Most certificates accepted in one forwarded value (a leaf and its chain).
pub const MAX_CERTS: usize = 8;

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// Why a forwarded certificate value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// A `%` is not followed by two hex digits.
    #[error("bad percent-encoding")]
    BadPercent,
    /// The percent-decoded bytes are not UTF-8.
    #[error("decoded certificate text is not utf-8")]
    NotUtf8,
    /// Something other than `CERTIFICATE` blocks and whitespace (text, other labels, no END).
    #[error("not certificate pem blocks only")]
    BadFraming,
    /// The base64 is not strict, padded, standard base64.
    #[error("bad base64 in certificate")]
    BadBase64,
    /// No certificate at all.
    #[error("no certificate")]
    Empty,
    /// More than [`MAX_CERTS`] certificates.
    #[error("too many certificates")]
    TooMany,
}

/// Percent-decoding only: `+` stays `+` (form decoding would turn it into a
/// space and corrupt the base64), and a `%` without two hex digits refuses.
pub fn percent_decode(s: &str) -> Result<String, PemError> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(off) = b
        .get(i..)
        .and_then(|rest| rest.iter().position(|&c| c == b'%'))
    {
        let at = i + off;
        let hex = b.get(at + 1..at + 3).ok_or(PemError::BadPercent)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(PemError::BadPercent);
        }
        i = at + 3;
    }
    let bytes: Vec<u8> = percent_encoding::percent_decode(b).collect();
    String::from_utf8(bytes).map_err(|_| PemError::NotUtf8)
}

/// The DER certificates of a decoded value: PEM blocks, or one bare base64 DER.
pub fn certificates(text: &str) -> Result<Vec<Vec<u8>>, PemError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(PemError::Empty);
    }
    if !text.starts_with("-----") {
        return STANDARD
            .decode(text)
            .map(|der| vec![der])
            .map_err(|_| PemError::BadBase64);
    }
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines() {
        let line = line.trim_end_matches([' ', '\r']);
        match &mut body {
            None if line.is_empty() => {}
            None if line == BEGIN => body = Some(String::new()),
            None => return Err(PemError::BadFraming),
            Some(b64) if line == END => {
                let der = STANDARD.decode(&*b64).map_err(|_| PemError::BadBase64)?;
                if out.len() == MAX_CERTS {
                    return Err(PemError::TooMany);
                }
                out.push(der);
                body = None;
            }
            Some(_) if line.starts_with("-----") => return Err(PemError::BadFraming),
            Some(b64) => b64.push_str(line),
        }
    }
    if body.is_some() {
        return Err(PemError::BadFraming);
    }
    if out.is_empty() {
        return Err(PemError::Empty);
    }
    Ok(out)
}

/// Encodes DER as PEM with 64-character lines.
pub fn to_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str(BEGIN);
    out.push('\n');
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_keeps_plus() {
        assert_eq!(percent_decode("a+b%2Bc%20d%0A").unwrap(), "a+b+c d\n");
        for bad in ["%", "%2", "%zz", "abc%g0"] {
            assert_eq!(percent_decode(bad), Err(PemError::BadPercent), "{bad}");
        }
        assert_eq!(percent_decode("%ff"), Err(PemError::NotUtf8));
    }

    #[test]
    fn pem_blocks_only() {
        let one = to_pem(b"\x30\x03\x02\x01\x01");
        assert_eq!(
            certificates(&one).unwrap(),
            [b"\x30\x03\x02\x01\x01".to_vec()]
        );
        let two = format!("{one}\n{one}");
        assert_eq!(certificates(&two).unwrap().len(), 2);
        let crlf = one.replace('\n', "\r\n");
        assert_eq!(certificates(&crlf).unwrap().len(), 1);
        let many = one.repeat(MAX_CERTS + 1);
        assert_eq!(certificates(&many), Err(PemError::TooMany));
        for bad in [
            format!("junk\n{one}"),
            format!("{one}junk\n"),
            one.replace("CERTIFICATE", "PRIVATE KEY"),
            one.replace(END, ""),
            one.replace("MAMCAQE=", "MAMCAQE"),
            format!("{BEGIN}\n{BEGIN}\n"),
        ] {
            assert!(certificates(&bad).is_err(), "{bad:?}");
        }
        assert_eq!(certificates("  "), Err(PemError::Empty));
    }

    #[test]
    fn bare_base64_is_one_der() {
        assert_eq!(
            certificates("MAMCAQE=").unwrap(),
            [b"\x30\x03\x02\x01\x01".to_vec()]
        );
        assert_eq!(certificates("MAMCAQE"), Err(PemError::BadBase64));
        assert_eq!(certificates("MAMC AQE="), Err(PemError::BadBase64));
    }
}
