//! Timestamps as they appear in credentials (`validFrom`, `created`, …):
//! XML Schema `dateTimeStamp`, which must carry a time zone.

use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};

/// A timestamp string that is not an XSD `dateTimeStamp`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{value:?} is not a date-time with a time zone (e.g. 2026-01-31T12:00:00Z)")]
pub struct TimeError {
    /// The offending text (truncated).
    pub value: String,
}

/// Parses an XSD `dateTimeStamp` / RFC 3339 date-time with time zone.
pub fn parse_timestamp(s: &str) -> Result<SystemTime, TimeError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| SystemTime::from(t.with_timezone(&Utc)))
        .map_err(|_| TimeError {
            value: s.chars().take(64).collect(),
        })
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds), the form
/// the W3C examples and test vectors use.
pub fn format_timestamp(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_whole_seconds() {
        let t = parse_timestamp("2023-02-24T23:36:38Z").unwrap();
        assert_eq!(format_timestamp(t), "2023-02-24T23:36:38Z");
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let t = parse_timestamp("2023-02-25T01:36:38+02:00").unwrap();
        assert_eq!(format_timestamp(t), "2023-02-24T23:36:38Z");
    }

    #[test]
    fn requires_a_time_zone() {
        assert!(parse_timestamp("2023-02-24T23:36:38").is_err());
        assert!(parse_timestamp("yesterday").is_err());
    }
}
