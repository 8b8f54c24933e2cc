//! `flows` rows. A row has 40 columns; building each text column value by value was a fifth of
//! ingest's time, so the columns a row takes from a small set (the inventory's, the outcome's
//! and the input's) are kept as one code per row, finished as Arrow dictionaries of those
//! codes, and written to Parquet from the codes (`parquet_io::encode_columns`). Region, VPC
//! and AZ come from the inventory for attributed rows (coded once per ENI, `coded.rs`) and
//! from the record otherwise; the record's own fields are appended value by value.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, DictionaryArray, Int32Builder, Int64Builder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondBuilder, UInt32Array,
};
use arrow::datatypes::UInt32Type;

use super::coded::CodedText;
use super::{n, ts_builder, Lineage, MICROS};
use crate::attribute::{Attribution, Direction, Observed, Reason};
use crate::decode::{FlowRecord, Position};
use crate::hours::HourShare;
use crate::inventory::Index;
use linkmeter_warehouse::registry::{FLOWS, FLOW_HOURS};

/// Unattributed reasons by code (`reason as usize`); checked by a test.
const REASONS: [Reason; 6] = [
    Reason::UnknownEndpoint,
    Reason::UnexpectedPort,
    Reason::OutsideConnectionLifetime,
    Reason::Rejected,
    Reason::NoInventoryRegion,
    Reason::AmbiguousIp,
];

/// No endpoint ENI (an unattributed row that matched none).
const NO_ENI: u32 = u32::MAX;

/// A `flow_hours` group: hour (µs), endpoint ENI code, way and outcome codes. Every key
/// column of `flow_hours` is a function of these, so rows are summed as they are appended
/// (summing the finished rows by their text keys was 5% of ingest). Packed in one integer:
/// hashing four fields for every row measured at 2% of ingest.
type GroupKey = u128;

fn group_key(hour: i64, eni: u32, way: u8, outcome: u8) -> GroupKey {
    // The hour's bits as they are (a cast that loses nothing and `unpack` reverses).
    u128::from(hour as u64) << 64
        | u128::from(eni) << 16
        | u128::from(way) << 8
        | u128::from(outcome)
}

fn unpack(k: GroupKey) -> (i64, u32, u8, u8) {
    (
        (k >> 64) as u64 as i64,
        (k >> 16) as u32,
        (k >> 8) as u8,
        k as u8,
    )
}

/// The summary rows of a finished batch: the `flow_hours` key columns, one row per group,
/// and each group's (rows, bytes, packets), for `flow_hours::from_groups`.
pub struct Groups {
    /// The key columns by name.
    pub keys: RecordBatch,
    /// Each key row's sums.
    pub sums: Vec<(i64, i128, i128)>,
}

/// Builds `flows` rows for one partition.
pub struct FlowsBuilder {
    usage_hour: TimestampMicrosecondBuilder,
    bytes: Int64Builder,
    packets: Int64Builder,
    /// 0 attributed, else 1 + the reason's code.
    outcome: Vec<u8>,
    /// Bit 0: from the cluster; bit 1: observed on a client ENI.
    way: Vec<u8>,
    /// Index of the endpoint ENI in the inventory, or [`NO_ENI`].
    eni: Vec<u32>,
    /// Index into `lineages`.
    lineage: Vec<u32>,
    lineages: Vec<Lineage>,
    groups: rustc_hash::FxHashMap<GroupKey, (i64, i128, i128)>,
    // Columns an unattributed row takes from the record, an attributed one from the inventory.
    region: CodedText,
    vpc_id: CodedText,
    az_id: CodedText,
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
    action: CodedText,
    extra: StringBuilder,
    source_line: Int64Builder,
    source_offset: Int64Builder,
    log_region: StringBuilder,
    log_az_id: StringBuilder,
}

