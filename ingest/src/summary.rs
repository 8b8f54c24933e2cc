//! The run's conservation balance (DESIGN §4 rule 7): every record and every byte read is
//! attributed, unattributed, filtered, a coverage row, or quarantined, and the totals say so.

use std::collections::BTreeMap;
use std::fmt;

/// Counts of one run (or one input); merged across workers. Byte sums are `u128`: records of
/// up to 2^48 bytes each cannot wrap them, however many a hostile input holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Inputs decoded in this run.
    pub inputs_read: u64,
    /// Inputs skipped because the same content was already ingested with the same inventory.
    pub inputs_skipped: u64,
    /// Records read: every decoded record plus every record a quarantine entry stands for.
    pub records_in: u64,
    pub attributed: u64,
    pub unattributed: u64,
    pub filtered: u64,
    /// NODATA / SKIPDATA rows (no bytes).
    pub coverage: u64,
    pub quarantined: u64,
    /// Broker-metric datapoints written to `broker_metrics` (no flow bytes).
    pub metrics: u64,
    /// Bytes of every decoded traffic record, counted as read.
    pub bytes_in: u128,
    /// Bytes written to `flows` as attributed, summed over the hour shares.
    pub bytes_attributed: u128,
    /// Bytes written to `flows` as unattributed, summed over the hour shares.
    pub bytes_unattributed: u128,
    pub bytes_filtered: u128,
    /// Unattributed records and bytes per reason.
    pub by_reason: BTreeMap<String, (u64, u128)>,
    /// Rows written to `flows`.
    pub flow_rows: u64,
    /// Quarantine entries (rows) written.
    pub quarantine_rows: u64,
}

impl Tally {
    /// Adds another tally into this one.
    pub fn merge(&mut self, o: &Tally) {
        self.inputs_read += o.inputs_read;
        self.inputs_skipped += o.inputs_skipped;
        self.records_in += o.records_in;
        self.attributed += o.attributed;
        self.unattributed += o.unattributed;
        self.filtered += o.filtered;
        self.coverage += o.coverage;
        self.quarantined += o.quarantined;
        self.metrics += o.metrics;
        self.bytes_in += o.bytes_in;
        self.bytes_attributed += o.bytes_attributed;
        self.bytes_unattributed += o.bytes_unattributed;
        self.bytes_filtered += o.bytes_filtered;
        self.flow_rows += o.flow_rows;
        self.quarantine_rows += o.quarantine_rows;
        for (k, (n, b)) in &o.by_reason {
            let e = self.by_reason.entry(k.clone()).or_default();
            e.0 += n;
            e.1 += b;
        }
    }

    /// Whether records and bytes both balance exactly.
    pub fn balanced(&self) -> bool {
        let records = self.attributed
            + self.unattributed
            + self.filtered
            + self.coverage
            + self.quarantined
            + self.metrics;
        let bytes = self.bytes_attributed + self.bytes_unattributed + self.bytes_filtered;
        let by_reason: (u64, u128) = self
            .by_reason
            .values()
            .fold((0, 0), |a, v| (a.0 + v.0, a.1 + v.1));
        records == self.records_in
            && bytes == self.bytes_in
            && by_reason == (self.unattributed, self.bytes_unattributed)
    }
}

fn n(v: impl Into<u128>) -> String {
    let s = v.into().to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ok = if self.balanced() {
            "balanced"
        } else {
            "NOT BALANCED (this is a bug: please report it)"
        };
        writeln!(
            f,
            "inputs   {} read, {} unchanged and skipped",
            n(self.inputs_read),
            n(self.inputs_skipped)
        )?;
        let metrics = if self.metrics > 0 {
            format!(" + {} metric datapoints", n(self.metrics))
        } else {
            String::new()
        };
        writeln!(
            f,
            "records  {} in = {} attributed + {} unattributed + {} filtered + {} coverage + {} quarantined{metrics}  [{ok}]",
            n(self.records_in),
            n(self.attributed),
            n(self.unattributed),
            n(self.filtered),
            n(self.coverage),
            n(self.quarantined)
        )?;
        writeln!(
            f,
            "bytes    {} in = {} attributed + {} unattributed + {} filtered  [{ok}]",
            n(self.bytes_in),
            n(self.bytes_attributed),
            n(self.bytes_unattributed),
            n(self.bytes_filtered)
        )?;
        for (k, (r, b)) in &self.by_reason {
            writeln!(f, "  unattributed {k}: {} records, {} bytes", n(*r), n(*b))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(n(0u64), "0");
        assert_eq!(n(999u64), "999");
        assert_eq!(n(1000u64), "1,000");
        assert_eq!(n(1234567u64), "1,234,567");
    }

    #[test]
    fn balance_detects_a_lost_byte() {
        let mut t = Tally {
            records_in: 3,
            attributed: 1,
            filtered: 1,
            unattributed: 1,
            bytes_in: 30,
            bytes_attributed: 10,
            bytes_unattributed: 10,
            bytes_filtered: 10,
            ..Default::default()
        };
        t.by_reason.insert("rejected".into(), (1, 10));
        assert!(t.balanced());
        t.bytes_filtered = 9;
        assert!(!t.balanced());
        assert!(t.to_string().contains("NOT BALANCED"));
    }
}
