//! Splitting a flow record's bytes and packets across clock hours (DESIGN §4 rule 4).
//!
//! A record covers the inclusive seconds `start..=end`. Each clock hour gets a share in
//! proportion to its seconds, rounded down, and the last hour takes the remainder, so the
//! parts always sum exactly to the record.

/// Seconds in a clock hour.
pub const HOUR: i64 = 3600;

/// One clock hour's share of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourShare {
    /// Start of the clock hour, Unix seconds (a multiple of 3600).
    pub hour: i64,
    /// Seconds of the record that fall in this hour.
    pub seconds: i64,
    /// Bytes attributed to this hour.
    pub bytes: u64,
    /// Packets attributed to this hour.
    pub packets: u64,
}

/// First second of the clock hour holding `t` (Unix seconds, works before 1970 too).
pub fn hour_floor(t: i64) -> i64 {
    t.div_euclid(HOUR) * HOUR
}

/// Splits `bytes` and `packets` of a record spanning `start..=end` across clock hours.
///
/// Requires `start <= end` (decoders reject the other case). Calls `f` once per hour in time
/// order; nothing is allocated, because this runs for every relevant record.
pub fn split_hours(start: i64, end: i64, bytes: u64, packets: u64, mut f: impl FnMut(HourShare)) {
    debug_assert!(start <= end);
    let first = hour_floor(start);
    let last = hour_floor(end);
    if first == last {
        f(HourShare {
            hour: first,
            seconds: end - start + 1,
            bytes,
            packets,
        });
        return;
    }
    let total = (end - start + 1) as u128;
    let (mut given_b, mut given_p) = (0u64, 0u64);
    let mut h = first;
    while h < last {
        let from = start.max(h);
        let to = (h + HOUR - 1).min(end);
        let secs = (to - from + 1) as u128;
        // u128 keeps bytes * seconds exact for any u64 bytes and any span.
        let b = (bytes as u128 * secs / total) as u64;
        let p = (packets as u128 * secs / total) as u64;
        given_b += b;
        given_p += p;
        f(HourShare {
            hour: h,
            seconds: secs as i64,
            bytes: b,
            packets: p,
        });
        h += HOUR;
    }
    f(HourShare {
        hour: last,
        seconds: end - last + 1,
        bytes: bytes - given_b,
        packets: packets - given_p,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn collect(start: i64, end: i64, bytes: u64, packets: u64) -> Vec<HourShare> {
        let mut v = Vec::new();
        split_hours(start, end, bytes, packets, |s| v.push(s));
        v
    }

    #[test]
    fn single_hour_keeps_everything() {
        let v = collect(7200 + 10, 7200 + 70, 4249, 20);
        assert_eq!(
            v,
            vec![HourShare {
                hour: 7200,
                seconds: 61,
                bytes: 4249,
                packets: 20
            }]
        );
    }

    #[test]
    fn straddling_record_is_split_by_seconds_with_remainder_last() {
        // 10 seconds in hour 0 (3590..=3599), 11 in hour 1 (3600..=3610): 21 seconds.
        let v = collect(3590, 3610, 100, 7);
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].hour, v[0].seconds, v[0].bytes, v[0].packets),
            (0, 10, 47, 3)
        );
        assert_eq!(
            (v[1].hour, v[1].seconds, v[1].bytes, v[1].packets),
            (3600, 11, 53, 4)
        );
    }

    #[test]
    fn three_hours() {
        let v = collect(3599, 7200, 3, 3);
        let hours: Vec<i64> = v.iter().map(|s| s.hour).collect();
        assert_eq!(hours, vec![0, 3600, 7200]);
        assert_eq!(v.iter().map(|s| s.seconds).sum::<i64>(), 3602);
        assert_eq!(v.iter().map(|s| s.bytes).sum::<u64>(), 3);
    }

    #[test]
    fn negative_times_floor_correctly() {
        assert_eq!(hour_floor(-1), -3600);
        assert_eq!(hour_floor(0), 0);
    }

    proptest! {
        #[test]
        fn parts_conserve_bytes_and_packets(
            start in -10_000_000i64..4_000_000_000i64,
            len in 0i64..200_000,
            bytes in any::<u64>(),
            packets in any::<u64>(),
        ) {
            let end = start + len;
            let v = collect(start, end, bytes, packets);
            let sb: u128 = v.iter().map(|s| s.bytes as u128).sum();
            let sp: u128 = v.iter().map(|s| s.packets as u128).sum();
            prop_assert_eq!(sb, bytes as u128);
            prop_assert_eq!(sp, packets as u128);
            prop_assert_eq!(v.iter().map(|s| s.seconds).sum::<i64>(), len + 1);
            prop_assert_eq!(v.first().unwrap().hour, hour_floor(start));
            prop_assert_eq!(v.last().unwrap().hour, hour_floor(end));
            for w in v.windows(2) { prop_assert_eq!(w[1].hour - w[0].hour, HOUR); }
            // No hour gets more than its proportional share plus the remainder.
            for s in &v[..v.len() - 1] {
                let fair = bytes as u128 * s.seconds as u128 / (len + 1) as u128;
                prop_assert_eq!(s.bytes as u128, fair);
            }
        }
    }
}
