//! AWS's flow-log key layouts (`aws-facts.md` §3.4): the time window a key or key prefix
//! covers, so listing can skip whole days outside `--since/--until`, and the shard of a key.
//!
//! Layouts understood, under any bucket prefix:
//! - `AWSLogs/{account}/vpcflowlogs/{region}/{yyyy}/{mm}/{dd}/[{hh}/]`
//! - `AWSLogs/aws-account-id={account}/aws-service=vpcflowlogs/aws-region={region}/year={yyyy}/month={mm}/day={dd}/[hour={hh}/]`
//!
//! and the file name's `_{YYYYMMDD}T{HHmm}Z_` stamp (the start of the 5-minute window whose
//! records end in it).

use chrono::NaiveDate;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// A half-open time window in Unix seconds.
pub type Window = (i64, i64);

fn day_start(y: i32, m: u32, d: u32) -> Option<i64> {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
}

fn num(seg: &str, hive: &str, digits: usize) -> Option<u32> {
    let v = seg.strip_prefix(hive).unwrap_or(seg);
    if v.len() == digits && v.bytes().all(|b| b.is_ascii_digit()) {
        v.parse().ok()
    } else {
        None
    }
}

/// The window the date/hour directories of a key or prefix cover, when it follows one of the
/// layouts and names at least a year: `…/2026/` is that year, `…/2026/10/01/13/` that hour.
pub fn prefix_window(key: &str) -> Option<Window> {
    let segs: Vec<&str> = key.split('/').collect();
    let at = segs
        .iter()
        .position(|s| *s == "vpcflowlogs" || *s == "aws-service=vpcflowlogs")?;
    // After the service: region, then year, month, day, hour.
    let hive = segs[at].starts_with("aws-service=");
    let p = |k: &'static str| if hive { k } else { "" };
    let mut parts = segs
        .get(at + 2..)
        .unwrap_or_default()
        .iter()
        .take_while(|s| !s.is_empty());
    let y = num(parts.next()?, p("year="), 4)? as i32;
    let Some(m) = parts.next().and_then(|s| num(s, p("month="), 2)) else {
        let s = day_start(y, 1, 1)?;
        return Some((s, day_start(y + 1, 1, 1)?));
    };
    let Some(d) = parts.next().and_then(|s| num(s, p("day="), 2)) else {
        let s = day_start(y, m, 1)?;
        let e = if m == 12 {
            day_start(y + 1, 1, 1)?
        } else {
            day_start(y, m + 1, 1)?
        };
        return Some((s, e));
    };
    let s = day_start(y, m, d)?;
    match parts.next().and_then(|s| num(s, p("hour="), 2)) {
        Some(h) if h < 24 => Some((s + h as i64 * 3600, s + (h as i64 + 1) * 3600)),
        _ => Some((s, s + DAY)),
    }
}

/// The time in an AWS flow-log file name (`…_20261001T1305Z_…`), in Unix seconds.
pub fn file_time(key: &str) -> Option<i64> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let b = name.as_bytes();
    (0..b.len().saturating_sub(13)).find_map(|i| {
        let w = &b[i..i + 14];
        let digits = |r: std::ops::Range<usize>| w[r].iter().all(u8::is_ascii_digit);
        if w[8] != b'T' || w[13] != b'Z' || !digits(0..8) || !digits(9..13) {
            return None;
        }
        let s = std::str::from_utf8(w).ok()?;
        let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
        let day = day_start(n(0..4)? as i32, n(4..6)?, n(6..8)?)?;
        let (h, mi) = (n(9..11)?, n(11..13)?);
        (h < 24 && mi < 60).then(|| day + h as i64 * 3600 + mi as i64 * 60)
    })
}

/// Whether an object with this key belongs in `[since, until)`: by the file name's time when
/// it has one, else by the window of its date directories; keys with neither are kept (a
/// filter that cannot tell must not lose data).
pub fn key_in(key: &str, range: Window) -> bool {
    if let Some(t) = file_time(key) {
        return range.0 <= t && t < range.1;
    }
    match prefix_window(key) {
        Some((s, e)) => s < range.1 && range.0 < e,
        None => true,
    }
}

