//! The table registry: every warehouse table's name, Arrow schema, partition columns and what it
//! holds (DESIGN §5). Ingest, the rollups and the SQL catalog all take tables from here, so a
//! table is defined once.
//!
//! Types are the ones Delta Lake has: signed integers only (a Delta `long` is a signed 64-bit
//! integer; unsigned Parquet columns would be read differently by Spark, Athena and Trino), so
//! byte counts are `Int64` (a flow record of more than 2^63 bytes is refused at decode time),
//! ports `Int32`, times UTC timestamps in microseconds. Partition columns are strings and are
//! not stored in the data files (Delta keeps them in the log and, by convention, in Hive-style
//! directory names).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// What kind of table it is, which decides how it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Rows of ingested inputs, written in segments and replaced by input (the commit protocol
    /// of [`crate::segment`]).
    Ingested,
    /// The checkpoint of ingested inputs (`inputs`): committed after the segment's rows.
    Checkpoint,
    /// Appended once per run (`runs`).
    Log,
    /// Replaced whole at every ingest (the inventory).
    Inventory,
    /// Computed from other tables, replaced one partition (month, view) at a time.
    Derived,
    /// The AWS bill (`bill_lines`): one billing period replaced whole by its newest delivery.
    Bill,
}

/// A warehouse table.
#[derive(Debug)]
pub struct TableDef {
    /// Table (and directory) name.
    pub name: &'static str,
    /// Hive partition columns, outermost first (strings, not in the data files).
    pub partitions: &'static [&'static str],
    /// One line on what the table holds (`\d` in `linkmeter sql`, docs).
    pub about: &'static str,
    /// How the table is written.
    pub kind: Kind,
    columns: fn() -> Vec<Field>,
}

impl TableDef {
    /// The columns of the data files (partition columns excluded).
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new((self.columns)()))
    }

    /// The table's schema as readers see it: data columns, then the partition columns.
    pub fn table_schema(&self) -> SchemaRef {
        let mut f = (self.columns)();
        f.extend(
            self.partitions
                .iter()
                .map(|p| Field::new(*p, DataType::Utf8, true)),
        );
        Arc::new(Schema::new(f))
    }
}

/// UTC timestamp type used for every time column.
pub fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn f(name: &str, t: DataType, nullable: bool) -> Field {
    Field::new(name, t, nullable)
}

fn text(names: &[&str]) -> Vec<Field> {
    names.iter().map(|n| f(n, DataType::Utf8, true)).collect()
}

fn flows() -> Vec<Field> {
    use DataType::*;
    vec![
        f("usage_hour", ts(), false),
        f("bytes", Int64, false),
        f("packets", Int64, false),
        f("status", Utf8, false),
        f("reason", Utf8, true),
        f("direction", Utf8, false),
        f("observed_at", Utf8, false),
        f("cluster_arn", Utf8, true),
        f("cluster_name", Utf8, true),
        f("region", Utf8, true),
        f("auth_scheme", Utf8, true),
        f("connection_arn", Utf8, true),
        f("client_account_id", Utf8, true),
        f("vpc_id", Utf8, true),
        f("endpoint_id", Utf8, true),
        f("endpoint_eni", Utf8, true),
        f("az_id", Utf8, true),
        f("broker_id", Int32, true),
        f("flow_start", ts(), false),
        f("flow_end", ts(), false),
        f("record_bytes", Int64, false),
        f("record_packets", Int64, false),
        f("interface_id", Utf8, true),
        f("log_account_id", Utf8, true),
        f("log_vpc_id", Utf8, true),
        f("srcaddr", Utf8, true),
        f("dstaddr", Utf8, true),
        f("srcport", Int32, true),
        f("dstport", Int32, true),
        f("protocol", Int32, true),
        f("action", Utf8, true),
        f("extra", Utf8, true),
        f("source_uri", Utf8, false),
        f("source_line", Int64, false),
        f("source_offset", Int64, false),
        f("input_id", Utf8, false),
        f("run_id", Utf8, false),
        // What attribution read that the columns above do not keep: the record's own region
        // and AZ (`region`/`az_id` hold the connection's on attributed rows) and the account
        // of the input (S3 key or source config). Added after the rest so that warehouses
        // written before keep their column order (files without them read as nulls).
        f("log_region", Utf8, true),
        f("log_az_id", Utf8, true),
        f("context_account", Utf8, true),
    ]
}

