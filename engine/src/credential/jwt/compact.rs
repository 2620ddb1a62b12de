//! The JWS compact serialization (RFC 7515 section 7.1), read strictly.
//!
//! Written by hand rather than taken from `jsonwebtoken::decode`: that decoder
//! has no size limit before it starts decoding, splits on the last dots
//! (so extra segments end up inside the header), and leaves padding and
//! alphabet questions to a lenient base64 engine. Here every rule is checked
//! on the raw bytes first, in one pass, before anything is decoded:
//! a size limit (CVE-2025-30204), only `[A-Za-z0-9_-.]`, exactly three
//! segments, no padding, and canonical base64url (no non-zero trailing bits).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Why a token's outer form was refused. No variant carries token bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompactError {
    /// The token is longer than the configured limit; nothing was decoded.
    #[error("token longer than the size limit")]
    TooLarge,
    /// A byte outside `[A-Za-z0-9_-.]` (padding, whitespace, `+`, `/`, JSON...).
    #[error("token has a character outside base64url and `.`")]
    BadCharacter,
    /// Not exactly three dot-separated segments.
    #[error("token does not have exactly three segments")]
    Segments,
    /// The header or the signature segment is empty.
    #[error("token has an empty header or signature")]
    EmptySegment,
    /// A segment is not canonical unpadded base64url.
    #[error("token segment is not canonical base64url")]
    Base64,
}

/// The three segments of a compact JWS, still encoded, borrowed from the token.
#[derive(Debug, Clone, Copy)]
pub struct Compact<'a> {
    /// `header.payload`: the bytes the signature covers.
    pub signing_input: &'a str,
    pub header: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
}

/// Splits a compact token after checking its size and alphabet.
pub fn split(token: &str, max_len: usize) -> Result<Compact<'_>, CompactError> {
    if token.len() > max_len {
        return Err(CompactError::TooLarge);
    }
    let mut dots: [usize; 2] = [0; 2];
    let mut found = 0usize;
    for (i, b) in token.bytes().enumerate() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => {}
            b'.' => {
                // A third dot is refused at once: no unbounded segment list.
                let slot = dots.get_mut(found).ok_or(CompactError::Segments)?;
                *slot = i;
                found += 1;
            }
            _ => return Err(CompactError::BadCharacter),
        }
    }
    if found != 2 {
        return Err(CompactError::Segments);
    }
    let [d1, d2] = dots;
    let header = token.get(..d1).ok_or(CompactError::Segments)?;
    let payload = token.get(d1 + 1..d2).ok_or(CompactError::Segments)?;
    let signature = token.get(d2 + 1..).ok_or(CompactError::Segments)?;
    let signing_input = token.get(..d2).ok_or(CompactError::Segments)?;
    if header.is_empty() || signature.is_empty() {
        return Err(CompactError::EmptySegment);
    }
    Ok(Compact {
        signing_input,
        header,
        payload,
        signature,
    })
}

/// Decodes canonical unpadded base64url (the engine refuses padding and
/// non-zero trailing bits; the alphabet was already checked by [`split`]).
pub fn decode(segment: &str) -> Result<Vec<u8>, CompactError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| CompactError::Base64)
}

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_segments_only() {
        assert!(split("a.b.c", 100).is_ok());
        assert_eq!(split("a.b", 100).unwrap_err(), CompactError::Segments);
        assert_eq!(split("a.b.c.d", 100).unwrap_err(), CompactError::Segments);
        assert_eq!(split("....", 100).unwrap_err(), CompactError::Segments);
        assert_eq!(split("a..", 100).unwrap_err(), CompactError::EmptySegment);
        assert_eq!(split(".b.c", 100).unwrap_err(), CompactError::EmptySegment);
        // The payload may be empty at the JWS layer (RFC 7515 allows it).
        assert!(split("a..c", 100).is_ok());
    }

    #[test]
    fn alphabet_and_size() {
        for bad in ["a.b.c=", "a.b.c ", "a.b+.c", "a.b/.c", "a.\nb.c", "a.b.c\0"] {
            assert_eq!(
                split(bad, 100).unwrap_err(),
                CompactError::BadCharacter,
                "{bad:?}"
            );
        }
        assert_eq!(split("a.b.c", 4).unwrap_err(), CompactError::TooLarge);
    }

    #[test]
    fn canonical_base64url() {
        assert_eq!(decode("AA").unwrap(), vec![0]);
        // `AB` has non-zero trailing bits: not the canonical encoding of [0].
        assert_eq!(decode("AB").unwrap_err(), CompactError::Base64);
        assert_eq!(decode("A").unwrap_err(), CompactError::Base64);
        assert_eq!(decode("AA==").unwrap_err(), CompactError::Base64);
    }
}
