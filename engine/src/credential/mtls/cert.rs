//! What Portcullis reads from a client certificate: its SHA-256
//! fingerprint, URI SANs, subject (RFC 4514 string) and validity window.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};
use x509_parser::der_parser::asn1_rs::{Any, Tag};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::X509Name;

/// A parsed client certificate, reduced to what identity and policy need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    pub der: Vec<u8>,
    /// Lowercase hex SHA-256 of the DER, no colons.
    pub fingerprint: String,
    /// Every URI SAN, in certificate order.
    pub uris: Vec<String>,
    /// RFC 4514 string of the subject DN.
    pub subject: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
}

/// Why a certificate could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The bytes are not one DER X.509 certificate (or have bytes after it).
    #[error("not a der x.509 certificate")]
    NotX509,
    /// The subject alternative name extension is malformed or repeated.
    #[error("malformed subject alternative name extension")]
    BadSan,
}

/// Lowercase hex SHA-256 of `der`.
pub fn fingerprint(der: &[u8]) -> String {
    hex(&Sha256::digest(der))
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl ClientCert {
    pub fn parse(der: Vec<u8>) -> Result<Self, CertError> {
        let (rest, cert) = X509Certificate::from_der(&der).map_err(|_| CertError::NotX509)?;
        if !rest.is_empty() {
            return Err(CertError::NotX509);
        }
        let uris = match cert.subject_alternative_name() {
            Err(_) => return Err(CertError::BadSan),
            Ok(None) => Vec::new(),
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(u) => Some((*u).to_string()),
                    _ => None,
                })
                .collect(),
        };
        let subject = rfc4514(cert.subject());
        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        drop(cert);
        Ok(Self {
            fingerprint: fingerprint(&der),
            der,
            uris,
            subject,
            not_before,
            not_after,
        })
    }
}

/// The RFC 4514 string form of a DN: RDNs last-to-first joined by `,`,
/// multi-valued RDNs joined by `+`, the RFC's short names (CN, L, ST, O, OU,
/// C, STREET, DC, UID) else the dotted OID, string values escaped per section
/// 2.4, other values as `#` and the hex of their DER. No spaces are added.
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = atv.attr_type().to_id_string();
            let short = short_name(&oid);
            out.push_str(short.unwrap_or(&oid));
            out.push('=');
            match (short, string_value(atv.attr_value())) {
                (Some(_), Some(s)) => escape_value(&s, &mut out),
                _ => {
                    out.push('#');
                    out.push_str(&hex(&tlv(atv.attr_value())));
                }
            }
        }
    }
    out
}

fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn string_value(v: &Any<'_>) -> Option<String> {
    match v.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::NumericString => {
            std::str::from_utf8(v.data).ok().map(str::to_string)
        }
        Tag::BmpString => {
            if v.data.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = v
                .data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes(c.try_into().unwrap_or([0, 0])))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// RFC 4514 section 2.4 escaping.
fn escape_value(s: &str, out: &mut String) {
    let last = s.chars().count().saturating_sub(1);
    for (i, c) in s.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\{b:02x}");
                }
            }
            c => out.push(c),
        }
    }
}

/// The DER encoding (tag, length, contents) of a parsed value.
fn tlv(v: &Any<'_>) -> Vec<u8> {
    let mut out = match v.header.raw_tag() {
        Some(t) => t.to_vec(),
        // Only reached for values built in memory, which are low-tag-number.
        None => {
            let class = (v.header.class() as u8) << 6;
            let cons = if v.header.constructed() { 0x20 } else { 0 };
            vec![class | cons | (v.tag().0 as u8 & 0x1f)]
        }
    };
    let len = v.data.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(v.data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let mut out = String::new();
        escape_value(s, &mut out);
        out
    }

    #[test]
    fn rfc4514_escaping() {
        assert_eq!(esc("Acme, Inc."), "Acme\\, Inc.");
        assert_eq!(esc("a+b;c<d>e\"f\\g"), "a\\+b\\;c\\<d\\>e\\\"f\\\\g");
        assert_eq!(esc("#x#"), "\\#x#");
        assert_eq!(esc(" x "), "\\ x\\ ");
        assert_eq!(esc("a\0b"), "a\\00b");
        assert_eq!(esc("zoë"), "zoë");
    }
}