fn flow_hours() -> Vec<Field> {
    use DataType::*;
    let sum = |n: &str| f(n, Decimal128(38, 0), false);
    vec![
        f("usage_hour", ts(), false),
        f("endpoint_eni", Utf8, true),
        f("observed_at", Utf8, false),
        f("direction", Utf8, false),
        f("status", Utf8, false),
        f("reason", Utf8, true),
        f("cluster_arn", Utf8, true),
        f("cluster_name", Utf8, true),
        f("auth_scheme", Utf8, true),
        f("connection_arn", Utf8, true),
        f("client_account_id", Utf8, true),
        f("flow_rows", Int64, false),
        // Sums of 64-bit byte counts: 128-bit, so that no input can make them wrap.
        sum("bytes"),
        sum("packets"),
    ]
}

fn broker_hours() -> Vec<Field> {
    use DataType::*;
    vec![
        f("usage_hour", ts(), false),
        f("cluster_arn", Utf8, false),
        f("cluster_name", Utf8, true),
        f("broker_id", Int32, false),
        f("topic", Utf8, true),
        f("metric", Utf8, false),
        f("source", Utf8, false),
        f("steps", Int64, false),
        f("bytes", Decimal128(38, 0), false),
        f("first_at", ts(), false),
        f("last_at", ts(), false),
        f("first_counter", Float64, true),
        f("last_counter", Float64, true),
    ]
}

fn coverage() -> Vec<Field> {
    use DataType::*;
    vec![
        f("interface_id", Utf8, true),
        f("log_status", Utf8, false),
        f("window_start", ts(), true),
        f("window_end", ts(), true),
        f("log_account_id", Utf8, true),
        f("endpoint_id", Utf8, true),
        f("connection_arn", Utf8, true),
        f("source_uri", Utf8, false),
        f("source_line", Int64, false),
        f("input_id", Utf8, false),
        f("run_id", Utf8, false),
    ]
}

fn broker_metrics() -> Vec<Field> {
    use DataType::*;
    vec![
        f("period_start", ts(), false),
        f("period_secs", Int32, false),
        f("usage_hour", ts(), false),
        f("cluster_arn", Utf8, true),
        f("cluster_name", Utf8, true),
        f("broker_id", Int32, true),
        f("topic", Utf8, true),
        f("client_authentication", Utf8, true),
        f("namespace", Utf8, false),
        f("metric", Utf8, false),
        f("unit", Utf8, true),
        f("dimensions", Utf8, false),
        f("stat_count", Float64, true),
        f("stat_sum", Float64, true),
        f("stat_min", Float64, true),
        f("stat_max", Float64, true),
        f("counter", Float64, true),
        f("bytes", Int64, true),
        f("account_id", Utf8, true),
        f("region", Utf8, true),
        f("metric_stream", Utf8, true),
        f("format", Utf8, false),
        f("source_uri", Utf8, false),
        f("source_line", Int64, false),
        f("source_offset", Int64, false),
        f("input_id", Utf8, false),
        f("run_id", Utf8, false),
    ]
}

fn quarantine() -> Vec<Field> {
    use DataType::*;
    vec![
        f("source_uri", Utf8, false),
        f("line", Int64, false),
        f("offset", Int64, false),
        f("reason", Utf8, false),
        f("raw", Utf8, false),
        f("records", Int64, false),
        f("input_id", Utf8, false),
        f("run_id", Utf8, false),
        f("quarantined_at", ts(), false),
    ]
}

fn inputs() -> Vec<Field> {
    use DataType::*;
    vec![
        f("segment_id", Utf8, false),
        f("run_id", Utf8, false),
        f("input_id", Utf8, false),
        f("input_key", Utf8, false),
        f("source_uri", Utf8, false),
        f("content_hash", Utf8, false),
        f("inventory_hash", Utf8, false),
        f("size", Int64, false),
        f("records", Int64, false),
        f("flow_rows", Int64, false),
        f("quarantined", Int64, false),
        f("ingested_at", ts(), false),
        f("decoders", Int64, false),
    ]
}