impl Default for FlowsBuilder {
    fn default() -> Self {
        FlowsBuilder {
            usage_hour: ts_builder(),
            bytes: Int64Builder::new(),
            packets: Int64Builder::new(),
            outcome: Vec::new(),
            way: Vec::new(),
            eni: Vec::new(),
            lineage: Vec::new(),
            lineages: Vec::new(),
            groups: Default::default(),
            region: CodedText::default(),
            vpc_id: CodedText::default(),
            az_id: CodedText::default(),
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
            action: CodedText::default(),
            extra: StringBuilder::new(),
            source_line: Int64Builder::new(),
            source_offset: Int64Builder::new(),
            log_region: StringBuilder::new(),
            log_az_id: StringBuilder::new(),
        }
    }
}

/// Formats an address straight into the column buffer (no String per row). IPv4 is spelled
/// by hand: `Display` for addresses measured at a fifth of building a row.
pub(super) fn append_ip(b: &mut StringBuilder, ip: Option<std::net::IpAddr>) {
    use std::fmt::Write;
    match ip {
        Some(std::net::IpAddr::V4(v4)) => {
            let mut text = [0u8; 15];
            let mut n = 0;
            for (k, o) in v4.octets().into_iter().enumerate() {
                if k > 0 {
                    text[n] = b'.';
                    n += 1;
                }
                let digits = [o / 100, o / 10 % 10, o % 10];
                let skip = if o >= 100 {
                    0
                } else if o >= 10 {
                    1
                } else {
                    2
                };
                for d in &digits[skip..] {
                    text[n] = b'0' + d;
                    n += 1;
                }
            }
            b.append_value(std::str::from_utf8(&text[..n]).expect("digits and dots"));
        }
        Some(ip) => {
            let _ = write!(b, "{ip}");
            b.append_value("");
        }
        None => b.append_null(),
    }
}

/// Per-row codes (`None` for a null value).
fn codes(it: impl Iterator<Item = Option<u32>>) -> UInt32Array {
    it.collect()
}

/// `values` picked by `codes` (a null code is a null value), as a dictionary.
fn pick(values: StringArray, codes: &UInt32Array) -> ArrayRef {
    Arc::new(DictionaryArray::<UInt32Type>::new(
        codes.clone(),
        Arc::new(values),
    ))
}

/// A column as the `flows` schema types it (dictionaries spelled out).
fn spelled(a: &ArrayRef, to: &arrow::datatypes::DataType) -> ArrayRef {
    match a.data_type() == to {
        true => a.clone(),
        false => arrow::compute::cast(a, to).expect("codes index their values"),
    }
}

