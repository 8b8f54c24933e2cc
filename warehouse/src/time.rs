//! Months, days and instants as the warehouse names them: partition values (`date=YYYY-MM-DD`,
//! `hour=HH`, `month=YYYY-MM`) and the command line's `--month`, `--since` and `--until`.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

/// A calendar month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    /// Year.
    pub year: i32,
    /// Month, 1 to 12.
    pub month: u32,
}

impl Month {
    /// Parses `YYYY-MM`.
    pub fn parse(s: &str) -> Result<Month, String> {
        let bad = || format!("month {s:?} is not YYYY-MM (for example 2026-10)");
        if s.len() != 7 {
            return Err(bad());
        }
        let d = NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").map_err(|_| bad())?;
        Ok(Month {
            year: d.year(),
            month: d.month(),
        })
    }

    /// The month holding an instant (Unix seconds).
    pub fn of(secs: i64) -> Month {
        let t = DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or_default();
        Month {
            year: t.year(),
            month: t.month(),
        }
    }

    /// The current month, UTC.
    pub fn now() -> Month {
        Month::of(Utc::now().timestamp())
    }

    /// `YYYY-MM`.
    pub fn label(&self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    /// First instant, RFC 3339.
    pub fn start(&self) -> String {
        format!("{:04}-{:02}-01T00:00:00Z", self.year, self.month)
    }

    /// First instant of the next month, RFC 3339.
    pub fn end(&self) -> String {
        self.next().start()
    }

    /// First instant, Unix seconds.
    pub fn start_secs(&self) -> i64 {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp())
            .unwrap_or(0)
    }

    /// Days in the month.
    pub fn days(&self) -> i64 {
        (self.next().start_secs() - self.start_secs()) / 86_400
    }

    /// The month before.
    pub fn prev(&self) -> Month {
        match self.month {
            1 => Month {
                year: self.year - 1,
                month: 12,
            },
            m => Month {
                year: self.year,
                month: m - 1,
            },
        }
    }

    /// The month after.
    pub fn next(&self) -> Month {
        match self.month {
            12 => Month {
                year: self.year + 1,
                month: 1,
            },
            m => Month {
                year: self.year,
                month: m + 1,
            },
        }
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

impl std::str::FromStr for Month {
    type Err = String;
    fn from_str(s: &str) -> Result<Month, String> {
        Month::parse(s)
    }
}

/// An instant given as a day (`YYYY-MM-DD`, midnight UTC) or an RFC 3339 time: Unix seconds.
pub fn parse_instant(s: &str) -> Result<i64, String> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"))
}

/// The `date` partition value of an instant (Unix seconds): `YYYY-MM-DD`.
pub fn day(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}

/// The `date` and `hour` partition values of an instant: (`YYYY-MM-DD`, `HH`).
pub fn day_hour(secs: i64) -> (String, String) {
    let t = DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or_default();
    (t.format("%Y-%m-%d").to_string(), t.format("%H").to_string())
}

/// The instant of `date` and `hour` partition values: the inverse of [`day_hour`].
pub fn hour_of(date: &str, hour: &str) -> Option<i64> {
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let h: i64 = hour.parse().ok().filter(|h| (0..24).contains(h))?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp() + h * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_hours_round_trip() {
        let t = 1_790_812_800 + 7 * 3600;
        let (d, h) = day_hour(t);
        assert_eq!(hour_of(&d, &h), Some(t));
        assert_eq!(hour_of("2026-10-01", "24"), None);
        assert_eq!(hour_of("2026-13-01", "00"), None);
    }

    #[test]
    fn months() {
        let m = Month::parse("2026-12").unwrap();
        assert_eq!(
            (m.start(), m.end(), m.label()),
            (
                "2026-12-01T00:00:00Z".into(),
                "2027-01-01T00:00:00Z".into(),
                "2026-12".into()
            )
        );
        assert!(Month::parse("2026-13").is_err());
        assert_eq!(Month::parse("2026-01").unwrap().prev().label(), "2025-12");
        assert!(Month::parse("2026-1").is_err());
        assert!(Month::parse("october").unwrap_err().contains("YYYY-MM"));
        assert_eq!(Month::of(m.start_secs()), m);
        assert_eq!(Month::of(m.start_secs() - 1), m.prev());
        assert_eq!(
            "2026-10".parse::<Month>().unwrap().next().label(),
            "2026-11"
        );
    }

    #[test]
    fn instants_and_partitions() {
        assert_eq!(parse_instant("2026-10-01").unwrap(), 1_790_812_800);
        assert_eq!(
            parse_instant("2026-10-01T01:00:00Z").unwrap(),
            1_790_816_400
        );
        assert!(parse_instant("yesterday").is_err());
        assert_eq!(day(1_790_816_400), "2026-10-01");
        assert_eq!(day_hour(1_790_816_400), ("2026-10-01".into(), "01".into()));
    }
}