/// The counters of a run's balance, in the order of the `runs` table.
pub const RUN_COUNTERS: &[&str] = &[
    "inputs_read",
    "inputs_skipped",
    "records_in",
    "records_attributed",
    "records_unattributed",
    "records_filtered",
    "records_coverage",
    "records_quarantined",
    "records_metrics",
    "bytes_in",
    "bytes_attributed",
    "bytes_unattributed",
    "bytes_filtered",
];

fn runs() -> Vec<Field> {
    use DataType::*;
    let mut v = vec![
        f("run_id", Utf8, false),
        f("command", Utf8, false),
        f("started_at", ts(), false),
        f("finished_at", ts(), false),
    ];
    v.extend(RUN_COUNTERS.iter().map(|n| {
        // Byte totals of a whole run can pass 2^63 (a year of a large estate in one backfill),
        // so they are exact decimals.
        let t = if n.starts_with("bytes") {
            Decimal128(38, 0)
        } else {
            Int64
        };
        f(n, t, false)
    }));
    v.push(f("balanced", Boolean, false));
    v.push(f("unattributed_by_reason", Utf8, false));
    v
}

fn accounts() -> Vec<Field> {
    text(&["account_id", "account_name", "cost_center"])
}

fn clusters() -> Vec<Field> {
    text(&["cluster_arn", "cluster_name", "region", "owner_account_id"])
}

fn cluster_connectivity() -> Vec<Field> {
    vec![
        f("cluster_arn", DataType::Utf8, false),
        f("auth_scheme", DataType::Utf8, false),
        f("turned_on", ts(), false),
        f("turned_off", ts(), true),
    ]
}

fn connections() -> Vec<Field> {
    use DataType::*;
    vec![
        f("connection_arn", Utf8, false),
        f("cluster_arn", Utf8, false),
        f("cluster_name", Utf8, false),
        f("region", Utf8, false),
        f("auth_scheme", Utf8, false),
        f("client_account_id", Utf8, false),
        f("vpc_id", Utf8, false),
        f("endpoint_id", Utf8, false),
        f("created_at", ts(), false),
        f("deleted_at", ts(), true),
    ]
}

fn endpoint_enis() -> Vec<Field> {
    text(&[
        "endpoint_eni",
        "endpoint_id",
        "connection_arn",
        "az_id",
        "private_ips",
    ])
}

fn usage_hourly() -> Vec<Field> {
    let mut v = vec![f("usage_hour", ts(), false)];
    v.extend(text(&[
        "account_id",
        "cluster_arn",
        "cluster_name",
        "region",
        "auth_scheme",
        "connection_arn",
        "endpoint_id",
        "az_id",
    ]));
    // Sums of many rows: DECIMAL(38,0), which no sum of 64-bit counts can overflow.
    for n in ["bytes_to_cluster", "bytes_from_cluster", "bytes"] {
        v.push(f(n, DataType::Decimal128(38, 0), true));
    }
    v
}

fn endpoint_hours() -> Vec<Field> {
    let mut v = vec![f("usage_hour", ts(), false)];
    v.extend(text(&[
        "account_id",
        "cluster_arn",
        "cluster_name",
        "region",
        "auth_scheme",
        "connection_arn",
        "endpoint_id",
        "az_id",
        "endpoint_eni",
    ]));
    v
}

fn connectivity_hours() -> Vec<Field> {
    let mut v = vec![f("usage_hour", ts(), false)];
    v.extend(text(&[
        "account_id",
        "cluster_arn",
        "cluster_name",
        "region",
        "auth_scheme",
    ]));
    v
}

/// Scale of quantities (hours or GB) in `invoice_lines`.
pub const QTY_SCALE: i8 = 9;
/// Scale of unit prices and exact amounts in `invoice_lines`.
pub const PRICE_SCALE: i8 = 12;
/// Scale of billed amounts (cents) in `invoice_lines`.
pub const AMOUNT_SCALE: i8 = 2;

