//! Column builders that turn attributed records into Arrow batches of the warehouse tables
//! (schemas in `linkmeter_warehouse::registry`). Counts the decoders read as `u64` are stored
//! as Delta's signed `long`; the pipeline refuses records whose counts do not fit.

use std::sync::Arc;

use crate::decode::{BadInput, FlowRecord, MetricPoint, Position};
use crate::inventory::Index;
use arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use linkmeter_warehouse::registry::{BROKER_METRICS, COVERAGE, QUARANTINE};

mod coded;
mod flows;
pub use flows::FlowsBuilder;

pub(crate) const MICROS: i64 = 1_000_000;

/// A count as the warehouse's signed 64-bit integer. Callers refuse larger counts before they
/// reach a builder (see `pipeline::input`); saturating here keeps a missed case visible, never
/// wrapped to a negative.
pub(crate) fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn ts_builder() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

/// Lineage shared by every row of one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// Where the input came from (path or URI).
    pub source_uri: String,
    /// Stable id of the input (names its output files).
    pub input_id: String,
    /// The run writing the rows.
    pub run_id: String,
    /// The account the input belongs to (S3 key or source config), which attribution reads.
    pub context_account: Option<String>,
}

/// Builds `coverage` rows.
#[derive(Default)]
pub struct CoverageBuilder {
    interface_id: StringBuilder,
    log_status: StringBuilder,
    window_start: Option<TimestampMicrosecondBuilder>,
    window_end: Option<TimestampMicrosecondBuilder>,
    log_account_id: StringBuilder,
    endpoint_id: StringBuilder,
    connection_arn: StringBuilder,
    source_uri: StringBuilder,
    source_line: Int64Builder,
    input_id: StringBuilder,
    run_id: StringBuilder,
    rows: usize,
}

impl CoverageBuilder {
    /// Rows buffered.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no rows are buffered.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends a NODATA/SKIPDATA record.
    pub fn append(&mut self, rec: &FlowRecord<'_>, pos: Position, ix: &Index, lineage: &Lineage) {
        self.rows += 1;
        let eni = rec.interface_id.and_then(|i| ix.eni_by_id(i));
        self.interface_id.append_option(rec.interface_id);
        self.log_status.append_value(rec.log_status.unwrap_or("-"));
        self.window_start
            .get_or_insert_with(ts_builder)
            .append_option(rec.start.map(|s| s * MICROS));
        self.window_end
            .get_or_insert_with(ts_builder)
            .append_option(rec.end.map(|s| s * MICROS));
        self.log_account_id.append_option(rec.account_id);
        self.endpoint_id
            .append_option(eni.map(|e| ix.conn_of(e).endpoint_id.as_str()));
        self.connection_arn
            .append_option(eni.map(|e| ix.conn_of(e).arn.as_str()));
        self.source_uri.append_value(&lineage.source_uri);
        self.source_line.append_value(n(pos.line));
        self.input_id.append_value(&lineage.input_id);
        self.run_id.append_value(&lineage.run_id);
    }

    /// Takes the buffered rows as a batch of the `coverage` schema.
    pub fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.interface_id.finish()),
            Arc::new(self.log_status.finish()),
            Arc::new(self.window_start.get_or_insert_with(ts_builder).finish()),
            Arc::new(self.window_end.get_or_insert_with(ts_builder).finish()),
            Arc::new(self.log_account_id.finish()),
            Arc::new(self.endpoint_id.finish()),
            Arc::new(self.connection_arn.finish()),
            Arc::new(self.source_uri.finish()),
            Arc::new(self.source_line.finish()),
            Arc::new(self.input_id.finish()),
            Arc::new(self.run_id.finish()),
        ];
        RecordBatch::try_new(COVERAGE.schema(), cols).expect("builders match the coverage schema")
    }
}

/// Builds `broker_metrics` rows (few per input: one per broker, metric and minute).
#[derive(Default)]
pub struct MetricsBuilder {
    rows: Vec<(MetricPoint, Option<String>, Position, Lineage)>,
}

impl MetricsBuilder {
    /// Whether no rows are buffered.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Appends a datapoint, with the cluster's ARN when the inventory knows it.
    pub fn append(&mut self, p: &MetricPoint, pos: Position, ix: &Index, lineage: &Lineage) {
        let arn = p.cluster.as_deref().and_then(|c| {
            ix.cluster_by_name(c, p.region.as_deref(), p.account_id.as_deref())
                .map(str::to_string)
        });
        self.rows.push((p.clone(), arn, pos, lineage.clone()));
    }

