//! Small tables: the per-input checkpoint (`inputs`), the run log (`runs`) and the inventory
//! as tables (`accounts`, `clusters`, `connections`, `endpoint_enis`) so rollups are pure SQL.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray,
    UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, TimestampMicrosecondType, UInt64Type};

use super::{schema, Sink, WarehouseError};
use crate::inventory::{parse_time, Index};
use crate::summary::Tally;

/// One input's entry in a segment manifest: what the next run compares against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InputRow {
    pub input_id: String,
    pub input_key: String,
    pub source_uri: String,
    pub content_hash: String,
    pub inventory_hash: String,
    pub size: u64,
    pub records: u64,
    pub flow_rows: u64,
    pub quarantined: u64,
    pub ingested_at_micros: i64,
    /// Generation of the decoders that read it (1 before broker metrics): an input that was
    /// wholly quarantined is read again by newer decoders.
    pub decoders: u64,
}

/// A segment's state in the commit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentStatus {
    /// Its files may be partly written, or are being removed: roll back on sight.
    Pending,
    /// Complete: its files hold exactly the rows of its inputs.
    Committed,
}

impl SegmentStatus {
    fn as_str(self) -> &'static str {
        match self {
            SegmentStatus::Pending => "pending",
            SegmentStatus::Committed => "committed",
        }
    }
}

/// A group of inputs whose rows were written together, and the files holding them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentManifest {
    pub segment_id: String,
    pub status: SegmentStatus,
    /// Warehouse-relative paths of every data file of the segment.
    pub files: Vec<String>,
    pub inputs: Vec<InputRow>,
    pub run_id: String,
}

/// Where a segment's manifest lives.
pub fn manifest_path(segment_id: &str) -> String {
    format!("inputs/{segment_id}.parquet")
}

fn s(v: &str) -> ArrayRef {
    Arc::new(StringArray::from(vec![v]))
}

fn u(v: u64) -> ArrayRef {
    Arc::new(UInt64Array::from(vec![v]))
}

fn t(v: i64) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(vec![v]).with_timezone("UTC"))
}