/// Which of `n` shards a key belongs to (a stable hash, so every task agrees).
pub fn shard_of(key: &str, n: u32) -> u32 {
    (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % n.max(1) as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OCT1: i64 = 1_790_812_800; // 2026-10-01T00:00:00Z

    #[test]
    fn windows_of_each_layout() {
        let plain = "logs/AWSLogs/123456789012/vpcflowlogs/us-east-1/";
        assert_eq!(prefix_window(plain), None);
        assert_eq!(
            prefix_window(&format!("{plain}2026/10/01/")),
            Some((OCT1, OCT1 + DAY))
        );
        assert_eq!(
            prefix_window(&format!("{plain}2026/10/01/13/")),
            Some((OCT1 + 13 * 3600, OCT1 + 14 * 3600))
        );
        assert_eq!(
            prefix_window(&format!("{plain}2026/10/")),
            Some((OCT1, OCT1 + 31 * DAY))
        );
        assert_eq!(
            prefix_window(&format!("{plain}2026/12/")).map(|w| w.1 - w.0),
            Some(31 * DAY)
        );
        let hive =
            "AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/";
        assert_eq!(
            prefix_window(&format!("{hive}year=2026/month=10/day=01/hour=13/x.log.gz")),
            Some((OCT1 + 13 * 3600, OCT1 + 14 * 3600))
        );
        assert_eq!(
            prefix_window(&format!("{hive}year=2026/month=10/day=01/")),
            Some((OCT1, OCT1 + DAY))
        );
        // A plain layout never reads hive names and vice versa.
        assert_eq!(prefix_window(&format!("{plain}year=2026/")), None);
        assert_eq!(prefix_window("x/AWSLogs/1/vpcflowlogs"), None);
        // Not a date: no window, so nothing is pruned by it.
        assert_eq!(
            prefix_window("AWSLogs/1/vpcflowlogs/us-east-1/2026/13/"),
            None
        );
    }

    #[test]
    fn file_name_time_and_range_filter() {
        let k = "AWSLogs/123456789012/vpcflowlogs/us-east-1/2026/10/01/123456789012_vpcflowlogs_us-east-1_fl-1234abcd_20261001T1620Z_fe123456.log.gz";
        assert_eq!(file_time(k), Some(OCT1 + 16 * 3600 + 20 * 60));
        assert!(key_in(k, (OCT1, OCT1 + DAY)));
        assert!(!key_in(k, (OCT1 + 17 * 3600, OCT1 + DAY)));
        assert!(!key_in(k, (OCT1, OCT1 + 16 * 3600 + 20 * 60)));
        assert!(key_in("custom/export.log.gz", (0, 1)));
        assert_eq!(file_time("x_20261301T1620Z_y"), None);
    }

    proptest! {
        #[test]
        fn shards_partition_keys(keys in proptest::collection::vec("[a-z0-9/]{1,40}", 1..50), n in 1u32..9) {
            for k in &keys {
                let s = shard_of(k, n);
                prop_assert!(s < n);
                prop_assert_eq!(s, shard_of(k, n));
            }
        }

        #[test]
        fn an_hour_prefix_lies_inside_its_day(d in 0i64..3000, h in 0i64..24) {
            let t = OCT1 + d * DAY;
            let day = chrono::DateTime::from_timestamp(t, 0).unwrap().format("%Y/%m/%d").to_string();
            let base = format!("AWSLogs/1/vpcflowlogs/r/{day}/");
            let (ds, de) = prefix_window(&base).unwrap();
            let (hs, he) = prefix_window(&format!("{base}{h:02}/")).unwrap();
            prop_assert_eq!((ds, de), (t, t + DAY));
            prop_assert!(ds <= hs && he <= de && he - hs == 3600);
        }
    }
}
