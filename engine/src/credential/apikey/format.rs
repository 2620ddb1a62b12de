//! The key shape of SPEC section 5: `PREFIX` + 30 base62 random characters +
//! 6 base62 characters of CRC32 over prefix and random part.
//!
//! Written by hand: no maintained crate implements this (GitHub-style) token
//! format, and it is a few lines over `crc32fast` and `ring`'s CSPRNG.

use std::sync::OnceLock;

use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Random characters after the prefix.
pub const RANDOM_LEN: usize = 30;
/// Checksum characters at the end.
pub const CHECKSUM_LEN: usize = 6;
/// Longest prefix accepted.
pub const MAX_PREFIX_LEN: usize = 32;

/// A key's SHA-256 digest: what stores hold. Never printed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    pub fn of(key: &str) -> Self {
        KeyDigest(Sha256::digest(key.as_bytes()).into())
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
        }
        Some(KeyDigest(out))
    }
}

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDigest(<redacted>)")
    }
}

/// Marks a byte outside the base62 alphabet in [`DIGIT`].
const NOT_BASE62: u8 = 0xFF;

/// `DIGIT[b]`: the base62 value of byte `b`, or [`NOT_BASE62`]. A table,
/// because per-byte range checks were a measurable share of an API-key
/// decision, and it lets the checksum be read by decoding (one multiply-add
/// per character) rather than by re-encoding the CRC (a division per character).
// Indexing in a const initialiser fails at compile time, never at run time.
#[allow(clippy::indexing_slicing)]
static DIGIT: [u8; 256] = {
    let mut t = [NOT_BASE62; 256];
    let mut i = 0;
    while i < 62 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

fn digit(b: u8) -> u8 {
    DIGIT.get(usize::from(b)).copied().unwrap_or(NOT_BASE62)
}

/// Base62 is exactly ASCII alphanumerics. Checked eight bytes per step:
/// on the 30-byte random part the byte-wise check cost ~70 instructions
/// per decision more than four (overlapping) words do.
fn all_base62(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 8 {
        return b.iter().all(u8::is_ascii_alphanumeric);
    }
    let word_ok =
        |w: &[u8]| <[u8; 8]>::try_from(w).is_ok_and(|w| word_alphanumeric(u64::from_le_bytes(w)));
    // Whole words, then the last eight bytes (overlapping the previous
    // word) rather than a byte loop over the remainder.
    b.chunks_exact(8).fold(true, |ok, w| ok & word_ok(w))
        & b.get(b.len() - 8..).is_some_and(word_ok)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `x` (all below 0x80) set when that byte is
/// in `lo..=hi`. Adding `0x80 - lo` sets a byte's high bit exactly when it
/// is at least `lo`, adding `0x7f - hi` exactly when it is above `hi`;
/// bytes below 0x80 plus at most 0x80 never carry into their neighbour.
fn bytes_in(x: u64, lo: u8, hi: u8) -> u64 {
    let at_least_lo = x + ONES * u64::from(0x80 - lo);
    let above_hi = x + ONES * u64::from(0x7f - hi);
    at_least_lo & !above_hi & HIGHS
}

/// Are all eight bytes of `x` ASCII letters or digits?
fn word_alphanumeric(x: u64) -> bool {
    if x & HIGHS != 0 {
        return false;
    }
    // `| 0x20` folds `A-Z` onto `a-z` and nothing else onto `a-z`.
    let letters = bytes_in(x | (ONES * 0x20), b'a', b'z');
    let digits = bytes_in(x, b'0', b'9');
    letters | digits == HIGHS
}

/// The number a base62 checksum field spells, or `None` if a character is
/// not base62. Six characters reach 62^6 < 2^36, so a `u64` never overflows;
/// values above `u32::MAX` simply match no CRC. Decoding is injective on
/// fixed-width fields, so `decode(sum) == crc` holds exactly when
/// `base62_fixed(crc) == sum`: the same check as re-encoding, cheaper.
fn decode_checksum(sum: &str) -> Option<u64> {
    let mut n = 0u64;
    let mut ok = true;
    for b in sum.bytes() {
        let d = digit(b);
        ok &= d != NOT_BASE62;
        // `d & 63` keeps a non-digit's value in range; `ok` already refuses it.
        n = n * 62 + u64::from(d & 63);
    }
    ok.then_some(n)
}

/// Is `prefix` usable as a key prefix (`[A-Za-z0-9_-]`, 1..=32 chars)?
pub fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn base62_fixed(mut n: u32) -> [u8; CHECKSUM_LEN] {
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET.get((n % 62) as usize).copied().unwrap_or(b'0');
        n /= 62;
    }
    out
}

fn checksum(body: &str) -> [u8; CHECKSUM_LEN] {
    base62_fixed(crc32(body.as_bytes()))
}

/// CRC32 (IEEE). `crc32fast::hash` detects CPU features on every call, a
/// visible share of checking a 40-byte key; a hasher cloned from one made
/// once skips that.
fn crc32(bytes: &[u8]) -> u32 {
    static PROTO: OnceLock<crc32fast::Hasher> = OnceLock::new();
    let mut h = PROTO.get_or_init(crc32fast::Hasher::new).clone();
    h.update(bytes);
    h.finalize()
}

/// Why key generation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// The prefix has characters outside `[A-Za-z0-9_-]` or is too long.
    #[error("invalid key prefix `{0}`: use 1 to 32 of `A-Z a-z 0-9 _ -`")]
    BadPrefix(String),
    /// The operating system's random source failed.
    #[error("the system random number generator failed")]
    Rng,
}

