//! The month close reads `flow_hours` (flows summed per hour and ENI as they are ingested), not
//! `flows`: the same SQL run over the raw rows gives the same answers, and a warehouse without
//! the sums (written before them) gets them back before it is closed.

use std::path::Path;

use arrow::array::RecordBatch;
use linkmeter_sql::{render, Catalog, RECONCILIATION, ROLLUPS, VIEWS};
use linkmeter_test_support::{generate, ok, scalar};
use linkmeter_warehouse::{Month, Warehouse};

/// Every row of a result as a line, sorted (row order is not part of the answer).
fn lines(batches: &[RecordBatch]) -> Vec<String> {
    let text = linkmeter_sql::csv(batches).unwrap();
    let mut rows: Vec<String> = text.lines().skip(1).map(str::to_string).collect();
    rows.sort();
    rows
}

fn view_sql(name: &str) -> &'static str {
    VIEWS.iter().find(|v| v.0 == name).unwrap().1
}

/// Runs `sql` over the sums and `raw` over the rows; both must give the same, non-empty rows.
async fn same(cat: &Catalog, what: &str, sql: &str, raw: &str) -> usize {
    let (a, b) = (
        lines(&cat.query(sql).await.unwrap()),
        lines(&cat.query(raw).await.unwrap()),
    );
    assert!(!a.is_empty(), "{what}: no rows to compare");
    let diff: Vec<_> = a.iter().zip(&b).filter(|(x, y)| x != y).take(5).collect();
    if !diff.is_empty() {
        // Whether the sums differ from the rows they sum, or the queries over them do.
        let check = "WITH a AS (SELECT usage_hour h, status, observed_at, endpoint_eni e, SUM(CAST(bytes AS DECIMAL(38, 0))) b FROM flows GROUP BY 1, 2, 3, 4), \
                     s AS (SELECT usage_hour h, status, observed_at, endpoint_eni e, SUM(bytes) b FROM flow_hours GROUP BY 1, 2, 3, 4) \
                     SELECT a.h, a.status, a.observed_at, a.e, a.b, s.b FROM a FULL JOIN s ON a.h = s.h AND a.status = s.status \
                     AND a.observed_at = s.observed_at AND a.e IS NOT DISTINCT FROM s.e WHERE (a.b IS DISTINCT FROM s.b) LIMIT 5";
        let sums = lines(&cat.query(check).await.unwrap());
        panic!("{what}: over sums vs over flows differ, first: {diff:#?}\nflows against flow_hours: {sums:#?}");
    }
    assert_eq!(a.len(), b.len(), "{what}: rows over sums vs over flows");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "{what}: over sums vs over flows");
    }
    a.len()
}

/// The reconciliation from `broker_metrics` datapoints alone (and flows rows).
fn datapoints(month: Month) -> String {
    let sql = include_str!("../../sql/checks/reconciliation_datapoints.sql");
    render(sql, &month.start(), &month.end()).replace("FROM billable_hours", "FROM billable_flows")
}

async fn compare(wh: &Warehouse, month: Month, phase: &str) {
    let cat = Catalog::open(wh).await.unwrap();
    // The raw path: `flows` itself in the shape of `flow_hours` (a row is a sum of one row),
    // and the views over `billable_flows` instead of `billable_hours`.
    let raw_hours = "SELECT *, CAST(1 AS BIGINT) AS flow_rows FROM flows";
    let plan = cat.ctx.sql(raw_hours).await.unwrap();
    cat.ctx
        .register_table("flow_hours_raw", plan.into_view())
        .unwrap();
    let over_rows = |sql: &str| {
        sql.replace("FROM flow_hours", "FROM flow_hours_raw")
            .replace("FROM billable_hours", "FROM billable_flows")
    };
    let (start, end) = (month.start(), month.end());
    let usage = render(ROLLUPS[0].1, &start, &end);
    assert_eq!(ROLLUPS[0].0, "usage_hourly");
    let what = |q: &str| format!("{q} ({phase})");
    let n = same(&cat, &what("usage_hourly"), &usage, &over_rows(&usage)).await;
    assert!(n > 100, "{n} usage rows");
    let rec = render(RECONCILIATION, &start, &end);
    same(&cat, &what("reconciliation"), &rec, &over_rows(&rec)).await;
    // The broker side from broker_hours against the datapoints alone.
    let w = what("reconciliation from datapoints");
    same(&cat, &w, &rec, &datapoints(month)).await;
    for view in ["account_usage", "endpoint_usage"] {
        same(
            &cat,
            &what(view),
            view_sql(view),
            &over_rows(view_sql(view)),
        )
        .await;
    }
    // billable_hours is billable_flows summed.
    let billable = |from: &str| {
        format!("SELECT usage_hour, endpoint_eni, observed_at, direction, cluster_arn, CAST(SUM(CAST(bytes AS DECIMAL(38, 0))) AS VARCHAR) FROM {from} GROUP BY 1, 2, 3, 4, 5")
    };
    same(
        &cat,
        "billable_hours",
        &billable("billable_hours"),
        &billable("billable_flows"),
    )
    .await;
    // Every verdict and reason, both sides.
    let unattributed = "SELECT status, reason, observed_at, CAST(SUM(flow_rows) AS BIGINT), CAST(SUM(bytes) AS VARCHAR) FROM flow_hours GROUP BY 1, 2, 3";
    same(
        &cat,
        "verdicts",
        unattributed,
        &over_rows(unattributed).replace("SUM(bytes)", "SUM(CAST(bytes AS DECIMAL(38, 0)))"),
    )
    .await;
}

