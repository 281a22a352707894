//! A link bandwidth, as given on the command line (`--bandwidth 10MB/s`,
//! `--bandwidth 100Mbit/s`).
//!
//! Units are bytes per second with SI (`kB`, `MB`, `GB`: powers of 1000) or
//! binary (`KiB`, `MiB`, `GiB`: powers of 1024) prefixes, or bits per second
//! spelled out (`bit`, `kbit`, `Mbit`, `Gbit`, `Kibit`, `Mibit`, `Gibit`);
//! `/s` is optional. A bare lowercase `b` (as in `Mb/s`) is refused rather
//! than guessed: it usually means bits, and reading it as bytes would be off
//! by a factor of 8.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A bandwidth in bytes per second (finite, positive).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Bandwidth {
    bytes_per_s: f64,
}

/// Accepted units and their factors (to bytes).
const UNITS: [(&str, f64); 16] = [
    ("B", 1.0),
    ("kB", 1e3),
    ("KB", 1e3),
    ("MB", 1e6),
    ("GB", 1e9),
    ("KiB", 1024.0),
    ("MiB", 1024.0 * 1024.0),
    ("GiB", 1024.0 * 1024.0 * 1024.0),
    ("bit", 1.0 / 8.0),
    ("kbit", 1e3 / 8.0),
    ("Kbit", 1e3 / 8.0),
    ("Mbit", 1e6 / 8.0),
    ("Gbit", 1e9 / 8.0),
    ("Kibit", 1024.0 / 8.0),
    ("Mibit", 1024.0 * 1024.0 / 8.0),
    ("Gibit", 1024.0 * 1024.0 * 1024.0 / 8.0),
];

/// The units, for messages.
const UNIT_LIST: &str = "B, kB, MB, GB, KiB, MiB, GiB or bit, kbit, Mbit, Gbit, Kibit, Mibit, Gibit per second";

impl Bandwidth {
    /// A bandwidth of `bytes_per_s`; `None` unless finite and positive.
    pub fn from_bytes_per_s(bytes_per_s: f64) -> Option<Self> {
        (bytes_per_s.is_finite() && bytes_per_s > 0.0).then_some(Bandwidth { bytes_per_s })
    }

    /// Bytes per second.
    pub fn bytes_per_s(&self) -> f64 {
        self.bytes_per_s
    }
}

impl FromStr for Bandwidth {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let err = |reason: &str| Error::Bandwidth {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let t = s.trim();
        let t = t
            .strip_suffix("/s")
            .or_else(|| t.strip_suffix("ps"))
            .unwrap_or(t)
            .trim_end();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (number, unit) = (t[..split].trim(), t[split..].trim());
        if number.is_empty() {
            return Err(err("expected a number followed by a unit, e.g. 10MB/s"));
        }
        let value: f64 = number.parse().map_err(|_| err("the number does not parse"))?;
        let factor = match UNITS.iter().find(|(u, _)| *u == unit) {
            Some((_, f)) => *f,
            None if unit.ends_with('b') => {
                return Err(err(&format!(
                    "a lowercase 'b' means bits; spell bits out (e.g. Mbit/s) or give bytes: {UNIT_LIST}"
                )));
            }
            None if unit.is_empty() => return Err(err(&format!("missing unit: {UNIT_LIST}"))),
            None => return Err(err(&format!("unknown unit; use {UNIT_LIST}"))),
        };
        Bandwidth::from_bytes_per_s(value * factor).ok_or_else(|| err("must be positive and finite"))
    }
}

impl fmt::Display for Bandwidth {
    /// The largest SI unit that keeps the number at least 1 (`10 MB/s`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bytes_per_s;
        let (v, u) = if b >= 1e9 {
            (b / 1e9, "GB")
        } else if b >= 1e6 {
            (b / 1e6, "MB")
        } else if b >= 1e3 {
            (b / 1e3, "kB")
        } else {
            (b, "B")
        };
        write!(f, "{v} {u}/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bps(s: &str) -> f64 {
        s.parse::<Bandwidth>()
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .bytes_per_s()
    }

    #[test]
    fn parses_every_unit() {
        assert_eq!(bps("100B/s"), 100.0);
        assert_eq!(bps("1.5kB/s"), 1500.0);
        assert_eq!(bps("2KB/s"), 2000.0);
        assert_eq!(bps("10MB/s"), 10e6);
        assert_eq!(bps("1GB/s"), 1e9);
        assert_eq!(bps("1KiB/s"), 1024.0);
        assert_eq!(bps("10MiB/s"), 10.0 * 1048576.0);
        assert_eq!(bps("0.5GiB/s"), 536870912.0);
        // Spaces and a missing "/s" are fine.
        assert_eq!(bps(" 10 MB/s "), 10e6);
        assert_eq!(bps("10MB"), 10e6);
        assert_eq!(bps("10MBps"), 10e6);
        // Bits, spelled out (the example of `infer --help`).
        assert_eq!(bps("100Mbit/s"), 12.5e6);
        assert_eq!(bps("8bit/s"), 1.0);
        assert_eq!(bps("1Gbit/s"), 125e6);
        assert_eq!(bps("8Kibit/s"), 1024.0);
    }

    #[test]
    fn refuses_bad_input_with_reasons() {
        for (s, why) in [
            ("", "number"),
            ("MB/s", "number"),
            ("10", "missing unit"),
            ("10Mb/s", "bits"),
            ("10TB/s", "unknown unit"),
            ("0MB/s", "positive"),
            ("-1MB/s", "number"),
            ("1.2.3MB/s", "parse"),
            ("1e3B/s", "unknown unit"),
        ] {
            let e = s.parse::<Bandwidth>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(&format!("'{s}'")), "{s}: {e}");
        }
    }

    #[test]
    fn displays_readably() {
        assert_eq!("10MB/s".parse::<Bandwidth>().unwrap().to_string(), "10 MB/s");
        assert_eq!("1536B/s".parse::<Bandwidth>().unwrap().to_string(), "1.536 kB/s");
    }
}
