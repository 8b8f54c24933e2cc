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

/// What one input produced: the checkpoint read on the next run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputManifest {
    pub input_id: String,
    pub input_key: String,
    pub source_uri: String,
    pub content_hash: String,
    pub inventory_hash: String,
    pub size: u64,
    pub records: u64,
    pub flow_rows: u64,
    pub quarantined: u64,
    /// Warehouse-relative paths of every file the input produced.
    pub files: Vec<String>,
    pub run_id: String,
    pub ingested_at_micros: i64,
}

/// Where an input's manifest lives.
pub fn manifest_path(input_id: &str) -> String {
    format!("inputs/{input_id}.parquet")
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

/// Writes an input's manifest (the last step of ingesting it).
pub fn write_manifest(sink: &dyn Sink, m: &InputManifest) -> Result<(), WarehouseError> {
    let cols = vec![
        s(&m.input_id),
        s(&m.input_key),
        s(&m.source_uri),
        s(&m.content_hash),
        s(&m.inventory_hash),
        u(m.size),
        u(m.records),
        u(m.flow_rows),
        u(m.quarantined),
        s(&m.files.join("\n")),
        s(&m.run_id),
        t(m.ingested_at_micros),
    ];
    let batch = RecordBatch::try_new(schema::inputs(), cols).expect("matches the inputs schema");
    sink.put(&manifest_path(&m.input_id), &[batch]).map(|_| ())
}

/// Reads an input's manifest, if it was ingested before.
pub fn read_manifest(
    sink: &dyn Sink,
    input_id: &str,
) -> Result<Option<InputManifest>, WarehouseError> {
    let path = manifest_path(input_id);
    let Some(batches) = sink.get(&path)? else {
        return Ok(None);
    };
    let corrupt = |m: &str| WarehouseError::Corrupt {
        path: path.clone(),
        message: m.to_string(),
    };
    let b = batches
        .into_iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| corrupt("empty manifest"))?;
    let col = |name: &str| {
        b.column_by_name(name)
            .cloned()
            .ok_or_else(|| corrupt(&format!("no column {name}")))
    };
    let st = |name: &str| -> Result<String, WarehouseError> {
        let c = col(name)?;
        let a = c
            .as_string_opt::<i32>()
            .ok_or_else(|| corrupt(&format!("{name} is not text")))?;
        Ok(a.value(0).to_string())
    };
    let un = |name: &str| -> Result<u64, WarehouseError> {
        let c = col(name)?;
        let a = c
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| corrupt(&format!("{name} is not u64")))?;
        Ok(a.value(0))
    };
    let files = st("files")?;
    let at = col("ingested_at")?;
    Ok(Some(InputManifest {
        input_id: st("input_id")?,
        input_key: st("input_key")?,
        source_uri: st("source_uri")?,
        content_hash: st("content_hash")?,
        inventory_hash: st("inventory_hash")?,
        size: un("size")?,
        records: un("records")?,
        flow_rows: un("flow_rows")?,
        quarantined: un("quarantined")?,
        files: files
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        run_id: st("run_id")?,
        ingested_at_micros: at
            .as_primitive_opt::<TimestampMicrosecondType>()
            .map(|a| a.value(0))
            .ok_or_else(|| corrupt("ingested_at is not a timestamp"))?,
    }))
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