/// Writes (or atomically replaces) a segment's manifest.
pub fn write_segment(sink: &dyn Sink, m: &SegmentManifest) -> Result<(), WarehouseError> {
    let placeholder = [InputRow::default()];
    let rows: &[InputRow] = if m.inputs.is_empty() {
        &placeholder
    } else {
        &m.inputs
    };
    let n = rows.len();
    let rep = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
    let col_s = |f: &dyn Fn(&InputRow) -> &str| {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>())) as ArrayRef
    };
    let col_u = |f: &dyn Fn(&InputRow) -> u64| {
        Arc::new(UInt64Array::from(rows.iter().map(f).collect::<Vec<_>>())) as ArrayRef
    };
    let cols = vec![
        rep(&m.segment_id),
        rep(m.status.as_str()),
        rep(&m.files.join("\n")),
        rep(&m.run_id),
        col_s(&|r| &r.input_id),
        col_s(&|r| &r.input_key),
        col_s(&|r| &r.source_uri),
        col_s(&|r| &r.content_hash),
        col_s(&|r| &r.inventory_hash),
        col_u(&|r| r.size),
        col_u(&|r| r.records),
        col_u(&|r| r.flow_rows),
        col_u(&|r| r.quarantined),
        Arc::new(
            TimestampMicrosecondArray::from(
                rows.iter()
                    .map(|r| r.ingested_at_micros)
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
        col_u(&|r| r.decoders),
    ];
    let batch = RecordBatch::try_new(schema::inputs(), cols).expect("matches the inputs schema");
    sink.put(&manifest_path(&m.segment_id), &[batch])
        .map(|_| ())
}

/// Reads every segment manifest in the warehouse.
pub fn read_segments(sink: &dyn Sink) -> Result<Vec<SegmentManifest>, WarehouseError> {
    let mut out = Vec::new();
    for path in sink.list("inputs")? {
        if !path.ends_with(".parquet") {
            continue;
        }
        let Some(batches) = sink.get(&path)? else {
            continue;
        };
        let corrupt = |m: &str| WarehouseError::Corrupt {
            path: path.clone(),
            message: m.to_string(),
        };
        let mut seg: Option<SegmentManifest> = None;
        for b in &batches {
            let st = |name: &str| -> Result<Vec<String>, WarehouseError> {
                let c = b
                    .column_by_name(name)
                    .ok_or_else(|| corrupt(&format!("no column {name}")))?;
                let a = c
                    .as_string_opt::<i32>()
                    .ok_or_else(|| corrupt(&format!("{name} is not text")))?;
                Ok(a.iter()
                    .map(|v| v.unwrap_or_default().to_string())
                    .collect())
            };
            let un = |name: &str| -> Result<Vec<u64>, WarehouseError> {
                let c = b
                    .column_by_name(name)
                    .ok_or_else(|| corrupt(&format!("no column {name}")))?;
                let a = c
                    .as_primitive_opt::<UInt64Type>()
                    .ok_or_else(|| corrupt(&format!("{name} is not u64")))?;
                Ok(a.values().to_vec())
            };
            let at = b
                .column_by_name("ingested_at")
                .and_then(|c| {
                    c.as_primitive_opt::<TimestampMicrosecondType>()
                        .map(|a| a.values().to_vec())
                })
                .ok_or_else(|| corrupt("ingested_at is not a timestamp"))?;
            let (sid, status, files, run) = (
                st("segment_id")?,
                st("status")?,
                st("files")?,
                st("run_id")?,
            );
            let (iid, key, uri, ch, ih) = (
                st("input_id")?,
                st("input_key")?,
                st("source_uri")?,
                st("content_hash")?,
                st("inventory_hash")?,
            );
            // Manifests written before the column existed are generation 1.
            let decoders = b
                .column_by_name("decoders")
                .and_then(|c| {
                    c.as_primitive_opt::<UInt64Type>()
                        .map(|a| a.values().to_vec())
                })
                .unwrap_or_else(|| vec![1; b.num_rows()]);
            let (size, recs, fr, q) = (
                un("size")?,
                un("records")?,
                un("flow_rows")?,
                un("quarantined")?,
            );
            for i in 0..b.num_rows() {
                let m = seg.get_or_insert_with(|| SegmentManifest {
                    segment_id: sid[i].clone(),
                    status: if status[i] == "committed" {
                        SegmentStatus::Committed
                    } else {
                        SegmentStatus::Pending
                    },
                    files: files[i]
                        .lines()
                        .filter(|l| !l.is_empty())
                        .map(str::to_string)
                        .collect(),
                    inputs: Vec::new(),
                    run_id: run[i].clone(),
                });
                if !iid[i].is_empty() {
                    m.inputs.push(InputRow {
                        input_id: iid[i].clone(),
                        input_key: key[i].clone(),
                        source_uri: uri[i].clone(),
                        content_hash: ch[i].clone(),
                        inventory_hash: ih[i].clone(),
                        size: size[i],
                        records: recs[i],
                        flow_rows: fr[i],
                        quarantined: q[i],
                        ingested_at_micros: at[i],
                        decoders: decoders[i],
                    });
                }
            }
        }
        if let Some(m) = seg {
            out.push(m);
        }
    }
    Ok(out)
}

/// One run's log row.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub run_id: String,
    pub command: String,
    pub started_micros: i64,
    pub finished_micros: i64,
    pub tally: Tally,
}

/// Appends the run to the `runs` table.
pub fn write_run(sink: &dyn Sink, r: &RunRecord) -> Result<(), WarehouseError> {
    let t_ = &r.tally;
    let reasons = t_
        .by_reason
        .iter()
        .map(|(k, (n, b))| format!("{k}={n} records/{b} bytes"))
        .collect::<Vec<_>>()
        .join("; ");
    let cols = vec![
        s(&r.run_id),
        s(&r.command),
        t(r.started_micros),
        t(r.finished_micros),
        u(t_.inputs_read),
        u(t_.inputs_skipped),
        u(t_.records_in),
        u(t_.attributed),
        u(t_.unattributed),
        u(t_.filtered),
        u(t_.coverage),
        u(t_.quarantined),
        u(t_.bytes_in),
        u(t_.bytes_attributed),
        u(t_.bytes_unattributed),
        u(t_.bytes_filtered),
        u(t_.metrics),
        Arc::new(BooleanArray::from(vec![t_.balanced()])),
        s(&reasons),
    ];
    let batch = RecordBatch::try_new(schema::runs(), cols).expect("matches the runs schema");
    sink.put(&format!("runs/{}.parquet", r.run_id), &[batch])
        .map(|_| ())
}

