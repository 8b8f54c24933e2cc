//! The warehouse opens natively in other engines: DuckDB (`delta_scan`) and pyarrow (the
//! `deltalake` package) read every table of a closed month's warehouse and agree with
//! `linkmeter sql` on each table's rows and byte sums (`tests/delta_readers.py`).

use std::collections::BTreeMap;

use linkmeter_test_support::*;

/// Every table with a column worth summing (a byte count, where it has one).
const TABLES: &[(&str, Option<&str>)] = &[
    ("flows", Some("bytes")),
    ("coverage", None),
    ("broker_metrics", Some("bytes")),
    ("quarantine", Some("records")),
    ("inputs", Some("size")),
    ("runs", None),
    ("accounts", None),
    ("clusters", None),
    ("cluster_connectivity", None),
    ("connections", None),
    ("endpoint_enis", None),
    ("usage_hourly", Some("bytes")),
    ("endpoint_hours", None),
    ("connectivity_hours", None),
    ("invoice_lines", None),
];

#[test]
fn duckdb_and_pyarrow_agree_with_linkmeter_sql_on_every_table() {
    let python = std::env::var("LINKMETER_TEST_PYTHON").expect(
        "LINKMETER_TEST_PYTHON is not set: run the tests with .ci/test, which installs DuckDB, its delta extension and pyarrow",
    );
    let (_tmp, e) = ingested_estate();
    ok(&e, &["invoice", "--month", "2026-10"]);
    let wh = e.join("warehouse");
    let mut ours = BTreeMap::new();
    let mut specs = Vec::new();
    for (t, col) in TABLES {
        let sum = col
            .map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT)"))
            .unwrap_or_else(|| "CAST(0 AS BIGINT)".into());
        let b = query(
            &wh,
            &format!("SELECT CAST(COUNT(*) AS BIGINT), {sum} FROM {t}"),
        );
        ours.insert(t.to_string(), (u64s(&b, 0)[0], u64s(&b, 1)[0]));
        specs.push(match col {
            Some(c) => format!("{t}:{c}"),
            None => t.to_string(),
        });
    }
    assert!(
        ours["flows"].0 > 0 && ours["invoice_lines"].0 > 0,
        "{ours:?}"
    );
    let out = std::process::Command::new(python)
        .arg(root().join("tests/delta_readers.py"))
        .arg(&wh)
        .args(&specs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (t, (rows, sum)) in &ours {
        for engine in ["duckdb", "pyarrow"] {
            let v = &theirs[t][engine];
            assert_eq!(
                (v[0].as_u64(), v[1].as_u64()),
                (Some(*rows), Some(*sum)),
                "{engine} reads {t} differently from linkmeter sql"
            );
        }
    }
}
