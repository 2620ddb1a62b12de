//! Durations as workloads write them (`500ms`, `30s`, `15m`) and numbers as
//! reports print them.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration read from and written as text (`250ms`, `5s`, `15m`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }

    pub fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }

    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim())
            .map(Dur)
            .map_err(|e| serde::de::Error::custom(format!("`{s}` is not a duration: {e}")))
    }
}

/// Milliseconds with a precision that suits their size: `0.042 ms`,
/// `1.38 ms`, `27.1 ms`, `4,210 ms`.
pub fn ms(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    if a < 0.1 {
        format!("{v:.3} ms")
    } else if a < 10.0 {
        format!("{v:.2} ms")
    } else if a < 1000.0 {
        format!("{v:.1} ms")
    } else {
        format!("{} ms", thousands(v.round() as u64))
    }
}

/// A lag or lifetime for people: `38 ms`, `5.0 s`, `15 min`.
pub fn lag(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "n/a".into();
    }
    if seconds < 1.0 {
        ms(seconds * 1e3)
    } else if seconds < 120.0 {
        format!("{seconds:.1} s")
    } else if seconds < 7200.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// `12,345`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate in decisions per second: `2,000/s`.
pub fn rate(r: f64) -> String {
    if !r.is_finite() || r < 0.0 {
        return "n/a".into();
    }
    format!("{}/s", thousands(r.round() as u64))
}

/// Bytes as MiB: `23.4 MiB`.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        let d: Dur = serde_yaml::from_str("\"1500ms\"").unwrap();
        assert_eq!(d.get(), Duration::from_millis(1500));
        assert_eq!(serde_json::to_string(&Dur::secs(900)).unwrap(), "\"15m\"");
        assert!(serde_yaml::from_str::<Dur>("\"soon\"").is_err());
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(ms(0.0421), "0.042 ms");
        assert_eq!(ms(1.384), "1.38 ms");
        assert_eq!(ms(27.14), "27.1 ms");
        assert_eq!(ms(4210.0), "4,210 ms");
        assert_eq!(lag(0.038), "38.0 ms");
        assert_eq!(lag(5.0), "5.0 s");
        assert_eq!(lag(900.0), "15 min");
        assert_eq!(rate(1999.6), "2,000/s");
        assert_eq!(mib(3 * 1024 * 1024), "3.0 MiB");
    }
}