/// Generates a new key from the OS CSPRNG.
pub fn generate(prefix: &str) -> Result<String, GenerateError> {
    if !valid_prefix(prefix) {
        return Err(GenerateError::BadPrefix(prefix.to_string()));
    }
    let rng = SystemRandom::new();
    let mut random = String::with_capacity(RANDOM_LEN);
    let mut buf = [0u8; 64];
    while random.len() < RANDOM_LEN {
        rng.fill(&mut buf).map_err(|_| GenerateError::Rng)?;
        // Rejection sampling: 248 = 4 * 62, so accepted bytes map uniformly.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if random.len() == RANDOM_LEN {
                break;
            }
            random.push(
                ALPHABET
                    .get((b % 62) as usize)
                    .copied()
                    .map(char::from)
                    .unwrap_or('0'),
            );
        }
    }
    let body = format!("{prefix}{random}");
    let sum = checksum(&body);
    Ok(format!("{body}{}", String::from_utf8_lossy(&sum)))
}

/// What a presented value is, for an API-key credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyShape {
    /// Not one of this credential's prefixes: not meant for it, no lookup.
    Foreign,
    /// Has our prefix but a wrong length, alphabet or checksum: invalid, no lookup.
    Corrupt,
    /// Well-formed: worth a lookup.
    WellFormed,
}

/// Classifies `value` against the accepted `prefixes` (empty = any prefix).
pub fn classify(value: &str, prefixes: &[String]) -> KeyShape {
    let Some(body_len) = value.len().checked_sub(CHECKSUM_LEN) else {
        return if prefixes.is_empty() {
            KeyShape::Corrupt
        } else {
            foreign_or_corrupt(value, prefixes)
        };
    };
    let prefix_len = if prefixes.is_empty() {
        match body_len.checked_sub(RANDOM_LEN) {
            Some(n) if n >= 1 => n,
            _ => return KeyShape::Corrupt,
        }
    } else {
        match prefixes.iter().find(|p| value.starts_with(p.as_str())) {
            Some(p) => p.len(),
            None => return KeyShape::Foreign,
        }
    };
    if body_len != prefix_len + RANDOM_LEN {
        return KeyShape::Corrupt;
    }
    let (Some(prefix), Some(random), Some(body), Some(sum)) = (
        value.get(..prefix_len),
        value.get(prefix_len..body_len),
        value.get(..body_len),
        value.get(body_len..),
    ) else {
        return KeyShape::Corrupt;
    };
    // A configured prefix was checked when the policy loaded.
    let shape_ok = (!prefixes.is_empty() || valid_prefix(prefix)) & all_base62(random);
    if shape_ok && decode_checksum(sum) == Some(u64::from(crc32(body.as_bytes()))) {
        KeyShape::WellFormed
    } else {
        KeyShape::Corrupt
    }
}

fn foreign_or_corrupt(value: &str, prefixes: &[String]) -> KeyShape {
    if prefixes.iter().any(|p| value.starts_with(p.as_str())) {
        KeyShape::Corrupt
    } else {
        KeyShape::Foreign
    }
}

