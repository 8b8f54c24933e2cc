//! Column builders that turn attributed records into Arrow batches of the warehouse tables
//! (schemas in `linkmeter_warehouse::registry`). Counts the decoders read as `u64` are stored
//! as Delta's signed `long`; the pipeline refuses records whose counts do not fit.

use std::sync::Arc;

use crate::attribute::Attribution;
use crate::decode::{BadInput, FlowRecord, MetricPoint, Position};
use crate::hours::HourShare;
use crate::inventory::Index;
use arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use linkmeter_warehouse::registry::{BROKER_METRICS, COVERAGE, FLOWS, QUARANTINE};

fn ts_builder() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

/// Lineage shared by every row of one input.
#[derive(Debug, Clone)]
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

/// Builds `flows` rows for one partition.
pub struct FlowsBuilder {
    usage_hour: TimestampMicrosecondBuilder,
    bytes: Int64Builder,
    packets: Int64Builder,
    status: StringBuilder,
    reason: StringBuilder,
    direction: StringBuilder,
    observed_at: StringBuilder,
    cluster_arn: StringBuilder,
    cluster_name: StringBuilder,
    region: StringBuilder,
    auth_scheme: StringBuilder,
    connection_arn: StringBuilder,
    client_account_id: StringBuilder,
    vpc_id: StringBuilder,
    endpoint_id: StringBuilder,
    endpoint_eni: StringBuilder,
    az_id: StringBuilder,
    broker_id: Int32Builder,
    flow_start: TimestampMicrosecondBuilder,
    flow_end: TimestampMicrosecondBuilder,
    record_bytes: Int64Builder,
    record_packets: Int64Builder,
    interface_id: StringBuilder,
    log_account_id: StringBuilder,
    log_vpc_id: StringBuilder,
    srcaddr: StringBuilder,
    dstaddr: StringBuilder,
    srcport: Int32Builder,
    dstport: Int32Builder,
    protocol: Int32Builder,
    action: StringBuilder,
    extra: StringBuilder,
    source_uri: StringBuilder,
    source_line: Int64Builder,
    source_offset: Int64Builder,
    input_id: StringBuilder,
    run_id: StringBuilder,
    log_region: StringBuilder,
    log_az_id: StringBuilder,
    context_account: StringBuilder,
    rows: usize,
}

impl Default for FlowsBuilder {
    fn default() -> Self {
        FlowsBuilder {
            usage_hour: ts_builder(),
            bytes: Int64Builder::new(),
            packets: Int64Builder::new(),
            status: StringBuilder::new(),
            reason: StringBuilder::new(),
            direction: StringBuilder::new(),
            observed_at: StringBuilder::new(),
            cluster_arn: StringBuilder::new(),
            cluster_name: StringBuilder::new(),
            region: StringBuilder::new(),
            auth_scheme: StringBuilder::new(),
            connection_arn: StringBuilder::new(),
            client_account_id: StringBuilder::new(),
            vpc_id: StringBuilder::new(),
            endpoint_id: StringBuilder::new(),
            endpoint_eni: StringBuilder::new(),
            az_id: StringBuilder::new(),
            broker_id: Int32Builder::new(),
            flow_start: ts_builder(),
            flow_end: ts_builder(),
            record_bytes: Int64Builder::new(),
            record_packets: Int64Builder::new(),
            interface_id: StringBuilder::new(),
            log_account_id: StringBuilder::new(),
            log_vpc_id: StringBuilder::new(),
            srcaddr: StringBuilder::new(),
            dstaddr: StringBuilder::new(),
            srcport: Int32Builder::new(),
            dstport: Int32Builder::new(),
            protocol: Int32Builder::new(),
            action: StringBuilder::new(),
            extra: StringBuilder::new(),
            source_uri: StringBuilder::new(),
            source_line: Int64Builder::new(),
            source_offset: Int64Builder::new(),
            input_id: StringBuilder::new(),
            run_id: StringBuilder::new(),
            log_region: StringBuilder::new(),
            log_az_id: StringBuilder::new(),
            context_account: StringBuilder::new(),
            rows: 0,
        }
    }
}

const MICROS: i64 = 1_000_000;

/// A count as the warehouse's signed 64-bit integer. Callers refuse larger counts before they
/// reach a builder (see `pipeline::input`); saturating here keeps a missed case visible, never
/// wrapped to a negative.
fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Formats an address straight into the column buffer (no String per row).
fn append_ip(b: &mut StringBuilder, ip: Option<std::net::IpAddr>) {
    use std::fmt::Write;
    match ip {
        Some(ip) => {
            let _ = write!(b, "{ip}");
            b.append_value("");
        }
        None => b.append_null(),
    }
}