#[test]
fn the_close_over_hourly_sums_equals_the_close_over_flow_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "estate", "--days 2 --accounts 8 --instances 1 --noise 1");
    let estate = d.join("estate");
    ok(&estate, &["ingest"]);
    let wh_dir = estate.join("warehouse");
    // The sums are far fewer rows than the flows they sum, and both sides of the rule exist.
    let rows = scalar(&wh_dir, "SELECT CAST(COUNT(*) AS BIGINT) FROM flows");
    let sums = scalar(&wh_dir, "SELECT CAST(COUNT(*) AS BIGINT) FROM flow_hours");
    assert!(sums > 0 && sums * 5 < rows, "{sums} sums of {rows} rows");
    for side in ["endpoint", "client"] {
        let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) FROM flow_hours WHERE observed_at = '{side}' AND status = 'attributed'");
        assert!(scalar(&wh_dir, &sql) > 0, "no attributed {side}-side sums");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let month = Month::parse("2026-10").unwrap();
    let wh = Warehouse::local(&wh_dir).unwrap();
    rt.block_on(compare(&wh, month, "as ingested"));

    // Datapoints delivered twice (a relay's retry: half of an hour's lines again in another
    // object; an object of the very same bytes would be the same input), so that the sums of
    // that hour's files overlap: it comes from the datapoints, and the answer stays the same.
    let count = "SELECT CAST(COUNT(*) AS BIGINT) FROM broker_metrics";
    let points = scalar(&wh_dir, count);
    let metrics: Vec<_> = linkmeter_test_support::walk(&estate.join("metrics"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".gz"))
        .collect();
    assert!(metrics.len() > 10);
    let text = linkmeter_test_support::gunzip(&metrics[7]);
    let half: String = text.lines().step_by(2).map(|l| format!("{l}\n")).collect();
    linkmeter_test_support::gzip(&metrics[7].with_file_name("redelivered-half.gz"), &half);
    let before = rt.block_on(async {
        let cat = Catalog::open(&wh).await.unwrap();
        lines(
            &cat.query(&render(RECONCILIATION, &month.start(), &month.end()))
                .await
                .unwrap(),
        )
    });
    ok(&estate, &["ingest"]);
    let doubled = scalar(&wh_dir, count);
    assert!(
        doubled > points,
        "{doubled} datapoints after redelivery, {points} before"
    );
    rt.block_on(compare(&wh, month, "after redelivery"));
    let after = rt.block_on(async {
        let cat = Catalog::open(&wh).await.unwrap();
        lines(
            &cat.query(&render(RECONCILIATION, &month.start(), &month.end()))
                .await
                .unwrap(),
        )
    });
    assert_eq!(after, before, "datapoints delivered twice count once");
}

/// The invoice CSVs of an estate's month (finance and FOCUS), by file name.
fn invoices(estate: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        linkmeter_test_support::walk(&estate.join("warehouse/reports"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&p).unwrap())
            })
            .collect();
    out.sort();
    out
}

#[test]
fn a_warehouse_without_sums_gets_them_back_before_its_month_is_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "estate", "--days 1 --accounts 6 --instances 1 --noise 1");
    let estate = d.join("estate");
    ok(&estate, &["ingest"]);
    ok(&estate, &["invoice", "--month", "2026-10"]);
    let before = invoices(&estate);
    assert!(!before.is_empty());
    let wh_dir = estate.join("warehouse");
    let sums = scalar(&wh_dir, "SELECT CAST(COUNT(*) AS BIGINT) FROM flow_hours");
    let files = scalar(
        &wh_dir,
        "SELECT CAST(COUNT(DISTINCT date || hour) AS BIGINT) FROM flows",
    );
    // As a warehouse written before flow_hours: the table is not there at all.
    std::fs::remove_dir_all(wh_dir.join("flow_hours")).unwrap();
    std::fs::remove_dir_all(estate.join("warehouse/reports")).unwrap();
    // Ad hoc SQL says the views over the sums are incomplete until they are rebuilt.
    let sql = linkmeter_test_support::linkmeter(&estate, &["sql", "SELECT 1"]);
    let err = String::from_utf8_lossy(&sql.stderr);
    assert!(sql.status.success(), "{err}");
    assert!(
        err.contains("flow_hours does not match the files it sums"),
        "{err}"
    );
    let out = ok(&estate, &["invoice", "--month", "2026-10"]);
    assert!(
        out.contains("hourly summaries brought level first"),
        "{out}"
    );
    assert!(files > 0);
    assert_eq!(
        scalar(&wh_dir, "SELECT CAST(COUNT(*) AS BIGINT) FROM flow_hours"),
        sums,
        "the same sums again"
    );
    assert_eq!(invoices(&estate), before, "the same invoices to the cent");
    // Level now: the next close sums nothing, and SQL has nothing to say about them.
    let out = ok(&estate, &["invoice", "--month", "2026-10"]);
    assert!(!out.contains("hourly summaries brought level"), "{out}");
    let sql = linkmeter_test_support::linkmeter(&estate, &["sql", "SELECT 1"]);
    assert!(!String::from_utf8_lossy(&sql.stderr).contains("does not match"));
}