fn invoice_lines() -> Vec<Field> {
    let s = |n: &str| f(n, DataType::Utf8, false);
    vec![
        s("cost_center"),
        s("account_id"),
        s("account_name"),
        s("meter"),
        s("cluster"),
        s("auth_scheme"),
        s("endpoint_id"),
        f("quantity", DataType::Decimal128(38, QTY_SCALE), false),
        s("unit"),
        f("unit_price", DataType::Decimal128(38, PRICE_SCALE), false),
        f("exact_amount", DataType::Decimal128(38, PRICE_SCALE), false),
        f("amount", DataType::Decimal128(38, AMOUNT_SCALE), false),
        s("currency"),
        s("allocation_basis"),
        // Added after the rest (files written before read them as nulls): the line's status
        // against the AWS bill, whether that bill was still provisional (no invoice id), and
        // for an adjustment line the closed month it corrects.
        f("reconciled", DataType::Utf8, true),
        f("provisional", DataType::Boolean, true),
        f("adjusts_month", DataType::Utf8, true),
    ]
}

/// Scale of bill quantities, rates and costs in `bill_lines` (the bill's doubles, exactly as
/// printed, rounded to 12 places).
pub const BILL_SCALE: i8 = 12;

fn bill_lines() -> Vec<Field> {
    use DataType::*;
    let d = |n: &str| f(n, Decimal128(38, BILL_SCALE), true);
    let mut v = vec![f("bill_format", Utf8, false)];
    v.extend(text(&[
        "payer_account_id",
        "usage_account_id",
        "line_item_type",
        "product_code",
        "usage_type",
        "operation",
        "meter",
        "resource_id",
        "resource",
        "availability_zone",
    ]));
    v.extend([
        f("usage_start", ts(), true),
        f("usage_end", ts(), true),
        d("usage_amount"),
        f("pricing_unit", Utf8, true),
        d("unblended_rate"),
        d("unblended_cost"),
        f("currency", Utf8, true),
        f("invoice_id", Utf8, true),
        f("bill_file", Utf8, false),
        f("bill_row", Int64, false),
    ]);
    v
}

fn closed_months() -> Vec<Field> {
    use DataType::*;
    vec![
        f("month", Utf8, false),
        f("closed_at", ts(), false),
        f("closed_by", Utf8, false),
        f("table_versions", Utf8, false),
        f("checksums", Utf8, false),
        f("aws_total", Utf8, false),
        f("chargeback_total", Utf8, false),
    ]
}

macro_rules! table {
    ($id:ident, $name:literal, $parts:expr, $kind:ident, $cols:ident, $about:literal) => {
        #[doc = $about]
        pub static $id: TableDef = TableDef {
            name: $name,
            partitions: $parts,
            about: $about,
            kind: Kind::$kind,
            columns: $cols,
        };
    };
}

table!(
    FLOWS,
    "flows",
    &["date", "hour"],
    Ingested,
    flows,
    "relevant flow records split by clock hour, attributed or with a reason"
);
/// `flows` as releases before re-attribution wrote it (tests of schema evolution).
#[cfg(test)]
fn flows_before_record_columns() -> Vec<Field> {
    let mut f = flows();
    f.truncate(f.len() - 3);
    f
}
#[cfg(test)]
table!(
    FLOWS_BEFORE_RECORD_COLUMNS,
    "flows",
    &["date", "hour"],
    Ingested,
    flows_before_record_columns,
    "flows without log_region, log_az_id, context_account"
);
table!(
    FLOW_HOURS,
    "flow_hours",
    &["date"],
    Ingested,
    flow_hours,
    "flows summed per hour, endpoint ENI, side, direction, verdict and cluster, per segment and day"
);
table!(
    COVERAGE,
    "coverage",
    &["date"],
    Ingested,
    coverage,
    "NODATA / SKIPDATA windows per ENI"
);
table!(
    BROKER_METRICS,
    "broker_metrics",
    &["date"],
    Ingested,
    broker_metrics,
    "MSK broker-metric datapoints with raw statistics and derived bytes"
);
table!(
    BROKER_HOURS,
    "broker_hours",
    &["date"],
    Ingested,
    broker_hours,
    "byte datapoints of broker_metrics summed per file, hour, broker, topic, metric and source, per segment and day"
);
table!(
    QUARANTINE,
    "quarantine",
    &[],
    Ingested,
    quarantine,
    "input that could not be decoded, with file, line and reason"
);
table!(
    INPUTS,
    "inputs",
    &[],
    Checkpoint,
    inputs,
    "one row per ingested input: the checkpoint for idempotent reruns"
);
table!(
    RUNS,
    "runs",
    &[],
    Log,
    runs,
    "one row per run with its conservation balance"
);
table!(
    ACCOUNTS,
    "accounts",
    &[],
    Inventory,
    accounts,
    "inventory: accounts, names, cost centers"
);
table!(
    CLUSTERS,
    "clusters",
    &[],
    Inventory,
    clusters,
    "inventory: MSK clusters"
);
table!(
    CLUSTER_CONNECTIVITY,
    "cluster_connectivity",
    &[],
    Inventory,
    cluster_connectivity,
    "inventory: auth schemes turned on per cluster"
);
table!(
    CONNECTIONS,
    "connections",
    &[],
    Inventory,
    connections,
    "inventory: managed VPC connections"
);
table!(
    ENDPOINT_ENIS,
    "endpoint_enis",
    &[],
    Inventory,
    endpoint_enis,
    "inventory: endpoint ENIs per AZ"
);
table!(
    USAGE_HOURLY,
    "usage_hourly",
    &["month"],
    Derived,
    usage_hourly,
    "rollup: billable bytes per hour, account, cluster, auth scheme, connection, endpoint, AZ"
);
table!(
    ENDPOINT_HOURS,
    "endpoint_hours",
    &["month"],
    Derived,
    endpoint_hours,
    "rollup: every hour an endpoint ENI (endpoint × AZ) was provisioned"
);
table!(
    CONNECTIVITY_HOURS,
    "connectivity_hours",
    &["month"],
    Derived,
    connectivity_hours,
    "rollup: every hour a cluster had connectivity on for an auth scheme"
);
table!(
    INVOICE_LINES,
    "invoice_lines",
    &["month", "invoice_view"],
    Derived,
    invoice_lines,
    "invoice lines per month and view, money as Decimal128"
);

