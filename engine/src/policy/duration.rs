//! Policy durations: a whole number and one unit, `500ms`, `30s`, `5m`,
//! `1h`, `90d`. Nothing else (no fractions, signs, spaces or compound forms),
//! so a duration reads one way only. Written by hand: the accepted grammar is
//! deliberately smaller than any duration crate's.

use std::time::Duration;

/// Why a duration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Not `<digits><unit>`.
    #[error("expected a whole number and a unit (`ms`, `s`, `m`, `h`, `d`)")]
    Malformed,
    /// The unit is not one of `ms`, `s`, `m`, `h`, `d`.
    #[error("unknown unit: use `ms`, `s`, `m`, `h` or `d`")]
    Unit,
    /// Too large to represent.
    #[error("duration is too large")]
    Overflow,
}

/// The help line for any duration error.
pub const HELP: &str = "durations look like `500ms`, `30s`, `5m`, `1h` or `90d`";

/// Parses a duration. Zero parses; the policy decoder refuses it (durations are positive).
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return Err(DurationError::Malformed);
    }
    if unit.is_empty() {
        return Err(DurationError::Malformed);
    }
    let n: u64 = digits.parse().map_err(|_| DurationError::Overflow)?;
    let secs = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or(DurationError::Overflow)
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        u if u.chars().all(|c| c.is_ascii_alphabetic()) => Err(DurationError::Unit),
        _ => Err(DurationError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_five_units() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("007s"), Ok(Duration::from_secs(7)));
    }

    #[test]
    fn everything_else_is_refused() {
        for s in [
            "", "s", "30", "1.5s", "-1s", "+1s", " 1s", "1s ", "1 s", "1S", "1sec", "1h30m", "1w",
            "1y", "1us", "1ns", "1µs", "１s", "0x10s", "1e3s",
        ] {
            assert!(parse(s).is_err(), "{s:?} should be refused");
        }
        assert_eq!(parse("1w"), Err(DurationError::Unit));
        assert_eq!(parse("1.5s"), Err(DurationError::Malformed));
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(
            parse("99999999999999999999999s"),
            Err(DurationError::Overflow)
        );
        assert_eq!(parse("18446744073709551615d"), Err(DurationError::Overflow));
        assert!(parse("18446744073709551615s").is_ok());
    }
}
