//! The reconciliation's outputs: `reports/month=M/reconcile.csv` (every comparison) and the
//! text summary `linkmeter reconcile` prints (what differs, and why).

use std::fmt::Write;

use linkmeter_aggregate::reconcile::{Reconciliation, Status};
use linkmeter_warehouse::csv_out::CsvOut;

/// The CSV header.
pub const HEADER: &[&str] = &[
    "period",
    "account_id",
    "meter",
    "resource",
    "measure",
    "computed",
    "billed",
    "difference",
    "status",
    "reason",
];

/// Every comparison as CSV.
pub fn csv(r: &Reconciliation) -> String {
    let mut out = CsvOut::new();
    out.header(HEADER);
    for row in &r.rows {
        out.value(&row.period)
            .text(&row.account)
            .value(&row.meter)
            .text(&row.resource)
            .value(row.measure)
            .value(&row.computed.normalize().to_string())
            .value(&row.billed.normalize().to_string())
            .value(&(row.computed - row.billed).normalize().to_string())
            .value(row.status.as_str())
            .text(&row.reason)
            .end_row();
    }
    out.finish()
}

/// The summary: the bill's state, counts per status, then each row that is not matched.
pub fn summary(r: &Reconciliation, month: &str, csv_path: &str) -> String {
    let mut s = String::new();
    if !r.billed {
        let _ = writeln!(s, "reconcile {month}: no bill lines for this billing period yet (add a source with content = \"cur2\" or \"focus\" and ingest); every line is no_bill_yet");
        return s;
    }
    let state = if r.provisional() {
        "provisional (no invoice id yet: AWS may still change it)".to_string()
    } else {
        format!(
            "final (invoice {})",
            r.invoice_ids.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    };
    let _ = writeln!(s, "reconcile {month} against the AWS bill: {state}");
    let counts = r.counts();
    let _ = writeln!(
        s,
        "  {} comparisons: {}",
        r.rows.len(),
        counts
            .iter()
            .map(|(k, v)| format!("{v} {}", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Rows of one cause (an endpoint missing all month) are told once, with their days.
    type Group = (Vec<String>, rust_decimal::Decimal, rust_decimal::Decimal);
    let mut groups: std::collections::BTreeMap<(&str, &str, &str, &str, &str), Group> =
        Default::default();
    for row in r.rows.iter().filter(|x| x.status == Status::Differs) {
        let g = groups
            .entry((
                row.measure,
                &row.account,
                &row.meter,
                &row.resource,
                &row.reason,
            ))
            .or_default();
        g.0.push(row.period.clone());
        g.1 += row.computed;
        g.2 += row.billed;
    }
    for ((measure, account, meter, resource, reason), (periods, computed, billed)) in &groups {
        let when = match periods.as_slice() {
            [one] => one.clone(),
            [first, .., last] => format!("{} days {first} to {last}", periods.len()),
            [] => String::new(),
        };
        let _ = writeln!(
            s,
            "  DIFFERS {when} {account} {meter} {resource} {measure}: computed {} billed {}: {reason}",
            computed.round_dp(6).normalize(),
            billed.round_dp(6).normalize(),
        );
    }
    for (u, n) in &r.unmetered {
        let _ = writeln!(
            s,
            "  not compared: {n} bill lines of usage type {u} (no linkmeter meter)"
        );
    }
    let _ = writeln!(s, "  every comparison: {csv_path}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkmeter_aggregate::reconcile::Row;
    use rust_decimal::Decimal;

    #[test]
    fn rows_and_reasons_reach_the_csv_and_the_summary() {
        let row = |status, reason: &str| Row {
            period: "2026-10-05".into(),
            account: "210000000000".into(),
            meter: "endpoint_gb".into(),
            resource: "vpce-1".into(),
            measure: "quantity",
            computed: Decimal::new(15, 1),
            billed: Decimal::new(20, 1),
            status,
            reason: reason.into(),
        };
        let mut r = Reconciliation {
            rows: vec![
                row(Status::Matched, ""),
                row(Status::Differs, "no flow logs, that day"),
            ],
            billed: true,
            ..Default::default()
        };
        let text = csv(&r);
        assert!(text.starts_with("period,account_id,"));
        assert!(
            text.contains(",1.5,2,-0.5,differs,\"no flow logs, that day\"\n"),
            "{text}"
        );
        let sum = summary(&r, "2026-10", "x.csv");
        assert!(sum.contains("provisional"));
        assert!(
            sum.contains("1 differs") && sum.contains("1 matched"),
            "{sum}"
        );
        assert!(sum.contains("DIFFERS 2026-10-05 210000000000 endpoint_gb vpce-1 quantity: computed 1.5 billed 2: no flow logs"), "{sum}");
        r.invoice_ids.insert("INV-1".into());
        assert!(summary(&r, "2026-10", "x.csv").contains("final (invoice INV-1)"));
    }
}