    /// Takes the buffered rows as a batch of the `broker_metrics` schema.
    pub fn finish(&mut self) -> RecordBatch {
        use arrow::array::Float64Builder;
        let rows = std::mem::take(&mut self.rows);
        let (mut start, mut hour) = (ts_builder(), ts_builder());
        let mut period = Int32Builder::new();
        let mut broker = Int32Builder::new();
        let mut bytes = Int64Builder::new();
        let (mut line, mut offset) = (Int64Builder::new(), Int64Builder::new());
        // The string and statistic columns, in schema order around the typed ones above.
        let s = || StringBuilder::new();
        let (mut arn, mut cluster, mut topic, mut auth) = (s(), s(), s(), s());
        let (mut namespace, mut metric, mut unit, mut dims) = (s(), s(), s(), s());
        let (mut account, mut region, mut stream, mut format) = (s(), s(), s(), s());
        let (mut uri, mut input, mut run) = (s(), s(), s());
        let f = || Float64Builder::new();
        let (mut count, mut sum, mut min, mut max, mut counter) = (f(), f(), f(), f(), f());
        for (p, cluster_arn, pos, l) in rows {
            let micros = p.time_ms * 1000;
            start.append_value(micros);
            hour.append_value(micros.div_euclid(HOUR_MICROS) * HOUR_MICROS);
            period.append_value(i32::try_from(p.period_secs).unwrap_or(i32::MAX));
            arn.append_option(cluster_arn);
            cluster.append_option(p.cluster.as_deref());
            broker.append_option(p.broker.map(i32::from));
            topic.append_option(p.topic.as_deref());
            auth.append_option(p.client_auth.as_deref());
            namespace.append_value(&p.namespace);
            metric.append_value(&p.metric);
            unit.append_option(p.unit.as_deref());
            dims.append_value(&p.dimensions);
            count.append_option(p.count);
            sum.append_option(p.sum);
            min.append_option(p.min);
            max.append_option(p.max);
            counter.append_option(p.counter);
            bytes.append_option(p.bytes().and_then(|b| i64::try_from(b).ok()));
            account.append_option(p.account_id.as_deref());
            region.append_option(p.region.as_deref());
            stream.append_option(p.stream.as_deref());
            format.append_value(p.format);
            uri.append_value(&l.source_uri);
            line.append_value(n(pos.line));
            offset.append_value(n(pos.offset));
            input.append_value(&l.input_id);
            run.append_value(&l.run_id);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(start.finish()),
            Arc::new(period.finish()),
            Arc::new(hour.finish()),
            Arc::new(arn.finish()),
            Arc::new(cluster.finish()),
            Arc::new(broker.finish()),
            Arc::new(topic.finish()),
            Arc::new(auth.finish()),
            Arc::new(namespace.finish()),
            Arc::new(metric.finish()),
            Arc::new(unit.finish()),
            Arc::new(dims.finish()),
            Arc::new(count.finish()),
            Arc::new(sum.finish()),
            Arc::new(min.finish()),
            Arc::new(max.finish()),
            Arc::new(counter.finish()),
            Arc::new(bytes.finish()),
            Arc::new(account.finish()),
            Arc::new(region.finish()),
            Arc::new(stream.finish()),
            Arc::new(format.finish()),
            Arc::new(uri.finish()),
            Arc::new(line.finish()),
            Arc::new(offset.finish()),
            Arc::new(input.finish()),
            Arc::new(run.finish()),
        ];
        RecordBatch::try_new(BROKER_METRICS.schema(), cols)
            .expect("builders match the broker_metrics schema")
    }
}

const HOUR_MICROS: i64 = 3_600_000_000;

/// Builds `quarantine` rows.
#[derive(Default)]
pub struct QuarantineBuilder {
    rows: Vec<(BadInput, Lineage)>,
}

impl QuarantineBuilder {
    /// Rows buffered.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no rows are buffered.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Appends one bad input of the input described by `lineage`.
    pub fn append(&mut self, bad: BadInput, lineage: &Lineage) {
        self.rows.push((bad, lineage.clone()));
    }

    /// Takes the buffered rows as a batch of the `quarantine` schema.
    pub fn finish(&mut self, now_micros: i64) -> RecordBatch {
        let rows = std::mem::take(&mut self.rows);
        let mut uri = StringBuilder::new();
        let mut line = Int64Builder::new();
        let mut offset = Int64Builder::new();
        let mut reason = StringBuilder::new();
        let mut raw = StringBuilder::new();
        let mut records = Int64Builder::new();
        let mut input_id = StringBuilder::new();
        let mut run_id = StringBuilder::new();
        let mut at = ts_builder();
        for (r, l) in rows {
            uri.append_value(&l.source_uri);
            line.append_value(n(r.position.line));
            offset.append_value(n(r.position.offset));
            reason.append_value(&r.reason);
            raw.append_value(&r.raw);
            records.append_value(n(r.records));
            input_id.append_value(&l.input_id);
            run_id.append_value(&l.run_id);
            at.append_value(now_micros);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(uri.finish()),
            Arc::new(line.finish()),
            Arc::new(offset.finish()),
            Arc::new(reason.finish()),
            Arc::new(raw.finish()),
            Arc::new(records.finish()),
            Arc::new(input_id.finish()),
            Arc::new(run_id.finish()),
            Arc::new(at.finish()),
        ];
        RecordBatch::try_new(QUARANTINE.schema(), cols)
            .expect("builders match the quarantine schema")
    }
}
