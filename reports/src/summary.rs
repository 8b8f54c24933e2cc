//! The invoice summary printed after a month close.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use linkmeter_aggregate::close::MonthClose;
use linkmeter_aggregate::invoice::Invoice;
use rust_decimal::Decimal;

use crate::write::Written;

/// `writeln!` into a String (which cannot fail).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {
        let _ = writeln!($out, $($arg)*);
    };
}

/// The invoice summary: totals per meter, the chargeback total, top movers against the
/// previous month, data quality and the largest accounts.
pub fn summary(o: &MonthClose, w: &Written, currency: &str) -> String {
    let mut out = String::new();
    let month = o.month.label();
    let inv = &o.invoice;
    outln!(
        out,
        "invoice {month} (aws view): total {} {} over {} lines; CSV {}",
        inv.total,
        currency,
        inv.lines.len(),
        w.finance_aws
    );
    let mut by_meter: BTreeMap<&str, Decimal> = BTreeMap::new();
    let mut by_account: BTreeMap<&str, Decimal> = BTreeMap::new();
    for l in &inv.lines {
        *by_meter.entry(l.meter.as_str()).or_default() += l.amount;
        *by_account.entry(l.account.as_str()).or_default() += l.amount;
    }
    for (m, a) in &by_meter {
        outln!(out, "  {m:<24} {a:>14}");
    }
    let mut top: Vec<(&str, Decimal)> = by_account.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    outln!(out,
        "  chargeback view: total {} {} (the same to the cent), owner-billed meters re-allocated to clients; CSV {}",
        o.chargeback.total, currency, w.finance_chargeback
    );
    for (m, change) in &o.adjustments {
        outln!(
            out,
            "  adjustments of closed month {m}: {change:+} {currency} (lines with allocation_basis adjustment, adjusts_month {m}; {m}'s own invoice and CSVs stay as closed)"
        );
    }
    let rec = &o.reconciliation;
    if rec.billed {
        let lines = |status: &str| {
            inv.lines
                .iter()
                .filter(|l| l.reconciled == Some(status))
                .count()
        };
        outln!(
            out,
            "  against the AWS bill ({}): {} lines matched, {} within tolerance, {} differ{}",
            if rec.provisional() {
                "provisional: no invoice id yet"
            } else {
                "final"
            },
            lines("matched"),
            lines("within_tolerance"),
            lines("differs"),
            if lines("differs") > 0 {
                format!(" (why: linkmeter reconcile --month {month})")
            } else {
                String::new()
            }
        );
    } else {
        outln!(
            out,
            "  against the AWS bill: no bill loaded for {month} yet (lines are no_bill_yet; add a source with content = \"cur2\" or \"focus\")"
        );
    }
    if !o.previous.is_empty() {
        let mut movers: Vec<(&str, Decimal)> = top_of(inv)
            .into_iter()
            .map(|(a, v)| (a, v - o.previous.get(a).copied().unwrap_or_default()))
            .collect();
        movers.sort_by(|a, b| b.1.abs().cmp(&a.1.abs()).then(a.0.cmp(b.0)));
        outln!(out, "  top movers against the previous month:");
        for (acct, delta) in movers.iter().take(5) {
            outln!(
                out,
                "    {acct} {:<16} {:>+14}",
                o.accounts.get(*acct).map(|a| a.0.as_str()).unwrap_or(""),
                delta
            );
        }
    }
    let q = &o.quality;
    outln!(out, "  data quality:");
    for (reason, n, bytes) in &q.unattributed {
        outln!(
            out,
            "    unattributed {reason}: {n} rows, {bytes} bytes (kept in flows, not billed)"
        );
    }
    outln!(
        out,
        "    SKIPDATA windows (AWS skipped records; the meter is incomplete there): {}",
        q.skipdata_windows
    );
    outln!(
        out,
        "    provisioned endpoint-ENI hours with no flow-log record at all: {} of {}",
        q.uncovered_endpoint_hours,
        q.endpoint_hours
    );
    if q.reconciliation.is_empty() {
        outln!(out, "    flow logs against broker metrics: no broker metrics for this month (ingest a metric stream to reconcile)");
    }
    for r in &q.reconciliation {
        outln!(out,
            "    flow logs / broker {} bytes, {} {}: typical ratio {:.3} over {} hours; {} hours off by more than the tolerance{}",
            if r.direction == "to_cluster" { "in" } else { "out" },
            r.cluster,
            r.direction,
            r.median_ratio,
            r.hours,
            r.flagged.len(),
            if r.without_metrics > 0 {
                format!(", {} hours with flows but no metrics", r.without_metrics)
            } else {
                String::new()
            }
        );
        for (hour, f, b, d) in r.flagged.iter().take(3) {
            outln!(
                out,
                "      {hour}: flow {f} bytes, broker {b} bytes ({:+.0} % from typical){}",
                d * 100.0,
                if *f == 0 {
                    " — flow logs missing?"
                } else {
                    ""
                }
            );
        }
    }
    outln!(out, "  largest accounts (aws view):");
    for (acct, amount) in top.iter().take(5) {
        let name = o.accounts.get(*acct).map(|a| a.0.as_str()).unwrap_or("");
        outln!(out, "    {acct} {name:<16} {amount:>14}");
    }
    let budget = match o.rollups.memory_limit {
        Some(l) => format!(
            "of a {} budget ([engine] memory_limit; operators spill beyond it)",
            mib(l)
        ),
        None => "(no budget set: [engine] memory_limit)".to_string(),
    };
    match &o.rollups.cluster {
        Some(url) => {
            outln!(
                out,
                "  query engine: the Ballista cluster at {url} (memory is the executors')"
            );
        }
        None => {
            outln!(
                out,
                "  query engine memory: peak {} {budget}",
                mib(o.rollups.memory_peak)
            );
        }
    }
    let r = o.rollups.summaries;
    if r.summed + r.removed > 0 {
        outln!(
            out,
            "  hourly summaries brought level first: {} written from their files, {} stale ones dropped",
            r.summed,
            r.removed
        );
    }
    out
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

fn top_of(inv: &Invoice) -> BTreeMap<&str, Decimal> {
    let mut m: BTreeMap<&str, Decimal> = BTreeMap::new();
    for l in &inv.lines {
        *m.entry(l.account.as_str()).or_default() += l.amount;
    }
    m
}
