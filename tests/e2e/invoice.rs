//! End to end: generate → ingest → invoice (the real binary). The finance CSV sums exactly to
//! the invoice total, the chargeback CSV to the same total, money columns are Decimal128, and
//! a rerun writes a byte-identical CSV.

use linkmeter_test_support::*;

#[test]
fn invoice_csv_sums_to_total_and_reruns_are_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "e", "--days 2 --accounts 6 --noise 1");
    ok(d, &["ingest", "--config", "e/linkmeter.toml"]);
    // September first (endpoints exist from mid-September, traffic only in October), so
    // October's summary can show movers against it.
    ok(
        d,
        &[
            "invoice",
            "--config",
            "e/linkmeter.toml",
            "--month",
            "2026-09",
        ],
    );
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
    assert!(
        out.contains("top movers against the previous month"),
        "{out}"
    );
    assert!(
        out.contains("SKIPDATA windows (AWS skipped records; the meter is incomplete there): 1"),
        "{out}"
    );
    // The query engine's peak, under the default budget.
    let peak: f64 = out
        .split("query engine memory: peak ")
        .nth(1)
        .and_then(|r| r.split(" MiB").next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no engine peak in:\n{out}"));
    assert!(peak > 0.0, "{peak}");
    assert!(peak < 512.0, "{peak}");
    assert!(
        out.contains("of a 512.0 MiB budget ([engine] memory_limit"),
        "{out}"
    );
    for reason in [
        "rejected",
        "unexpected_port",
        "unknown_endpoint",
        "outside_connection_lifetime",
    ] {
        assert!(
            out.contains(&format!("unattributed {reason}: ")),
            "{reason} missing:\n{out}"
        );
    }
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
    let sum: i64 = csv_rows(&csv1).iter().skip(1).map(|r| cents(&r[11])).sum();
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
            "SELECT CAST(SUM(amount) * 100 AS BIGINT) FROM invoice_lines WHERE month = '2026-10' AND invoice_view = 'aws'"
        ) as i64,
        sum
    );
    // Every meter is billed.
    let meters = strings(
        &query(
            &wh,
            "SELECT DISTINCT meter FROM invoice_lines WHERE month = '2026-10' ORDER BY 1",
        ),
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

    // The chargeback view re-allocates without creating or losing a cent.
    let cb =
        std::fs::read_to_string(d.join("e/warehouse/reports/month=2026-10/finance-chargeback.csv"))
            .unwrap();
    let cb_sum: i64 = csv_rows(&cb).iter().skip(1).map(|r| cents(&r[11])).sum();
    assert_eq!(cb_sum, sum);
    // Connectivity hours go to the clients; only a (cluster, auth scheme) with no client
    // connection at all stays with the owner, marked `unallocated`.
    let owner_kept = strings(&query(&wh, "SELECT DISTINCT allocation_basis FROM invoice_lines WHERE month = '2026-10' AND invoice_view = 'chargeback' AND meter = 'msk_connectivity_hours' AND account_id = '900000000001'"), 0);
    assert!(
        owner_kept.iter().all(|b| b == "unallocated"),
        "{owner_kept:?}"
    );
    let moved = scalar(&wh, "SELECT COUNT(*) FROM invoice_lines WHERE month = '2026-10' AND invoice_view = 'chargeback' AND meter = 'msk_connectivity_hours' AND allocation_basis = 'even'");
    assert!(moved > 0);
    // The FOCUS export bills the same total, in GiB (bytes_per_gb = 2^30).
    let focus =
        std::fs::read_to_string(d.join("e/warehouse/reports/month=2026-10/focus-aws.csv")).unwrap();
    let focus = csv_rows(&focus);
    let billed = focus[0].iter().position(|c| c == "BilledCost").unwrap();
    let unit = focus[0].iter().position(|c| c == "PricingUnit").unwrap();
    let focus_sum: i64 = focus[1..].iter().map(|r| cents(&r[billed])).sum();
    assert_eq!(focus_sum, sum);
    assert!(focus[1..].iter().any(|r| r[unit] == "GiB"));

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

/// Names that look like spreadsheet formulas reach the finance CSV
/// neutralized and quoted, and DuckDB's `read_csv` with its defaults (a CSV sniffer, as in a
/// spreadsheet import) reads the same 16 columns and the same total as linkmeter wrote.
#[test]
fn formula_names_are_neutralized_and_sniffers_read_the_columns() {
    let python = std::env::var("LINKMETER_TEST_PYTHON").expect(
        "LINKMETER_TEST_PYTHON is not set: run the tests with .ci/test, which installs DuckDB",
    );
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "e", "--days 1 --accounts 4 --noise 1");
    let inv = std::fs::read_to_string(d.join("e/inventory.toml")).unwrap();
    let hostile = "=HYPERLINK(\"http://x.example\",\"pay\")";
    let inv = inv
        .replace(
            "name = \"payments\"",
            &format!("name = {}", toml::Value::from(hostile)),
        )
        .replace("cost_center = \"CC-200\"", "cost_center = \"-ops\"");
    assert!(inv.contains("HYPERLINK"));
    std::fs::write(d.join("e/inventory.toml"), inv).unwrap();
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
    let total = out
        .split("total ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    let path = d.join("e/warehouse/reports/month=2026-10/finance-chargeback.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(",\"'-ops\",")
            && text.contains(",\"'=HYPERLINK(\"\"http://x.example\"\",\"\"pay\"\")\","),
        "{text}"
    );
    let rows = csv_rows(&text);
    assert!(rows.iter().all(|r| r.len() == 16));
    let script = "import duckdb, sys\n\
        cols = duckdb.sql(f\"SELECT * FROM read_csv('{sys.argv[1]}')\").columns\n\
        tot, names = duckdb.sql(f\"SELECT CAST(SUM(amount) AS DECIMAL(18,2)), string_agg(DISTINCT account_name, '|' ORDER BY account_name) FROM read_csv('{sys.argv[1]}')\").fetchone()\n\
        quote = duckdb.sql(f\"SELECT Quote FROM sniff_csv('{sys.argv[1]}')\").fetchone()[0]\n\
        print(len(cols)); print(tot); print(names); print(quote)\n";
    let run = std::process::Command::new(python)
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let got = String::from_utf8_lossy(&run.stdout).to_string();
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], "16", "{got}");
    assert_eq!(lines[1], total, "{got}");
    assert!(lines[2].contains(&format!("'{hostile}")), "{got}");
    // The sniffer settles on the double quote, as a spreadsheet import would.
    assert_eq!(lines[3], "\"", "{got}");
}
