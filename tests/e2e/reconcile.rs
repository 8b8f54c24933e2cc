//! `linkmeter reconcile` against the bill the generator writes for its estate (a CUR 2.0 export
//! and the same lines as FOCUS), computed from the inventory and the ground truth, with three
//! planted differences: reconcile finds each of them, with its reason, and nothing else. Reruns
//! do not read an unchanged bill again; a broken bill file is named and replaces nothing.

use std::collections::BTreeSet;

use linkmeter_test_support::*;

fn reconcile_csv(d: &std::path::Path, cfg: &str) -> (String, Vec<Vec<String>>) {
    let out = ok(d, &["reconcile", "--config", cfg, "--month", "2026-10"]);
    let text =
        std::fs::read_to_string(d.join("e/warehouse/reports/month=2026-10/reconcile.csv")).unwrap();
    (out, csv_rows(&text))
}

#[test]
fn planted_bill_differences_are_found_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "e", "--days 2 --accounts 4 --noise 1");
    let gen: toml::Table =
        toml::from_str(&std::fs::read_to_string(d.join("e/generated.toml")).unwrap()).unwrap();
    let p = gen["planted"].as_table().unwrap();
    let s = |k: &str| p[k].as_str().unwrap().to_string();
    let out = ok(d, &["ingest", "--config", "e/linkmeter.toml"]);
    assert!(out.contains("billing period 2026-10: "), "{out}");
    assert!(
        out.contains("Kafka.PrivateConnectivity-Bytes")
            && out.contains("taken as msk_connectivity_gb"),
        "the undocumented MSK per-GB usage type is listed:\n{out}"
    );
    // Before the month is invoiced there is nothing to hold against the bill.
    let early = linkmeter(
        d,
        &[
            "reconcile",
            "--config",
            "e/linkmeter.toml",
            "--month",
            "2026-10",
        ],
    );
    assert_eq!(early.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&early.stderr).contains("linkmeter invoice --month 2026-10"));
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
    // Every invoice line carries its status against the bill, in the table and the CSVs.
    let wh = d.join("e/warehouse");
    let status_of = |endpoint: &str| {
        strings(
            &query(
                &wh,
                &format!("SELECT DISTINCT reconciled FROM invoice_lines WHERE month = '2026-10' AND endpoint_id = '{endpoint}' AND meter = 'endpoint_az_hours'"),
            ),
            0,
        )
    };
    assert_eq!(status_of(&s("rate_endpoint")), vec!["differs"]);
    let all = strings(
        &query(
            &wh,
            "SELECT DISTINCT reconciled FROM invoice_lines WHERE month = '2026-10' ORDER BY 1",
        ),
        0,
    );
    assert_eq!(all, vec!["differs", "matched"]);
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM invoice_lines WHERE month = '2026-10' AND provisional"
        ),
        0,
        "the bill has its invoice id"
    );
    let fin = csv_rows(
        &std::fs::read_to_string(wh.join("reports/month=2026-10/finance-chargeback.csv")).unwrap(),
    );
    let rc = fin[0].iter().position(|c| c == "reconciled").unwrap();
    assert!(fin[1..]
        .iter()
        .all(|r| r[rc] == "matched" || r[rc] == "differs"));
    let html = std::fs::read_to_string(wh.join("reports/month=2026-10/report.html")).unwrap();
    assert!(html.contains("Against the AWS bill") && html.contains("rate differs"));
    // A month the bill does not cover yet: every line no_bill_yet, provisional.
    ok(
        d,
        &[
            "invoice",
            "--config",
            "e/linkmeter.toml",
            "--month",
            "2026-11",
        ],
    );
    let nov = strings(
        &query(
            &wh,
            "SELECT DISTINCT reconciled, provisional FROM invoice_lines WHERE month = '2026-11'",
        ),
        0,
    );
    assert_eq!(nov, vec!["no_bill_yet"]);
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM invoice_lines WHERE month = '2026-11' AND NOT provisional"
        ),
        0
    );
    let (out, rows) = reconcile_csv(d, "e/linkmeter.toml");
    assert!(out.contains("final (invoice GEN-2026-10)"), "{out}");
    let h = &rows[0];
    let col = |n: &str| h.iter().position(|c| c == n).unwrap();
    let (period, meter, resource, measure, status, reason) = (
        col("period"),
        col("meter"),
        col("resource"),
        col("measure"),
        col("status"),
        col("reason"),
    );
    let statuses: BTreeSet<&str> = rows[1..].iter().map(|r| r[status].as_str()).collect();
    assert_eq!(statuses, BTreeSet::from(["differs", "matched"]), "{out}");
    // Every meter is compared, and most comparisons match exactly.
    let meters: BTreeSet<&str> = rows[1..].iter().map(|r| r[meter].as_str()).collect();
    assert_eq!(meters.len(), 4, "{meters:?}");
    let differs: Vec<&Vec<String>> = rows[1..]
        .iter()
        .filter(|r| r[status] == "differs")
        .collect();
    let found: BTreeSet<(String, String, String)> = differs
        .iter()
        .map(|r| (r[resource].clone(), r[meter].clone(), r[measure].clone()))
        .collect();
    let (unknown, rate_ep, gap_ep) = (
        s("unknown_endpoint"),
        s("rate_endpoint"),
        s("no_flow_logs_endpoint"),
    );
    let want = BTreeSet::from([
        (
            unknown.clone(),
            "endpoint_az_hours".into(),
            "quantity".into(),
        ),
        (unknown.clone(), "endpoint_az_hours".into(), "cost".into()),
        (rate_ep.clone(), "endpoint_az_hours".into(), "cost".into()),
        (gap_ep.clone(), "endpoint_gb".into(), "quantity".into()),
        (gap_ep.clone(), "endpoint_gb".into(), "cost".into()),
    ]);
    assert_eq!(found, want, "{out}");
    for r in &differs {
        let why = &r[reason];
        if r[resource] == unknown {
            assert!(why.contains("not in the inventory"), "{r:?}");
        } else if r[resource] == rate_ep {
            assert!(
                why.contains("rate differs: billed 0.011 against the price book's 0.01"),
                "{r:?}"
            );
        } else {
            assert!(why.contains("missing flow-log coverage"), "{r:?}");
            if r[measure] == "quantity" {
                assert_eq!(r[period], s("no_flow_logs_day"));
                assert_eq!(r[col("billed")], "0.5");
            }
        }
    }
    // The unknown endpoint is billed every hour of October in two AZs.
    let unknown_hours: f64 = differs
        .iter()
        .filter(|r| r[resource] == unknown && r[measure] == "quantity")
        .map(|r| r[col("billed")].parse::<f64>().unwrap())
        .sum();
    assert_eq!(unknown_hours, 2.0 * 744.0);

    // A price book from the bill: the rates billed, the odd one out named, and it prices the
    // month to the same total as the published rates the estate's own price book holds.
    let out = linkmeter(
        d,
        &[
            "prices",
            "from-bill",
            "--config",
            "e/linkmeter.toml",
            "--month",
            "2026-10",
            "--out",
            "e/billed.toml",
        ],
    );
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("billed at 0.011, not 0.01"), "{said}");
    let billed = std::fs::read_to_string(d.join("e/billed.toml")).unwrap();
    for rate in [
        "price = \"0.0225\"",
        "price = \"0.006\"",
        "price = \"0.01\"",
    ] {
        assert!(billed.contains(rate), "{billed}");
    }
    let total = |cfg: &str| -> String {
        let out = ok(d, &["invoice", "--config", cfg, "--month", "2026-10"]);
        out.split("total ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let published = total("e/linkmeter.toml");
    let cfg = std::fs::read_to_string(d.join("e/linkmeter.toml"))
        .unwrap()
        .replace("prices = \"prices.toml\"", "prices = \"billed.toml\"");
    std::fs::write(d.join("e/billed-config.toml"), cfg).unwrap();
    assert_eq!(total("e/billed-config.toml"), published);

    // The FOCUS export of the same bill reconciles to the same comparisons.
    let cfg = std::fs::read_to_string(d.join("e/linkmeter.toml"))
        .unwrap()
        .replace("uri = \"bill/cur2\"", "uri = \"bill/focus\"")
        .replace("content = \"cur2\"", "content = \"focus\"");
    std::fs::write(d.join("e/focus.toml"), cfg).unwrap();
    let out = ok(d, &["ingest", "--config", "e/focus.toml"]);
    assert!(out.contains("billing period 2026-10: "), "{out}");
    let (_, focus_rows) = reconcile_csv(d, "e/focus.toml");
    assert_eq!(focus_rows, rows);
    assert_eq!(
        scalar(
            &d.join("e/warehouse"),
            "SELECT COUNT(DISTINCT bill_format) FROM bill_lines"
        ),
        1,
        "a period holds one delivery"
    );

    // An unchanged bill is not read again; a broken file is named and replaces nothing.
    let out = ok(d, &["ingest", "--config", "e/focus.toml"]);
    assert!(
        out.contains("1 billing-period groups unchanged; 0 rows read"),
        "{out}"
    );
    let bad = d.join("e/bill/focus/data/BILLING_PERIOD=2026-10/focus-00002.snappy.parquet");
    std::fs::write(&bad, b"PAR1 this is not parquet PAR1").unwrap();
    let before = scalar(&d.join("e/warehouse"), "SELECT COUNT(*) FROM bill_lines");
    let out = ok(d, &["ingest", "--config", "e/focus.toml"]);
    assert!(
        out.contains("BILL FILE NOT USED") && out.contains("focus-00002.snappy.parquet"),
        "{out}"
    );
    assert_eq!(
        scalar(&d.join("e/warehouse"), "SELECT COUNT(*) FROM bill_lines"),
        before
    );

    // Two bill sources delivering one period would add up: refused, named, nothing replaced.
    let both = std::fs::read_to_string(d.join("e/linkmeter.toml")).unwrap()
        + "\n[[sources]]\nname = \"bill-focus\"\nuri = \"bill/focus\"\ncontent = \"focus\"\n";
    std::fs::write(d.join("e/both.toml"), both).unwrap();
    let before = scalar(&wh, "SELECT COUNT(*) FROM bill_lines");
    let out = ok(d, &["ingest", "--config", "e/both.toml"]);
    assert!(
        out.contains("more than one bill source (bill, bill-focus)"),
        "{out}"
    );
    assert_eq!(scalar(&wh, "SELECT COUNT(*) FROM bill_lines"), before);

    // A provisional bill part-way through the month (no invoice id, usage up to the 10th):
    // the days it covers are compared, later days and the month's cost are not yet.
    let part = d.join("e/bill-partial/data/BILLING_PERIOD=2026-10");
    std::fs::create_dir_all(&part).unwrap();
    let script = "import sys, datetime as dt, pyarrow as pa, pyarrow.parquet as pq, pyarrow.compute as pc\n\
        t = pq.read_table(sys.argv[1])\n\
        cut = pa.scalar(dt.datetime(2026, 10, 11, tzinfo=dt.timezone.utc), t.schema.field('ChargePeriodStart').type)\n\
        t = t.filter(pc.less(t['ChargePeriodStart'], cut))\n\
        t = t.set_column(t.schema.get_field_index('InvoiceId'), 'InvoiceId', pa.nulls(len(t), pa.string()))\n\
        pq.write_table(t, sys.argv[2])\n";
    pyarrow(
        script,
        &[
            &d.join("e/bill/focus/data/BILLING_PERIOD=2026-10/focus-00001.snappy.parquet"),
            &part.join("part-00001.parquet"),
        ],
    );
    let cfg = std::fs::read_to_string(d.join("e/focus.toml"))
        .unwrap()
        .replace("uri = \"bill/focus\"", "uri = \"bill-partial\"");
    std::fs::write(d.join("e/partial.toml"), cfg).unwrap();
    ok(d, &["ingest", "--config", "e/partial.toml"]);
    let out = ok(
        d,
        &[
            "invoice",
            "--config",
            "e/partial.toml",
            "--month",
            "2026-10",
        ],
    );
    assert!(out.contains("against the AWS bill (provisional"), "{out}");
    let (out, rows) = reconcile_csv(d, "e/partial.toml");
    assert!(out.contains("provisional"), "{out}");
    for r in &rows[1..] {
        let st = r[status].as_str();
        if r[measure] == "cost" || r[period].as_str() > "2026-10-10" {
            assert_eq!(st, "no_bill_yet", "{r:?}");
        } else if r[resource] == unknown
            || (r[resource] == gap_ep && r[period] == s("no_flow_logs_day"))
        {
            assert_eq!(st, "differs", "{r:?}");
        } else {
            assert_eq!(st, "matched", "{r:?}");
        }
    }
    // A new delivery of the period with none of linkmeter's lines left empties the period.
    pyarrow(
        "import sys, pyarrow.parquet as pq\nt = pq.read_table(sys.argv[1])\npq.write_table(t.slice(0, 0), sys.argv[1])\n",
        &[&part.join("part-00001.parquet")],
    );
    let out = ok(d, &["ingest", "--config", "e/partial.toml"]);
    assert!(
        out.contains("billing period 2026-10: 0 lines loaded"),
        "{out}"
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM bill_lines WHERE billing_period = '2026-10'"
        ),
        0
    );
}

/// Runs a Python script with pyarrow (the tests' interpreter) on these files; fails the test
/// with the script's error output.
fn pyarrow(script: &str, files: &[&std::path::Path]) {
    let python = std::env::var("LINKMETER_TEST_PYTHON").expect(
        "LINKMETER_TEST_PYTHON is not set: run the tests with .ci/test, which installs pyarrow",
    );
    let run = std::process::Command::new(python)
        .args(["-c", script])
        .args(files)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}