impl FlowsBuilder {
    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.outcome.len()
    }

    /// Whether no rows are buffered.
    pub fn is_empty(&self) -> bool {
        self.outcome.is_empty()
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
        let (bytes, packets) = (n(share.bytes), n(share.packets));
        self.usage_hour.append_value(share.hour * MICROS);
        self.bytes.append_value(bytes);
        self.packets.append_value(packets);
        let outcome = a.reason.map_or(0, |r| r as u8 + 1);
        let way = u8::from(a.direction == Direction::FromCluster)
            | u8::from(a.observed == Observed::Client) << 1;
        let eni = a.eni.map_or(NO_ENI, |e| u32::try_from(e).unwrap_or(NO_ENI));
        self.outcome.push(outcome);
        self.way.push(way);
        self.eni.push(eni);
        let g = self
            .groups
            .entry(group_key(share.hour * MICROS, eni, way, outcome))
            .or_default();
        g.0 += 1;
        g.1 += i128::from(bytes);
        g.2 += i128::from(packets);
        match a.eni {
            Some(e) => {
                self.region.push_of_eni(e, || &ix.conn_of(e).region);
                self.vpc_id.push_of_eni(e, || &ix.conn_of(e).vpc_id);
                self.az_id.push_of_eni(e, || &ix.enis[e].az_id);
            }
            None => {
                self.region.push(rec.region);
                self.vpc_id.push(rec.vpc_id);
                self.az_id.push(rec.az_id);
            }
        }
        if self.lineages.last() != Some(lineage) {
            self.lineages.push(lineage.clone());
        }
        self.lineage.push((self.lineages.len() - 1) as u32);
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
        for (b, ip, text) in [
            (&mut self.srcaddr, rec.srcaddr, rec.addr_text[0]),
            (&mut self.dstaddr, rec.dstaddr, rec.addr_text[1]),
        ] {
            match text.filter(|_| ip.is_some()) {
                Some(t) => b.append_value(t),
                None => append_ip(b, ip),
            }
        }
        self.srcport.append_option(rec.srcport.map(i32::from));
        self.dstport.append_option(rec.dstport.map(i32::from));
        self.protocol.append_option(rec.protocol.map(i32::from));
        self.action.push_action(rec.action);
        self.extra
            .append_option((!rec.extra.is_empty()).then_some(rec.extra.as_str()));
        self.source_line.append_value(n(pos.line));
        self.source_offset.append_value(n(pos.offset));
        self.log_region.append_option(rec.region);
        self.log_az_id.append_option(rec.az_id);
    }

    /// Takes the buffered rows as a batch of the `flows` schema; `ix` is the inventory the
    /// rows were appended with.
    pub fn finish(&mut self, ix: &Index) -> RecordBatch {
        self.finish_with_groups(ix).0
    }

    /// [`finish`](Self::finish), with the rows' `flow_hours` groups.
    pub fn finish_with_groups(&mut self, ix: &Index) -> (RecordBatch, Groups) {
        let (cols, groups) = self.finish_columns(ix);
        let schema = FLOWS.schema();
        let cols = cols
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| spelled(c, f.data_type()))
            .collect();
        let rows = RecordBatch::try_new(schema, cols).expect("builders match the flows schema");
        (rows, groups)
    }

    /// The buffered rows as the `flows` schema's columns, those spelled from codes as
    /// dictionaries of `UInt32` codes (what `parquet_io::encode_columns` takes), with the
    /// rows' `flow_hours` groups.
    pub fn finish_columns(&mut self, ix: &Index) -> (Vec<ArrayRef>, Groups) {
        let outcome = std::mem::take(&mut self.outcome);
        let way = std::mem::take(&mut self.way);
        let eni = std::mem::take(&mut self.eni);
        let lineage = std::mem::take(&mut self.lineage);
        let lineages = std::mem::take(&mut self.lineages);
        let groups = std::mem::take(&mut self.groups);

        let k = Spelled::new(ix, &outcome, &way, &eni);
        let lineage_codes = UInt32Array::from(lineage);
        let of_lineage = |f: &dyn Fn(&Lineage) -> Option<&str>| {
            pick(lineages.iter().map(f).collect(), &lineage_codes)
        };
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.usage_hour.finish()),
            Arc::new(self.bytes.finish()),
            Arc::new(self.packets.finish()),
            k.status,
            k.reason,
            k.direction,
            k.observed,
            k.cluster_arn,
            k.cluster_name,
            self.region.finish(),
            k.auth_scheme,
            k.connection_arn,
            k.client_account,
            self.vpc_id.finish(),
            k.endpoint_id,
            k.endpoint_eni,
            self.az_id.finish(),
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
            self.action.finish(),
            Arc::new(self.extra.finish()),
            of_lineage(&|l| Some(&l.source_uri)),
            Arc::new(self.source_line.finish()),
            Arc::new(self.source_offset.finish()),
            of_lineage(&|l| Some(&l.input_id)),
            of_lineage(&|l| Some(&l.run_id)),
            Arc::new(self.log_region.finish()),
            Arc::new(self.log_az_id.finish()),
            of_lineage(&|l| l.context_account.as_deref()),
        ];
        (cols, group_rows(ix, groups))
    }
}