fn strings(v: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

fn table(
    sink: &dyn Sink,
    name: &str,
    fields: &[&str],
    rows: Vec<Vec<Option<String>>>,
) -> Result<(), WarehouseError> {
    let schema = Arc::new(Schema::new(
        fields
            .iter()
            .map(|f| Field::new(*f, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let cols: Vec<ArrayRef> = (0..fields.len())
        .map(|i| strings(rows.iter().map(|r| r[i].clone()).collect()))
        .collect();
    let batch = RecordBatch::try_new(schema, cols).expect("columns match");
    // An empty table still gets a file so its schema is known to readers.
    sink.put(&format!("{name}/{name}.parquet"), &[batch])
        .map(|_| ())
}

fn time_col(v: Option<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(vec![v.map(|s| s * 1_000_000)]).with_timezone("UTC"))
}

/// Writes the inventory as the tables `accounts`, `clusters`, `cluster_connectivity`,
/// `connections` and `endpoint_enis`, replacing the previous ones.
pub fn write_inventory(sink: &dyn Sink, ix: &Index) -> Result<(), WarehouseError> {
    let inv = &ix.inventory;
    table(
        sink,
        "accounts",
        &["account_id", "account_name", "cost_center"],
        inv.accounts
            .iter()
            .map(|a| {
                vec![
                    Some(a.id.clone()),
                    Some(a.name.clone()),
                    a.cost_center.clone(),
                ]
            })
            .collect(),
    )?;
    let mut clusters = Vec::new();
    let mut connectivity: Vec<RecordBatch> = Vec::new();
    let conn_schema = Arc::new(Schema::new(vec![
        Field::new("cluster_arn", DataType::Utf8, false),
        Field::new("auth_scheme", DataType::Utf8, false),
        Field::new("turned_on", schema::ts(), false),
        Field::new("turned_off", schema::ts(), true),
    ]));
    for c in &inv.clusters {
        let arn = crate::inventory::parse_arn(&c.arn).ok();
        let name = c.name.clone().or_else(|| {
            arn.as_ref()
                .and_then(|a| a.rest.split('/').next().map(str::to_string))
        });
        clusters.push(vec![
            Some(c.arn.clone()),
            name,
            arn.as_ref().map(|a| a.region.clone()),
            arn.as_ref().map(|a| a.account.clone()),
        ]);
        for k in &c.connectivity {
            connectivity.push(
                RecordBatch::try_new(
                    conn_schema.clone(),
                    vec![
                        s(&c.arn),
                        s(k.auth.as_str()),
                        time_col(parse_time(&k.on).ok()),
                        time_col(k.off.as_deref().and_then(|o| parse_time(o).ok())),
                    ],
                )
                .expect("columns match"),
            );
        }
    }
    table(
        sink,
        "clusters",
        &["cluster_arn", "cluster_name", "region", "owner_account_id"],
        clusters,
    )?;
    if connectivity.is_empty() {
        connectivity.push(RecordBatch::new_empty(conn_schema));
    }
    sink.put(
        "cluster_connectivity/cluster_connectivity.parquet",
        &connectivity,
    )?;

    let conn_schema = Arc::new(Schema::new(vec![
        Field::new("connection_arn", DataType::Utf8, false),
        Field::new("cluster_arn", DataType::Utf8, false),
        Field::new("cluster_name", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("auth_scheme", DataType::Utf8, false),
        Field::new("client_account_id", DataType::Utf8, false),
        Field::new("vpc_id", DataType::Utf8, false),
        Field::new("endpoint_id", DataType::Utf8, false),
        Field::new("created_at", schema::ts(), false),
        Field::new("deleted_at", schema::ts(), true),
    ]));
    let mut conns: Vec<RecordBatch> = ix
        .conns
        .iter()
        .map(|c| {
            RecordBatch::try_new(
                conn_schema.clone(),
                vec![
                    s(&c.arn),
                    s(&c.cluster_arn),
                    s(&c.cluster_name),
                    s(&c.region),
                    s(c.auth.as_str()),
                    s(&c.client_account),
                    s(&c.vpc_id),
                    s(&c.endpoint_id),
                    time_col(Some(c.created)),
                    time_col(c.deleted),
                ],
            )
            .expect("columns match")
        })
        .collect();
    if conns.is_empty() {
        conns.push(RecordBatch::new_empty(conn_schema));
    }
    sink.put("connections/connections.parquet", &conns)?;
    table(
        sink,
        "endpoint_enis",
        &[
            "endpoint_eni",
            "endpoint_id",
            "connection_arn",
            "az_id",
            "private_ips",
        ],
        ix.enis
            .iter()
            .map(|e| {
                let c = &ix.conns[e.conn];
                vec![
                    Some(e.id.clone()),
                    Some(c.endpoint_id.clone()),
                    Some(c.arn.clone()),
                    Some(e.az_id.clone()),
                    Some(
                        e.ips
                            .iter()
                            .map(|i| i.to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                ]
            })
            .collect(),
    )?;
    Ok(())
}
