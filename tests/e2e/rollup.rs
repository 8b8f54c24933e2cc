//! Rollups over a generated, ingested estate: usage equals the generator's truth per
//! connection and hour; endpoint hours bill a partial hour in full; reruns replace.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use linkmeter_aggregate::rollup::rollup;
use linkmeter_generate::{generate, GenOptions};
use linkmeter_ingest::fields::{Format, DEFAULT_FORMAT};
use linkmeter_ingest::inventory::Inventory;
use linkmeter_ingest::inventory_tables::write_inventory;
use linkmeter_ingest::pipeline::{ingest, Job, Options, Progress};
use linkmeter_ingest::source::file::FileSource;
use linkmeter_sql::Catalog;
use linkmeter_warehouse::{Month, Warehouse};

#[test]
fn rollups_match_truth_and_bill_partial_hours() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generate(
        d,
        &GenOptions {
            days: 2,
            accounts: 6,
            noise: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let ix = Inventory::load(&d.join("inventory.toml")).unwrap();
    let wh = Warehouse::local(&d.join("warehouse")).unwrap();
    rt.block_on(write_inventory(&wh, &ix)).unwrap();
    let jobs: Vec<Job> = FileSource::new("fl", &d.join("flowlogs"))
        .list()
        .unwrap()
        .into_iter()
        .map(|input| Job {
            fetch: None,
            line_offsets: None,
            input,
            format: Format::parse(DEFAULT_FORMAT).unwrap(),
            account: None,
            content: Default::default(),
        })
        .collect();
    ingest(
        &jobs,
        &ix,
        &wh,
        rt.handle(),
        &Options::default(),
        &Progress::default(),
    )
    .unwrap();
    rt.block_on(check(&wh, d));
}

async fn check(wh: &Warehouse, d: &std::path::Path) {
    let month = Month::parse("2026-10").unwrap();
    let engine = linkmeter_sql::EngineOptions::default();
    let r1 = rollup(wh, month, &engine).await.unwrap();
    let r2 = rollup(wh, month, &engine).await.unwrap();
    assert_eq!(
        r1.tables, r2.tables,
        "a rerun restates the month with the same rows"
    );

    let cat = Catalog::open(wh).await.unwrap();
    // Usage per connection and hour equals the ground truth (both directions summed).
    let mut truth: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for line in std::fs::read_to_string(d.join("ground_truth.csv"))
        .unwrap()
        .lines()
        .skip(1)
    {
        let f: Vec<&str> = line.split(',').collect();
        let h = chrono::DateTime::parse_from_rfc3339(f[0])
            .unwrap()
            .timestamp()
            * 1_000_000;
        *truth.entry((h, f[1].to_string())).or_default() += f[3].parse::<u64>().unwrap();
    }
    let b = cat
        .query("SELECT CAST(usage_hour AS BIGINT), connection_arn, CAST(SUM(bytes) AS BIGINT), CAST(SUM(bytes_to_cluster + bytes_from_cluster) AS BIGINT), arrow_typeof(SUM(bytes)) FROM usage_hourly WHERE month = '2026-10' GROUP BY 1, 2")
        .await
        .unwrap();
    let mut got = BTreeMap::new();
    for batch in &b {
        let h = batch.column(0).as_primitive::<Int64Type>();
        let c = batch.column(1);
        let s = batch.column(2).as_primitive::<Int64Type>();
        let s2 = batch.column(3).as_primitive::<Int64Type>();
        assert_eq!(
            arrow::util::display::array_value_to_string(batch.column(4), 0).unwrap(),
            "Decimal128(38, 0)",
            "byte sums are exact 38-digit decimals (issue #13: a sum of longs can wrap), never floats"
        );
        for i in 0..batch.num_rows() {
            assert_eq!(s.value(i), s2.value(i), "directions add up to the total");
            got.insert(
                (
                    h.value(i),
                    arrow::util::display::array_value_to_string(c, i).unwrap(),
                ),
                s.value(i) as u64,
            );
        }
    }
    assert_eq!(got, truth);

    // The deleted connection (10:20 on the deletion day) bills hours up to and including 10:00.
    let b = cat
        .query(
            "SELECT CAST(COUNT(DISTINCT usage_hour) AS BIGINT), CAST(MAX(usage_hour) AS BIGINT), CAST(MAX(c.deleted_at) AS BIGINT) \
             FROM endpoint_hours e JOIN connections c USING (connection_arn) WHERE c.deleted_at IS NOT NULL",
        )
        .await
        .unwrap();
    let n = b[0].column(0).as_primitive::<Int64Type>().value(0);
    let last = b[0].column(1).as_primitive::<Int64Type>().value(0);
    let deleted = b[0].column(2).as_primitive::<Int64Type>().value(0);
    assert_eq!(
        last,
        deleted - 20 * 60 * 1_000_000,
        "last billed hour is the one holding the deletion"
    );
    assert_eq!(
        n as i64,
        (last - 1_790_812_800_000_000) / 3_600_000_000 + 1,
        "every hour from the month start"
    );
    // Connectivity: every (cluster, scheme) turned on all month: 744 hours each.
    let b = cat
        .query(
            "SELECT CAST(COUNT(*) AS BIGINT), CAST(COUNT(DISTINCT cluster_arn || auth_scheme) AS BIGINT) FROM connectivity_hours",
        )
        .await
        .unwrap();
    let rows = b[0].column(0).as_primitive::<Int64Type>().value(0);
    let pairs = b[0].column(1).as_primitive::<Int64Type>().value(0);
    assert_eq!(rows, pairs * 744);
    assert!(b[0].column(0).null_count() == 0);
}
