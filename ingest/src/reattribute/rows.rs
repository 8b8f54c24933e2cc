//! One `flows` batch attributed again: each row's record rebuilt from its stored columns, run
//! through [`attribute`] with the new inventory and written back through the same
//! [`FlowsBuilder`] ingest uses, so a row re-attributed equals the row a fresh ingest writes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use arrow::array::{
    Array, AsArray, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};

use crate::attribute::{attribute, Outcome};
use crate::decode::{FlowRecord, Position};
use crate::hours::HourShare;
use crate::inventory::Index;
use crate::rows::{FlowsBuilder, Lineage};
use crate::source::account_from_key;

/// The columns attribution writes; a row whose columns here are unchanged is unchanged.
pub const ATTRIBUTION_COLUMNS: &[&str] = &[
    "status",
    "reason",
    "direction",
    "observed_at",
    "cluster_arn",
    "cluster_name",
    "region",
    "auth_scheme",
    "connection_arn",
    "client_account_id",
    "vpc_id",
    "endpoint_id",
    "endpoint_eni",
    "az_id",
    "broker_id",
];

/// Rows and bytes that moved from one verdict to another (`attributed`, or the reason).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Moves {
    /// `(from, to)` → (rows, bytes); `to` is `filtered` for rows no longer MSK traffic.
    pub by_change: BTreeMap<(String, String), (u64, u128)>,
}

impl Moves {
    /// Adds another batch's moves.
    pub fn merge(&mut self, o: Moves) {
        for (k, (r, b)) in o.by_change {
            let e = self.by_change.entry(k).or_default();
            e.0 += r;
            e.1 += b;
        }
    }

    /// Rows that changed verdict.
    pub fn rows(&self) -> u64 {
        self.by_change.values().map(|v| v.0).sum()
    }
}

/// A batch attributed again: the new rows (rows now filtered left out), whether anything
/// attribution writes changed, and what moved.
pub struct Redone {
    /// The rows, in the table's columns.
    pub batch: RecordBatch,
    /// Whether the rows differ from the stored ones (the file must be rewritten).
    pub changed: bool,
    /// Verdicts that changed.
    pub moves: Moves,
}

fn strs<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a StringArray, String> {
    b.column_by_name(name)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| format!("no text column {name}"))
}

fn i64s<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a Int64Array, String> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| format!("no integer column {name}"))
}

fn i32s<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a Int32Array, String> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Int32Type>())
        .ok_or_else(|| format!("no integer column {name}"))
}

fn times<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a TimestampMicrosecondArray, String> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| format!("no time column {name}"))
}

