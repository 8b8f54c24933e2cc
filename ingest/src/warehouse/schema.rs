//! Arrow schemas of the warehouse tables (DESIGN §5). Column names are snake_case, times are
//! UTC timestamps in microseconds, byte counts unsigned 64-bit.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// UTC timestamp type used for every time column.
pub fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn f(name: &str, t: DataType, nullable: bool) -> Field {
    Field::new(name, t, nullable)
}

/// `flows`: one row per relevant record and clock hour. Partitioned `date=…/hour=…`.
pub fn flows() -> SchemaRef {
    use DataType::*;
    Arc::new(Schema::new(vec![
        f("usage_hour", ts(), false),
        f("bytes", UInt64, false),
        f("packets", UInt64, false),
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
        f("broker_id", UInt16, true),
        f("flow_start", ts(), false),
        f("flow_end", ts(), false),
        f("record_bytes", UInt64, false),
        f("record_packets", UInt64, false),
        f("interface_id", Utf8, true),
        f("log_account_id", Utf8, true),
        f("log_vpc_id", Utf8, true),
        f("srcaddr", Utf8, true),
        f("dstaddr", Utf8, true),
        f("srcport", UInt16, true),
        f("dstport", UInt16, true),
        f("protocol", UInt8, true),
        f("action", Utf8, true),
        f("extra", Utf8, true),
        f("source_uri", Utf8, false),
        f("source_line", UInt64, false),
        f("source_offset", UInt64, false),
        f("input_id", Utf8, false),
        f("run_id", Utf8, false),
    ]))
}

/// `coverage`: NODATA / SKIPDATA windows per ENI. Partitioned `date=…`.
pub fn coverage() -> SchemaRef {
    use DataType::*;
    Arc::new(Schema::new(vec![
        f("interface_id", Utf8, true),
        f("log_status", Utf8, false),
        f("window_start", ts(), true),
        f("window_end", ts(), true),
        f("log_account_id", Utf8, true),
        f("endpoint_id", Utf8, true),
        f("connection_arn", Utf8, true),
        f("source_uri", Utf8, false),
        f("source_line", UInt64, false),
        f("input_id", Utf8, false),
        f("run_id", Utf8, false),
    ]))
}

/// `broker_metrics`: broker-metric datapoints with their raw statistics and the bytes they
/// stand for. Partitioned `date=…`.
pub fn broker_metrics() -> SchemaRef {
    use DataType::*;
    Arc::new(Schema::new(vec![
        f("period_start", ts(), false),
        f("period_secs", UInt32, false),
        f("usage_hour", ts(), false),
        f("cluster_arn", Utf8, true),
        f("cluster_name", Utf8, true),
        f("broker_id", UInt16, true),
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
        f("bytes", UInt64, true),
        f("account_id", Utf8, true),
        f("region", Utf8, true),
        f("metric_stream", Utf8, true),
        f("format", Utf8, false),
        f("source_uri", Utf8, false),
        f("source_line", UInt64, false),
        f("source_offset", UInt64, false),
        f("input_id", Utf8, false),
        f("run_id", Utf8, false),
    ]))
}

/// `quarantine`: input that could not be decoded, with the reason.
pub fn quarantine() -> SchemaRef {
    use DataType::*;
    Arc::new(Schema::new(vec![
        f("source_uri", Utf8, false),
        f("line", UInt64, false),
        f("offset", UInt64, false),
        f("reason", Utf8, false),
        f("raw", Utf8, false),
        f("records", UInt64, false),
        f("input_id", Utf8, false),
        f("run_id", Utf8, false),
        f("quarantined_at", ts(), false),
    ]))
}

/// `inputs`: the commit log. One file per segment (a group of inputs written together), one
/// row per input in it (a segment with no input yet has one row with an empty `input_id`).
pub fn inputs() -> SchemaRef {
    use DataType::*;
    Arc::new(Schema::new(vec![
        f("segment_id", Utf8, false),
        f("status", Utf8, false),
        f("files", Utf8, false),
        f("run_id", Utf8, false),
        f("input_id", Utf8, false),
        f("input_key", Utf8, false),
        f("source_uri", Utf8, false),
        f("content_hash", Utf8, false),
        f("inventory_hash", Utf8, false),
        f("size", UInt64, false),
        f("records", UInt64, false),
        f("flow_rows", UInt64, false),
        f("quarantined", UInt64, false),
        f("ingested_at", ts(), false),
        f("decoders", UInt64, true),
    ]))
}

/// `runs`: one row per run with its conservation balance.
pub fn runs() -> SchemaRef {
    use DataType::*;
    let mut fields = vec![
        f("run_id", Utf8, false),
        f("command", Utf8, false),
        f("started_at", ts(), false),
        f("finished_at", ts(), false),
        f("inputs_read", UInt64, false),
        f("inputs_skipped", UInt64, false),
    ];
    for n in [
        "records_in",
        "records_attributed",
        "records_unattributed",
        "records_filtered",
        "records_coverage",
        "records_quarantined",
        "bytes_in",
        "bytes_attributed",
        "bytes_unattributed",
        "bytes_filtered",
    ] {
        fields.push(f(n, UInt64, false));
    }
    // Added with broker metrics: older runs' files lack it (read as null).
    fields.push(f("records_metrics", UInt64, true));
    fields.push(f("balanced", Boolean, false));
    fields.push(f("unattributed_by_reason", Utf8, false));
    Arc::new(Schema::new(fields))
}
