//! `linkmeter close`: a closed month stays as sent. A flow-log file held back until after
//! October is closed, then ingested: October's CSVs are byte-identical, `invoice` refuses
//! October, `run` skips it, and November carries adjustment lines that equal, per line and to the
//! cent, the difference between October as closed and October invoiced with every file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use linkmeter_test_support::*;
use rust_decimal::Decimal;

fn month_files(wh: &Path, month: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = wh.join(format!("reports/month={month}"));
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// (view, account, meter, cluster, auth, endpoint) → amount, of one month's invoice lines.
fn lines(wh: &Path, filter: &str) -> BTreeMap<Vec<String>, Decimal> {
    let b = query(
        wh,
        &format!("SELECT invoice_view, account_id, meter, \"cluster\", auth_scheme, endpoint_id, CAST(SUM(amount) AS VARCHAR) FROM invoice_lines WHERE {filter} GROUP BY 1, 2, 3, 4, 5, 6"),
    );
    let cols: Vec<Vec<String>> = (0..7).map(|i| strings(&b, i)).collect();
    (0..cols[0].len())
        .map(|k| {
            (
                (0..6).map(|i| cols[i][k].clone()).collect(),
                cols[6][k].parse().unwrap(),
            )
        })
        .collect()
}

/// The biggest flow-log file of October 2nd: it holds MSK traffic.
fn biggest_file_of_the_2nd(estate: &Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut stack = vec![estate.join("flowlogs")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains("/2026/10/02/") {
                let n = std::fs::metadata(&p).unwrap().len();
                if best.as_ref().is_none_or(|b| n > b.0) {
                    best = Some((n, p));
                }
            }
        }
    }
    best.unwrap().1
}

#[test]
fn a_closed_month_stays_as_sent_and_late_data_becomes_adjustments() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let gen = "--days 2 --accounts 4 --noise 1";
    generate(d, "e", gen);
    generate(d, "full", gen);
    let cfg = "e/linkmeter.toml";
    let late = biggest_file_of_the_2nd(&d.join("e"));
    let parked = d.join("late.log.gz");
    std::fs::rename(&late, &parked).unwrap();
    ok(d, &["ingest", "--config", cfg]);
    let out = ok(
        d,
        &[
            "close", "--config", cfg, "--month", "2026-10", "--by", "tester",
        ],
    );
    assert!(out.contains("closed 2026-10 (by tester)"), "{out}");
    let wh = d.join("e/warehouse");
    let closed_files = month_files(&wh, "2026-10");
    assert!(closed_files.contains_key("finance-aws.csv") && closed_files.len() >= 5);
    let closed_lines = lines(&wh, "month = '2026-10'");
    // Closing again changes nothing; invoicing a closed month is refused.
    let again = ok(d, &["close", "--config", cfg, "--month", "2026-10"]);
    assert!(again.contains("already closed (by tester"), "{again}");
    let refused = linkmeter(d, &["invoice", "--config", cfg, "--month", "2026-10"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("was closed by tester"));

    // November invoiced before anything changed: October needs no adjustment at all.
    ok(d, &["invoice", "--config", cfg, "--month", "2026-11"]);
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM invoice_lines WHERE adjusts_month IS NOT NULL"
        ),
        0
    );

    // The late file arrives.
    std::fs::rename(&parked, &late).unwrap();
    ok(d, &["ingest", "--config", cfg]);
    let out = ok(d, &["run", "--config", cfg, "--month", "2026-11"]);
    assert!(
        out.contains("2026-10 is closed; not invoiced again"),
        "{out}"
    );
    assert!(
        out.contains("adjustments of closed month 2026-10: +"),
        "{out}"
    );
    assert_eq!(
        month_files(&wh, "2026-10"),
        closed_files,
        "October's reports are as closed"
    );
    assert_eq!(lines(&wh, "month = '2026-10'"), closed_lines);

    // October with every file from the start, in a warehouse of its own.
    ok(d, &["ingest", "--config", "full/linkmeter.toml"]);
    ok(
        d,
        &[
            "invoice",
            "--config",
            "full/linkmeter.toml",
            "--month",
            "2026-10",
        ],
    );
    let full = lines(&d.join("full/warehouse"), "month = '2026-10'");
    let adj = lines(&wh, "month = '2026-11' AND adjusts_month = '2026-10'");
    assert!(!adj.is_empty());
    let keys: std::collections::BTreeSet<&Vec<String>> =
        full.keys().chain(closed_lines.keys()).collect();
    for k in keys {
        let want = full.get(k).copied().unwrap_or_default()
            - closed_lines.get(k).copied().unwrap_or_default();
        assert_eq!(adj.get(k).copied().unwrap_or_default(), want, "{k:?}");
    }
    for view in ["aws", "chargeback"] {
        let sum = |m: &BTreeMap<Vec<String>, Decimal>| -> Decimal {
            m.iter()
                .filter(|(k, _)| k[0] == view)
                .map(|(_, v)| *v)
                .sum()
        };
        let change = sum(&full) - sum(&closed_lines);
        assert!(change > Decimal::ZERO, "{view}: the late file adds cost");
        assert_eq!(sum(&adj), change, "{view}");
    }
    // The adjustment lines are in November's CSVs, marked, and the CSV sums to the invoice.
    let csv = std::fs::read_to_string(wh.join("reports/month=2026-11/finance-aws.csv")).unwrap();
    let rows = csv_rows(&csv);
    let col = |n: &str| rows[0].iter().position(|c| c == n).unwrap();
    let marked: Decimal = rows[1..]
        .iter()
        .filter(|r| r[col("adjusts_month")] == "2026-10")
        .map(|r| r[col("amount")].parse::<Decimal>().unwrap())
        .sum();
    let aws_change: Decimal = adj
        .iter()
        .filter(|(k, _)| k[0] == "aws")
        .map(|(_, v)| *v)
        .sum();
    assert_eq!(marked, aws_change);
    let total: Decimal = rows[1..]
        .iter()
        .map(|r| r[col("amount")].parse::<Decimal>().unwrap())
        .sum();
    let nov: Decimal = lines(&wh, "month = '2026-11' AND invoice_view = 'aws'")
        .values()
        .sum();
    assert_eq!(total, nov);
    let basis = strings(
        &query(
            &wh,
            "SELECT DISTINCT allocation_basis FROM invoice_lines WHERE adjusts_month IS NOT NULL",
        ),
        0,
    );
    assert_eq!(basis, vec!["adjustment"]);
    let focus = std::fs::read_to_string(wh.join("reports/month=2026-11/focus-aws.csv")).unwrap();
    let f = csv_rows(&focus);
    let fc = |n: &str| f[0].iter().position(|c| c == n).unwrap();
    let corr: Vec<&Vec<String>> = f[1..]
        .iter()
        .filter(|r| r[fc("x_AdjustsMonth")] == "2026-10")
        .collect();
    assert!(!corr.is_empty());
    for r in corr {
        assert_eq!(r[fc("ChargeClass")], "Correction");
        assert_eq!(r[fc("ChargePeriodStart")], "2026-10-01T00:00:00Z");
    }
    // Re-invoicing November restates it with the same adjustments (never twice).
    ok(d, &["invoice", "--config", cfg, "--month", "2026-11"]);
    assert_eq!(
        lines(&wh, "month = '2026-11' AND adjusts_month = '2026-10'"),
        adj
    );
}