impl FlowsBuilder {
    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no rows are buffered.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one hour's share of a relevant record.
    pub fn append(
        &mut self,
        rec: &FlowRecord<'_>,
        a: &Attribution,
        share: &HourShare,
        pos: Position,
        ix: &Index,
        lineage: &Lineage,
    ) {
        self.rows += 1;
        self.usage_hour.append_value(share.hour * MICROS);
        self.bytes.append_value(n(share.bytes));
        self.packets.append_value(n(share.packets));
        self.status.append_value(if a.reason.is_none() {
            "attributed"
        } else {
            "unattributed"
        });
        self.reason.append_option(a.reason.map(|r| r.as_str()));
        self.direction.append_value(a.direction.as_str());
        self.observed_at.append_value(a.observed.as_str());
        match a.eni {
            Some(e) => {
                let eni = &ix.enis[e];
                let c = ix.conn_of(e);
                self.cluster_arn.append_value(&c.cluster_arn);
                self.cluster_name.append_value(&c.cluster_name);
                self.region.append_value(&c.region);
                self.auth_scheme.append_value(c.auth.as_str());
                self.connection_arn.append_value(&c.arn);
                self.client_account_id.append_value(&c.client_account);
                self.vpc_id.append_value(&c.vpc_id);
                self.endpoint_id.append_value(&c.endpoint_id);
                self.endpoint_eni.append_value(&eni.id);
                self.az_id.append_value(&eni.az_id);
            }
            None => {
                for b in [
                    &mut self.cluster_arn,
                    &mut self.cluster_name,
                    &mut self.auth_scheme,
                    &mut self.connection_arn,
                    &mut self.client_account_id,
                    &mut self.endpoint_id,
                    &mut self.endpoint_eni,
                ] {
                    b.append_null();
                }
                self.region.append_option(rec.region);
                self.vpc_id.append_option(rec.vpc_id);
                self.az_id.append_option(rec.az_id);
            }
        }
        self.broker_id.append_option(a.broker_id.map(i32::from));
        self.flow_start
            .append_value(rec.start.unwrap_or(0) * MICROS);
        self.flow_end.append_value(rec.end.unwrap_or(0) * MICROS);
        self.record_bytes.append_value(n(rec.bytes.unwrap_or(0)));
        self.record_packets
            .append_value(n(rec.packets.unwrap_or(0)));
        self.interface_id.append_option(rec.interface_id);
        self.log_account_id.append_option(rec.account_id);
        self.log_vpc_id.append_option(rec.vpc_id);
        append_ip(&mut self.srcaddr, rec.srcaddr);
        append_ip(&mut self.dstaddr, rec.dstaddr);
        self.srcport.append_option(rec.srcport.map(i32::from));
        self.dstport.append_option(rec.dstport.map(i32::from));
        self.protocol.append_option(rec.protocol.map(i32::from));
        self.action.append_option(rec.action);
        self.extra
            .append_option((!rec.extra.is_empty()).then_some(rec.extra.as_str()));
        self.source_uri.append_value(&lineage.source_uri);
        self.source_line.append_value(n(pos.line));
        self.source_offset.append_value(n(pos.offset));
        self.input_id.append_value(&lineage.input_id);
        self.run_id.append_value(&lineage.run_id);
        self.log_region.append_option(rec.region);
        self.log_az_id.append_option(rec.az_id);
        self.context_account
            .append_option(lineage.context_account.as_deref());
    }

    /// Takes the buffered rows as a batch of the `flows` schema.
    pub fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.usage_hour.finish()),
            Arc::new(self.bytes.finish()),
            Arc::new(self.packets.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.direction.finish()),
            Arc::new(self.observed_at.finish()),
            Arc::new(self.cluster_arn.finish()),
            Arc::new(self.cluster_name.finish()),
            Arc::new(self.region.finish()),
            Arc::new(self.auth_scheme.finish()),
            Arc::new(self.connection_arn.finish()),
            Arc::new(self.client_account_id.finish()),
            Arc::new(self.vpc_id.finish()),
            Arc::new(self.endpoint_id.finish()),
            Arc::new(self.endpoint_eni.finish()),
            Arc::new(self.az_id.finish()),
            Arc::new(self.broker_id.finish()),
            Arc::new(self.flow_start.finish()),
            Arc::new(self.flow_end.finish()),
            Arc::new(self.record_bytes.finish()),
            Arc::new(self.record_packets.finish()),
            Arc::new(self.interface_id.finish()),
            Arc::new(self.log_account_id.finish()),
            Arc::new(self.log_vpc_id.finish()),
            Arc::new(self.srcaddr.finish()),
            Arc::new(self.dstaddr.finish()),
            Arc::new(self.srcport.finish()),
            Arc::new(self.dstport.finish()),
            Arc::new(self.protocol.finish()),
            Arc::new(self.action.finish()),
            Arc::new(self.extra.finish()),
            Arc::new(self.source_uri.finish()),
            Arc::new(self.source_line.finish()),
            Arc::new(self.source_offset.finish()),
            Arc::new(self.input_id.finish()),
            Arc::new(self.run_id.finish()),
            Arc::new(self.log_region.finish()),
            Arc::new(self.log_az_id.finish()),
            Arc::new(self.context_account.finish()),
        ];
        RecordBatch::try_new(FLOWS.schema(), cols).expect("builders match the flows schema")
    }
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
