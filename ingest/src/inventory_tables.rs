//! The inventory as warehouse tables (`accounts`, `clusters`, `cluster_connectivity`,
//! `connections`, `endpoint_enis`), so rollups are pure SQL and analysts can join names.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use linkmeter_warehouse::registry::{
    TableDef, ACCOUNTS, CLUSTERS, CLUSTER_CONNECTIVITY, CONNECTIONS, ENDPOINT_ENIS,
};
use linkmeter_warehouse::{Error, Warehouse};

use crate::inventory::{parse_time, Index};

fn s(v: &str) -> ArrayRef {
    Arc::new(StringArray::from(vec![v]))
}

fn strings(v: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

/// A table of text columns from rows of optional strings.
fn text_table(def: &TableDef, rows: Vec<Vec<Option<String>>>) -> RecordBatch {
    let schema = def.schema();
    let cols: Vec<ArrayRef> = (0..schema.fields().len())
        .map(|i| strings(rows.iter().map(|r| r[i].clone()).collect()))
        .collect();
    RecordBatch::try_new(schema, cols).expect("text columns match the registry")
}

/// Replaces a whole inventory table in one commit, as a file named by the inventory's hash:
/// shards starting together with the same inventory converge on one file, and an unchanged
/// inventory writes nothing.
async fn replace(
    wh: &Warehouse,
    ix: &Index,
    def: &'static TableDef,
    batches: &[RecordBatch],
) -> Result<(), Error> {
    let t = wh.table(def).await?;
    let name = format!("{}-{:016x}", def.name, ix.hash);
    let mut t = t.lock().await;
    t.replace_with(&name, batches).await
}

fn time_col(v: Option<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(vec![v.map(|s| s * 1_000_000)]).with_timezone("UTC"))
}

/// Writes the inventory as the tables `accounts`, `clusters`, `cluster_connectivity`,
/// `connections` and `endpoint_enis`, replacing the previous ones (one commit each).
pub async fn write_inventory(wh: &Warehouse, ix: &Index) -> Result<(), Error> {
    let inv = &ix.inventory;
    let accounts = text_table(
        &ACCOUNTS,
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
    );
    replace(wh, ix, &ACCOUNTS, &[accounts]).await?;
    let mut clusters = Vec::new();
    let mut connectivity: Vec<RecordBatch> = Vec::new();
    let conn_schema = CLUSTER_CONNECTIVITY.schema();
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
    replace(wh, ix, &CLUSTERS, &[text_table(&CLUSTERS, clusters)]).await?;
    replace(wh, ix, &CLUSTER_CONNECTIVITY, &connectivity).await?;

    let conn_schema = CONNECTIONS.schema();
    let conns: Vec<RecordBatch> = ix
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
    replace(wh, ix, &CONNECTIONS, &conns).await?;
    let enis = text_table(
        &ENDPOINT_ENIS,
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
    );
    replace(wh, ix, &ENDPOINT_ENIS, &[enis]).await
}
