//! `flows` rows. A row has 40 columns; building each text column value by value was a fifth of
//! ingest's time, so the columns a row takes from a small set (the inventory's, the outcome's
//! and the input's) are kept as one code per row and spelled out once per batch with Arrow's
//! `take`; only the record's own fields are appended value by value.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondBuilder, UInt32Array,
};

use super::{n, ts_builder, Lineage, MICROS};
use crate::attribute::{Attribution, Direction, Observed, Reason};
use crate::decode::{FlowRecord, Position};
use crate::hours::HourShare;
use crate::inventory::Index;
use linkmeter_warehouse::registry::FLOWS;

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
    // Columns an unattributed row takes from the record, an attributed one from the inventory.
    region: StringBuilder,
    vpc_id: StringBuilder,
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
            region: StringBuilder::new(),
            vpc_id: StringBuilder::new(),
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

/// Per-row codes (`None` for a null value) as the indices `take` reads.
fn codes(it: impl Iterator<Item = Option<u32>>) -> UInt32Array {
    it.collect()
}

/// `values` picked by `codes` (a null code is a null value).
fn pick(values: StringArray, codes: &UInt32Array) -> ArrayRef {
    arrow::compute::take(&values, codes, None).expect("codes index their values")
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
        self.usage_hour.append_value(share.hour * MICROS);
        self.bytes.append_value(n(share.bytes));
        self.packets.append_value(n(share.packets));
        self.outcome.push(a.reason.map_or(0, |r| r as u8 + 1));
        self.way.push(
            u8::from(a.direction == Direction::FromCluster)
                | u8::from(a.observed == Observed::Client) << 1,
        );
        match a.eni {
            Some(e) => {
                self.eni.push(u32::try_from(e).unwrap_or(NO_ENI));
                let c = ix.conn_of(e);
                self.region.append_value(&c.region);
                self.vpc_id.append_value(&c.vpc_id);
                self.az_id.append_value(&ix.enis[e].az_id);
            }
            None => {
                self.eni.push(NO_ENI);
                self.region.append_option(rec.region);
                self.vpc_id.append_option(rec.vpc_id);
                self.az_id.append_option(rec.az_id);
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
        append_ip(&mut self.srcaddr, rec.srcaddr);
        append_ip(&mut self.dstaddr, rec.dstaddr);
        self.srcport.append_option(rec.srcport.map(i32::from));
        self.dstport.append_option(rec.dstport.map(i32::from));
        self.protocol.append_option(rec.protocol.map(i32::from));
        self.action.append_option(rec.action);
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
        let outcome = std::mem::take(&mut self.outcome);
        let way = std::mem::take(&mut self.way);
        let eni = std::mem::take(&mut self.eni);
        let lineage = std::mem::take(&mut self.lineage);
        let lineages = std::mem::take(&mut self.lineages);

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
        let lineage_codes = UInt32Array::from(lineage);
        let of_lineage = |f: &dyn Fn(&Lineage) -> Option<&str>| {
            pick(lineages.iter().map(f).collect(), &lineage_codes)
        };

        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.usage_hour.finish()),
            Arc::new(self.bytes.finish()),
            Arc::new(self.packets.finish()),
            status,
            reason,
            direction,
            observed,
            of_eni(&|e| ix.conn_of(e).cluster_arn.clone()),
            of_eni(&|e| ix.conn_of(e).cluster_name.clone()),
            Arc::new(self.region.finish()),
            of_eni(&|e| ix.conn_of(e).auth.as_str().to_string()),
            of_eni(&|e| ix.conn_of(e).arn.clone()),
            of_eni(&|e| ix.conn_of(e).client_account.clone()),
            Arc::new(self.vpc_id.finish()),
            of_eni(&|e| ix.conn_of(e).endpoint_id.clone()),
            of_eni(&|e| ix.enis[e].id.clone()),
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
            of_lineage(&|l| Some(&l.source_uri)),
            Arc::new(self.source_line.finish()),
            Arc::new(self.source_offset.finish()),
            of_lineage(&|l| Some(&l.input_id)),
            of_lineage(&|l| Some(&l.run_id)),
            Arc::new(self.log_region.finish()),
            Arc::new(self.log_az_id.finish()),
            of_lineage(&|l| l.context_account.as_deref()),
        ];
        RecordBatch::try_new(FLOWS.schema(), cols).expect("builders match the flows schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    #[test]
    fn reason_codes_name_their_reasons() {
        for (code, r) in REASONS.iter().enumerate() {
            assert_eq!(*r as usize, code, "{r:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn addresses_are_spelled_as_display_spells_them(a: u32, v6: u128) {
            let ips = [
                std::net::IpAddr::from(std::net::Ipv4Addr::from(a)),
                std::net::IpAddr::from(std::net::Ipv6Addr::from(v6)),
            ];
            let mut b = StringBuilder::new();
            for ip in ips {
                append_ip(&mut b, Some(ip));
            }
            append_ip(&mut b, None);
            let col = b.finish();
            proptest::prop_assert_eq!(col.value(0), ips[0].to_string());
            proptest::prop_assert_eq!(col.value(1), ips[1].to_string());
            proptest::prop_assert!(col.is_null(2));
        }
    }
}