table!(
    BILL_LINES,
    "bill_lines",
    &["billing_period"],
    Bill,
    bill_lines,
    "the AWS bill (CUR 2.0 or FOCUS export): PrivateLink endpoint and MSK private-connectivity lines"
);

table!(
    CLOSED_MONTHS,
    "closed_months",
    &[],
    Log,
    closed_months,
    "months closed for finance: who, when, the table versions and report checksums they were closed on"
);

/// Every table, in the order the catalog registers them.
pub static TABLES: &[&TableDef] = &[
    &FLOWS,
    &FLOW_HOURS,
    &COVERAGE,
    &BROKER_METRICS,
    &BROKER_HOURS,
    &QUARANTINE,
    &RUNS,
    &INPUTS,
    &ACCOUNTS,
    &CLUSTERS,
    &CLUSTER_CONNECTIVITY,
    &CONNECTIONS,
    &ENDPOINT_ENIS,
    &USAGE_HOURLY,
    &ENDPOINT_HOURS,
    &CONNECTIVITY_HOURS,
    &INVOICE_LINES,
    &BILL_LINES,
    &CLOSED_MONTHS,
];

/// The tables a segment writes rows into, in the order they are committed. Summary files
/// (`flow_hours`, `broker_hours`) are written with the files they sum (same segment, partition
/// and name), never on their own (see [`crate::summaries`]).
pub static SEGMENT_TABLES: &[&TableDef] = &[
    &FLOWS,
    &FLOW_HOURS,
    &COVERAGE,
    &BROKER_METRICS,
    &BROKER_HOURS,
    &QUARANTINE,
];

/// A table by name.
pub fn by_name(name: &str) -> Option<&'static TableDef> {
    TABLES.iter().copied().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_partitions_are_not_data_columns() {
        let mut seen = std::collections::HashSet::new();
        for t in TABLES {
            assert!(seen.insert(t.name), "{} twice", t.name);
            let s = t.schema();
            for p in t.partitions {
                assert!(s.field_with_name(p).is_err(), "{}.{p}", t.name);
            }
            assert_eq!(
                t.table_schema().fields().len(),
                s.fields().len() + t.partitions.len()
            );
            for fl in s.fields() {
                assert!(
                    !matches!(
                        fl.data_type(),
                        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64
                    ),
                    "{}.{} is unsigned; Delta has no unsigned types",
                    t.name,
                    fl.name()
                );
            }
        }
        assert!(SEGMENT_TABLES.iter().all(|t| t.kind == Kind::Ingested));
    }
}