/// The only form of a key that may be shown after creation: first 8 and last 4 characters.
pub fn fingerprint(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 16 {
        // Too short to show any of it safely.
        return "…".to_string();
    }
    let head: String = chars.iter().take(8).collect();
    let tail: String = chars.iter().skip(chars.len() - 4).collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_spec_shape_and_verify() {
        let k = generate("pk_live_").unwrap();
        assert_eq!(k.len(), 8 + 30 + 6);
        assert!(k.starts_with("pk_live_"));
        assert_eq!(classify(&k, &["pk_live_".into()]), KeyShape::WellFormed);
        assert_eq!(classify(&k, &[]), KeyShape::WellFormed);
        assert_eq!(classify(&k, &["pk_test_".into()]), KeyShape::Foreign);
        assert_ne!(generate("pk_live_").unwrap(), k);
    }

    #[test]
    fn one_changed_character_is_detected() {
        let k = generate("sk_").unwrap();
        let mut bytes = k.clone().into_bytes();
        bytes[10] = if bytes[10] == b'a' { b'b' } else { b'a' };
        let bad = String::from_utf8(bytes).unwrap();
        assert_eq!(classify(&bad, &["sk_".into()]), KeyShape::Corrupt);
    }

    #[test]
    fn checksum_is_left_padded_base62() {
        assert_eq!(&base62_fixed(0), b"000000");
        assert_eq!(&base62_fixed(61), b"00000z");
        assert_eq!(&base62_fixed(u32::MAX), b"4gfFC3");
    }

    #[test]
    fn decoding_the_checksum_agrees_with_re_encoding_it() {
        let mut n: u32 = 1;
        for _ in 0..10_000 {
            let text = base62_fixed(n);
            let text = std::str::from_utf8(&text).unwrap();
            assert_eq!(decode_checksum(text), Some(u64::from(n)), "{n}");
            n = n.wrapping_mul(2_654_435_761).wrapping_add(12_345);
        }
        assert_eq!(decode_checksum("4gfFC3"), Some(u64::from(u32::MAX)));
        // Past u32::MAX: no CRC can match, as no re-encoding could produce it.
        assert!(decode_checksum("4gfFC4").unwrap() > u64::from(u32::MAX));
        assert_eq!(decode_checksum("zzzzzz"), Some(62u64.pow(6) - 1));
        assert_eq!(decode_checksum("abc_de"), None);
        assert_eq!(decode_checksum("abcdé"), None);
    }

    #[test]
    fn checksum_fields_above_u32_are_corrupt() {
        let body = format!("pk_{}", "A".repeat(RANDOM_LEN));
        let good = format!("{body}{}", std::str::from_utf8(&checksum(&body)).unwrap());
        assert_eq!(classify(&good, &["pk_".into()]), KeyShape::WellFormed);
        for sum in ["zzzzzz", "4gfFC4", "000000"] {
            let k = format!("{body}{sum}");
            if k != good {
                assert_eq!(classify(&k, &["pk_".into()]), KeyShape::Corrupt, "{sum}");
            }
        }
    }

    #[test]
    fn the_word_check_agrees_with_the_byte_check() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut w = *b"aZ09zA9m";
                w[at] = b;
                let word = word_alphanumeric(u64::from_le_bytes(w));
                assert_eq!(word, w.iter().all(u8::is_ascii_alphanumeric), "{b} at {at}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn all_base62_matches_the_byte_check(v in proptest::collection::vec(0x20u8..0x7f, 0..40)) {
            let s = String::from_utf8(v).unwrap();
            proptest::prop_assert_eq!(all_base62(&s), s.bytes().all(|b| b.is_ascii_alphanumeric()));
        }

        #[test]
        fn all_base62_matches_on_mostly_alphanumeric_text(s in "[a-zA-Z0-9]{0,33}[^a-zA-Z0-9]?[a-zA-Z0-9]{0,9}") {
            proptest::prop_assert_eq!(all_base62(&s), s.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn fingerprint_shows_only_ends() {
        let k = generate("pk_live_").unwrap();
        let fp = fingerprint(&k);
        assert!(fp.starts_with("pk_live_"));
        assert!(fp.ends_with(&k[k.len() - 4..]));
        assert!(!fp.contains(&k[8..k.len() - 4]));
    }

    #[test]
    fn bad_prefixes_are_refused() {
        assert!(generate("").is_err());
        assert!(generate("pk live").is_err());
        assert!(generate(&"x".repeat(33)).is_err());
    }

    #[test]
    fn digest_hex_round_trips_and_debug_redacts() {
        let d = KeyDigest::of("abc");
        assert_eq!(KeyDigest::from_hex(&d.to_hex()), Some(d));
        assert!(!format!("{d:?}").contains(&d.to_hex()[..8]));
    }
}
