//! End to end: generate → ingest → invoice (the real binary). The finance CSV sums exactly to
//! the invoice total, the chargeback CSV to the same total, money columns are Decimal128, and
//! a rerun writes a byte-identical CSV.

mod common;

use common::*;

#[test]
fn invoice_csv_sums_to_total_and_reruns_are_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(
        d,
        &[
            "generate",
            "--out",
            "e",
            "--days",
            "2",
            "--accounts",
            "6",
            "--noise",
            "1",
        ],
    );
    ok(d, &["ingest", "--config", "e/linkmeter.toml"]);
    let out = ok(
        d,
        &[
            "invoice",
            "--config",
            "e/linkmeter.toml",
            "--month",
            "2026-10",
        ],
    );
    let total: String = out
        .split("total ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let csv_path = d.join("e/warehouse/reports/month=2026-10/finance-aws.csv");
    let csv1 = std::fs::read_to_string(&csv_path).unwrap();
    // Sum the amount column in integer cents: exact, no floating point.
    let cents = |s: &str| -> i64 {
        let (a, b) = s.split_once('.').unwrap();
        a.parse::<i64>().unwrap() * 100 + b.parse::<i64>().unwrap()
    };
    let sum: i64 = csv1
        .lines()
        .skip(1)
        .map(|l| cents(l.split(',').nth(11).unwrap()))
        .sum();
    assert_eq!(
        sum,
        cents(&total),
        "CSV rows sum to the printed total {total}"
    );
    let wh = d.join("e/warehouse");
    let types = strings(&query(&wh, "SELECT DISTINCT arrow_typeof(amount), arrow_typeof(unit_price), arrow_typeof(quantity) FROM invoice_lines"), 0);
    assert_eq!(types, vec!["Decimal128(38, 2)"]);
    assert_eq!(
        scalar(
            &wh,
            "SELECT CAST(SUM(amount) * 100 AS BIGINT) FROM invoice_lines WHERE view = 'aws'"
        ) as i64,
        sum
    );
    // Every meter is billed, and the deleted connection's endpoint hours stop at its deletion.
    let meters = strings(
        &query(&wh, "SELECT DISTINCT meter FROM invoice_lines ORDER BY 1"),
        0,
    );
    assert_eq!(
        meters,
        vec![
            "endpoint_az_hours",
            "endpoint_gb",
            "msk_connectivity_gb",
            "msk_connectivity_hours"
        ]
    );

    ok(
        d,
        &[
            "invoice",
            "--config",
            "e/linkmeter.toml",
            "--month",
            "2026-10",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(&csv_path).unwrap(),
        csv1,
        "byte-identical on rerun"
    );

    // No price book in the config: a configuration error naming the fix.
    let cfg = std::fs::read_to_string(d.join("e/linkmeter.toml"))
        .unwrap()
        .replace("prices = \"prices.toml\"\n", "");
    std::fs::write(d.join("e/noprices.toml"), cfg).unwrap();
    let out = linkmeter(
        d,
        &[
            "invoice",
            "--config",
            "e/noprices.toml",
            "--month",
            "2026-10",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("prices = \\\"prices.toml\\\"")
            || String::from_utf8_lossy(&out.stderr).contains("prices = \"prices.toml\"")
    );
    let out = linkmeter(
        d,
        &[
            "invoice",
            "--config",
            "e/linkmeter.toml",
            "--month",
            "October",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM"));
}