/// The key columns of the given groups, spelled as their rows spell them.
fn group_rows(ix: &Index, groups: rustc_hash::FxHashMap<GroupKey, (i64, i128, i128)>) -> Groups {
    let (mut hour, mut eni, mut way, mut outcome) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut sums = Vec::with_capacity(groups.len());
    for (k, s) in groups {
        let (h, e, w, o) = unpack(k);
        hour.push(h);
        eni.push(e);
        way.push(w);
        outcome.push(o);
        sums.push(s);
    }
    let k = Spelled::new(ix, &outcome, &way, &eni);
    let usage_hour: ArrayRef =
        Arc::new(arrow::array::TimestampMicrosecondArray::from(hour).with_timezone("UTC"));
    let by_name = [
        ("usage_hour", usage_hour),
        ("endpoint_eni", k.endpoint_eni),
        ("observed_at", k.observed),
        ("direction", k.direction),
        ("status", k.status),
        ("reason", k.reason),
        ("cluster_arn", k.cluster_arn),
        ("cluster_name", k.cluster_name),
        ("auth_scheme", k.auth_scheme),
        ("connection_arn", k.connection_arn),
        ("client_account_id", k.client_account),
    ];
    let schema = FLOW_HOURS.schema();
    let by_name = by_name.map(|(name, c)| {
        let f = schema.field_with_name(name).expect("a flow_hours key");
        (name, spelled(&c, f.data_type()))
    });
    let fields: Vec<_> = by_name
        .iter()
        .map(|(name, _)| {
            schema
                .field_with_name(name)
                .expect("a flow_hours key")
                .clone()
        })
        .collect();
    let keys = RecordBatch::try_new(
        Arc::new(arrow::datatypes::Schema::new(fields)),
        by_name.into_iter().map(|(_, c)| c).collect(),
    )
    .expect("key columns match flow_hours");
    Groups { keys, sums }
}

/// The text columns a row takes from its codes (outcome, way, endpoint ENI).
struct Spelled {
    status: ArrayRef,
    reason: ArrayRef,
    direction: ArrayRef,
    observed: ArrayRef,
    cluster_arn: ArrayRef,
    cluster_name: ArrayRef,
    auth_scheme: ArrayRef,
    connection_arn: ArrayRef,
    client_account: ArrayRef,
    endpoint_id: ArrayRef,
    endpoint_eni: ArrayRef,
}

impl Spelled {
    fn new(ix: &Index, outcome: &[u8], way: &[u8], eni: &[u32]) -> Spelled {
        let status = pick(
            StringArray::from(vec!["attributed", "unattributed"]),
            &codes(outcome.iter().map(|&o| Some(u32::from(o != 0)))),
        );
        let reason = pick(
            StringArray::from_iter_values(REASONS.iter().map(|r| r.as_str())),
            &codes(outcome.iter().map(|&o| o.checked_sub(1).map(u32::from))),
        );
        let direction = pick(
            StringArray::from_iter_values(
                [Direction::ToCluster, Direction::FromCluster].map(Direction::as_str),
            ),
            &codes(way.iter().map(|&w| Some(u32::from(w & 1)))),
        );
        let observed = pick(
            StringArray::from_iter_values(
                [Observed::Endpoint, Observed::Client].map(Observed::as_str),
            ),
            &codes(way.iter().map(|&w| Some(u32::from(w >> 1)))),
        );
        // The endpoint ENIs these rows name, numbered in order of first use.
        let mut local = vec![NO_ENI; ix.enis.len()];
        let mut used: Vec<usize> = Vec::new();
        let eni_codes = codes(eni.iter().map(|&e| {
            let slot = local.get_mut(e as usize)?;
            if *slot == NO_ENI {
                *slot = used.len() as u32;
                used.push(e as usize);
            }
            Some(*slot)
        }));
        let of_eni = |f: &dyn Fn(usize) -> String| -> ArrayRef {
            pick(
                StringArray::from_iter_values(used.iter().map(|&e| f(e))),
                &eni_codes,
            )
        };
        Spelled {
            status,
            reason,
            direction,
            observed,
            cluster_arn: of_eni(&|e| ix.conn_of(e).cluster_arn.clone()),
            cluster_name: of_eni(&|e| ix.conn_of(e).cluster_name.clone()),
            auth_scheme: of_eni(&|e| ix.conn_of(e).auth.as_str().to_string()),
            connection_arn: of_eni(&|e| ix.conn_of(e).arn.clone()),
            client_account: of_eni(&|e| ix.conn_of(e).client_account.clone()),
            endpoint_id: of_eni(&|e| ix.conn_of(e).endpoint_id.clone()),
            endpoint_eni: of_eni(&|e| ix.enis[e].id.clone()),
        }
    }
}

#[cfg(test)]
#[path = "flows_tests.rs"]
mod tests;