fn opt(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

fn opt_i32(a: &Int32Array, i: usize) -> Option<i32> {
    a.is_valid(i).then(|| a.value(i))
}

/// What a stored row's verdict was or is: `attributed` or the reason.
fn verdict<'a>(status: &'a str, reason: Option<&'a str>) -> &'a str {
    match reason {
        Some(r) if status != "attributed" => r,
        _ => status,
    }
}

impl Moves {
    fn add(&mut self, from: &str, to: &str, bytes: u128) {
        let e = self
            .by_change
            .entry((from.to_string(), to.to_string()))
            .or_default();
        e.0 += 1;
        e.1 += bytes;
    }
}

/// Attributes the rows of `b` (of the `flows` columns, old files read with nulls in the
/// columns added since) again under `ix`.
pub fn reattribute(b: &RecordBatch, ix: &Index) -> Result<Redone, String> {
    let c = Cols::of(b)?;
    let mut out = FlowsBuilder::default();
    let mut moves = Moves::default();
    let mut dropped = false;
    let mut lineage = Lineage {
        source_uri: String::new(),
        input_id: String::new(),
        run_id: String::new(),
        context_account: None,
    };
    // The `context_account` stored on the rows `lineage` was built for (it may be null and
    // the lineage's found again from the path).
    let mut stored_context: Option<String> = None;
    for i in 0..b.num_rows() {
        let parse_ip = |a: &StringArray| -> Result<Option<IpAddr>, String> {
            opt(a, i)
                .map(|s| {
                    s.parse()
                        .map_err(|_| format!("row {i}: {s:?} is not an address"))
                })
                .transpose()
        };
        // The record's region and AZ: their own columns, else (rows written before them, and
        // their copies) `region`/`az_id` where those are the record's, on rows without an
        // endpoint ENI. On attributed rows those hold the connection's: left out, a row that
        // loses its endpoint then says `unknown_endpoint` rather than `no_inventory_region`.
        let eni_less = c.endpoint_eni.is_null(i);
        let region = opt(c.log_region, i).or(opt(c.region, i).filter(|_| eni_less));
        let az = opt(c.log_az_id, i).or(opt(c.az_id, i).filter(|_| eni_less));
        let rec = FlowRecord {
            account_id: opt(c.log_account_id, i),
            interface_id: opt(c.interface_id, i),
            srcaddr: parse_ip(c.srcaddr)?,
            dstaddr: parse_ip(c.dstaddr)?,
            srcport: opt_i32(c.srcport, i).and_then(|p| u16::try_from(p).ok()),
            dstport: opt_i32(c.dstport, i).and_then(|p| u16::try_from(p).ok()),
            protocol: opt_i32(c.protocol, i).and_then(|p| u8::try_from(p).ok()),
            packets: u64::try_from(c.record_packets.value(i)).ok(),
            bytes: u64::try_from(c.record_bytes.value(i)).ok(),
            start: Some(c.flow_start.value(i).div_euclid(1_000_000)),
            end: Some(c.flow_end.value(i).div_euclid(1_000_000)),
            action: opt(c.action, i),
            vpc_id: opt(c.log_vpc_id, i),
            region,
            az_id: az,
            extra: opt(c.extra, i).unwrap_or_default().to_string(),
            ..Default::default()
        };
        // The input's account: stored, else from its path as listing found it (AWSLogs/ACCOUNT/
        // in the key), which is where it came from unless the source config named one.
        let uri = c.source_uri.value(i);
        if lineage.source_uri != uri
            || lineage.input_id != c.input_id.value(i)
            || lineage.run_id != c.run_id.value(i)
            || stored_context.as_deref() != opt(c.context_account, i)
        {
            stored_context = opt(c.context_account, i).map(str::to_string);
            // Rows of one input are together: the lineage is built once per run of them.
            lineage = Lineage {
                source_uri: uri.to_string(),
                input_id: c.input_id.value(i).to_string(),
                run_id: c.run_id.value(i).to_string(),
                context_account: opt(c.context_account, i)
                    .map(str::to_string)
                    .or_else(|| account_from_key(uri)),
            };
        }
        let context = lineage.context_account.as_deref();
        let was = verdict(c.status.value(i), opt(c.reason, i));
        let bytes = u128::try_from(c.bytes.value(i)).unwrap_or(0);
        let a = match attribute(&rec, context, ix) {
            Outcome::Filtered => {
                dropped = true;
                moves.add(was, "filtered", bytes);
                continue;
            }
            Outcome::Relevant(a) => a,
        };
        let now = a.reason.map_or("attributed", |r| r.as_str());
        let conn = a.eni.map(|e| ix.conn_of(e).arn.as_str());
        if now != was {
            moves.add(was, now, bytes);
        } else if conn != opt(c.connection_arn, i) {
            // The same verdict under another connection (or none) is a move too: someone else pays.
            moves.add(was, &format!("{now} (connection changed)"), bytes);
        }
        let share = HourShare {
            hour: c.usage_hour.value(i).div_euclid(1_000_000),
            seconds: 0,
            bytes: u64::try_from(c.bytes.value(i)).unwrap_or(0),
            packets: u64::try_from(c.packets.value(i)).unwrap_or(0),
        };
        let pos = Position {
            line: u64::try_from(c.source_line.value(i)).unwrap_or(0),
            offset: u64::try_from(c.source_offset.value(i)).unwrap_or(0),
        };
        out.append(&rec, &a, &share, pos, ix, &lineage);
    }
    let batch = out.finish(ix);
    let changed = dropped
        || ATTRIBUTION_COLUMNS.iter().any(|n| {
            b.column_by_name(n).map(|c| c.as_ref()) != batch.column_by_name(n).map(|c| c.as_ref())
        });
    Ok(Redone {
        batch,
        changed,
        moves,
    })
}

/// The stored columns attribution reads.
struct Cols<'a> {
    usage_hour: &'a TimestampMicrosecondArray,
    bytes: &'a Int64Array,
    packets: &'a Int64Array,
    status: &'a StringArray,
    reason: &'a StringArray,
    endpoint_eni: &'a StringArray,
    connection_arn: &'a StringArray,
    region: &'a StringArray,
    az_id: &'a StringArray,
    flow_start: &'a TimestampMicrosecondArray,
    flow_end: &'a TimestampMicrosecondArray,
    record_bytes: &'a Int64Array,
    record_packets: &'a Int64Array,
    interface_id: &'a StringArray,
    log_account_id: &'a StringArray,
    log_vpc_id: &'a StringArray,
    srcaddr: &'a StringArray,
    dstaddr: &'a StringArray,
    srcport: &'a Int32Array,
    dstport: &'a Int32Array,
    protocol: &'a Int32Array,
    action: &'a StringArray,
    extra: &'a StringArray,
    source_uri: &'a StringArray,
    source_line: &'a Int64Array,
    source_offset: &'a Int64Array,
    input_id: &'a StringArray,
    run_id: &'a StringArray,
    log_region: &'a StringArray,
    log_az_id: &'a StringArray,
    context_account: &'a StringArray,
}

