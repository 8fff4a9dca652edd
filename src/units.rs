//! The value formats of flags and environment variables: DUR (`10ms`, `30s`, `5m`, `24h`), BYTES
//! (`4096`, `64KiB`, `1MiB`, `1GiB`) and booleans. Shared by the gateway's command line (`config`) and
//! the load generator (`loadtest`), which otherwise have nothing to do with each other.

use std::time::Duration;

/// Why a flag value did not parse; the text is what clap prints after the flag's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("{0:?}: a unit (ms, s, m, h) is required")]
    MissingDurationUnit(String),
    #[error("{0:?} is not a duration (e.g. 10ms, 30s, 5m, 24h)")]
    NotADuration(String),
    #[error("{value:?}: unknown unit {unit:?} (ms, s, m, h)")]
    UnknownDurationUnit { value: String, unit: String },
    #[error("{0:?} is not a size (e.g. 4096, 64KiB, 1MiB)")]
    NotASize(String),
    #[error("{value:?}: unknown unit {unit:?} (KiB, MiB, GiB)")]
    UnknownSizeUnit { value: String, unit: String },
    #[error("{0:?} is too large")]
    TooLarge(String),
    #[error("{0:?} is not a boolean (1/true/yes/on or 0/false/no/off)")]
    NotABoolean(String),
}

/// DUR: an integer with `ms`, `s`, `m` or `h`; a bare `0` is allowed.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| UnitError::MissingDurationUnit(s.into()))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| UnitError::NotADuration(s.into()))?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(UnitError::UnknownDurationUnit { value: s.into(), unit: unit.into() }),
    };
    ms.map(Duration::from_millis).ok_or_else(|| UnitError::TooLarge(s.into()))
}

/// BYTES: an integer, optionally with `KiB`, `MiB` or `GiB`.
pub fn parse_bytes(s: &str) -> Result<usize, UnitError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().map_err(|_| UnitError::NotASize(s.into()))?;
    let mult: usize = match unit {
        "" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(UnitError::UnknownSizeUnit { value: s.into(), unit: unit.into() }),
    };
    n.checked_mul(mult).ok_or_else(|| UnitError::TooLarge(s.into()))
}

/// Boolean values: 1/true/yes/on or 0/false/no/off, case-insensitive.
pub fn parse_bool(s: &str) -> Result<bool, UnitError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(UnitError::NotABoolean(s.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "10", "1.5s", "s", "10d", "-1s", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64KiB"), Ok(65536));
        assert_eq!(parse_bytes("1MiB"), Ok(1 << 20));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        for bad in ["", "1MB", "1 MiB", "x", "1.5MiB"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn booleans() {
        for t in ["1", "TRUE", "yes", "On"] {
            assert_eq!(parse_bool(t), Ok(true));
        }
        for f in ["0", "false", "NO", "off"] {
            assert_eq!(parse_bool(f), Ok(false));
        }
        assert!(parse_bool("maybe").is_err());
    }
}