impl<'a> Cols<'a> {
    fn of(b: &'a RecordBatch) -> Result<Cols<'a>, String> {
        Ok(Cols {
            usage_hour: times(b, "usage_hour")?,
            bytes: i64s(b, "bytes")?,
            packets: i64s(b, "packets")?,
            status: strs(b, "status")?,
            reason: strs(b, "reason")?,
            endpoint_eni: strs(b, "endpoint_eni")?,
            connection_arn: strs(b, "connection_arn")?,
            region: strs(b, "region")?,
            az_id: strs(b, "az_id")?,
            flow_start: times(b, "flow_start")?,
            flow_end: times(b, "flow_end")?,
            record_bytes: i64s(b, "record_bytes")?,
            record_packets: i64s(b, "record_packets")?,
            interface_id: strs(b, "interface_id")?,
            log_account_id: strs(b, "log_account_id")?,
            log_vpc_id: strs(b, "log_vpc_id")?,
            srcaddr: strs(b, "srcaddr")?,
            dstaddr: strs(b, "dstaddr")?,
            srcport: i32s(b, "srcport")?,
            dstport: i32s(b, "dstport")?,
            protocol: i32s(b, "protocol")?,
            action: strs(b, "action")?,
            extra: strs(b, "extra")?,
            source_uri: strs(b, "source_uri")?,
            source_line: i64s(b, "source_line")?,
            source_offset: i64s(b, "source_offset")?,
            input_id: strs(b, "input_id")?,
            run_id: strs(b, "run_id")?,
            log_region: strs(b, "log_region")?,
            log_az_id: strs(b, "log_az_id")?,
            context_account: strs(b, "context_account")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{parse_time, Inventory};

    #[test]
    fn a_row_from_before_the_record_columns_keeps_its_verdict() {
        let ix = Inventory::from_toml(crate::inventory::tests::SAMPLE, "t").unwrap();
        let t = parse_time("2026-10-01T10:00:00Z").unwrap();
        // No account-id and no VPC in the record: only the input's account (from its path)
        // finds the endpoint by address.
        let rec = FlowRecord {
            account_id: Some("unknown"),
            interface_id: Some("eni-client"),
            srcaddr: Some("10.0.9.9".parse().unwrap()),
            dstaddr: Some("10.0.1.10".parse().unwrap()),
            srcport: Some(40000),
            dstport: Some(14001),
            bytes: Some(100),
            packets: Some(1),
            start: Some(t),
            end: Some(t + 10),
            action: Some("ACCEPT"),
            ..Default::default()
        };
        let uri = "s3://logs/AWSLogs/111111111111/vpcflowlogs/us-east-1/2026/10/01/x.log.gz";
        let Outcome::Relevant(a) = attribute(&rec, Some("111111111111"), &ix) else {
            panic!("relevant")
        };
        assert_eq!(a.reason, None, "attributed with the input's account");
        let share = HourShare {
            hour: t - t % 3600,
            seconds: 10,
            bytes: 100,
            packets: 1,
        };
        let mut b = FlowsBuilder::default();
        // Stored as a release before `context_account` stored it: null.
        let lineage = Lineage {
            source_uri: uri.into(),
            input_id: "i".into(),
            run_id: "r".into(),
            context_account: None,
        };
        b.append(&rec, &a, &share, Position::default(), &ix, &lineage);
        let old = b.finish(&ix);
        let r = reattribute(&old, &ix).unwrap();
        assert!(!r.changed && r.moves.by_change.is_empty(), "{:?}", r.moves);
        assert_eq!(
            r.batch
                .column_by_name("context_account")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "111111111111",
            "the account found again is stored"
        );
        // The same endpoint under another connection: still attributed, but someone else pays.
        let moved = crate::inventory::tests::SAMPLE.replace("shared-a/aaaa", "shared-a/cccc");
        let ix2 = Inventory::from_toml(&moved, "t2").unwrap();
        let r = reattribute(&old, &ix2).unwrap();
        assert!(r.changed);
        assert_eq!(
            r.moves.by_change.get(&(
                "attributed".to_string(),
                "attributed (connection changed)".to_string()
            )),
            Some(&(1, 100))
        );
    }
}
