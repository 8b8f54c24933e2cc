//! `coverage` rows name the endpoint and connection of the ENI a NODATA/SKIPDATA record is
//! about; after an inventory change they are looked up again. The table is small (one row
//! per silent ENI-window), so every file is read.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use linkmeter_warehouse::registry::COVERAGE;
use linkmeter_warehouse::table::{widen, Change};
use linkmeter_warehouse::{segment, Error, Warehouse};

use crate::inventory::Index;

/// Rewrites the `coverage` files whose endpoint or connection changed, in one commit; returns
/// how many.
pub fn redo(
    wh: &Warehouse,
    ix: &Index,
    rt: &tokio::runtime::Handle,
    tag: &str,
) -> Result<usize, Error> {
    rt.block_on(async {
        let Some(t) = wh.table_if_exists(&COVERAGE).await? else {
            return Ok(0);
        };
        let mut t = t.lock().await;
        t.refresh().await?;
        let mut change = Change {
            info: vec![("operation", "reattribute".to_string())],
            ..Default::default()
        };
        for f in t.files()? {
            let at = format!("{}/{}", t.location(), f.path);
            let mut out = Vec::new();
            let mut changed = false;
            for b in t.read(std::slice::from_ref(&f)).await? {
                let b = widen(&COVERAGE.schema(), b, &at)?;
                let (nb, c) = relook(&b, ix).map_err(|m| Error::Corrupt {
                    path: at.clone(),
                    message: m,
                })?;
                changed |= c;
                out.push(nb);
            }
            if !changed {
                continue;
            }
            let name = segment::rewritten_name(&f.path, tag);
            let partition = f.partition_values(&COVERAGE);
            change.adds.push(t.write(&partition, &name, &out).await?);
            change.removes.push(f);
        }
        let n = change.removes.len();
        t.commit(change).await?;
        Ok(n)
    })
}

/// The batch with `endpoint_id` and `connection_arn` looked up again, and whether they changed.
fn relook(b: &RecordBatch, ix: &Index) -> Result<(RecordBatch, bool), String> {
    let iface = b
        .column_by_name("interface_id")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or("no interface_id column")?;
    let conns: Vec<_> = (0..iface.len())
        .map(|i| {
            iface
                .is_valid(i)
                .then(|| ix.eni_by_id(iface.value(i)))
                .flatten()
                .map(|e| ix.conn_of(e))
        })
        .collect();
    let endpoint: StringArray = conns
        .iter()
        .map(|c| c.map(|c| c.endpoint_id.as_str()))
        .collect();
    let arn: StringArray = conns.iter().map(|c| c.map(|c| c.arn.as_str())).collect();
    let schema = b.schema();
    let mut changed = false;
    let cols: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .zip(b.columns())
        .map(|(f, c)| {
            let new: Option<&StringArray> = match f.name().as_str() {
                "endpoint_id" => Some(&endpoint),
                "connection_arn" => Some(&arn),
                _ => None,
            };
            match new {
                Some(n) => {
                    changed |= c.as_ref() != n as &dyn Array;
                    Arc::new(n.clone()) as ArrayRef
                }
                None => c.clone(),
            }
        })
        .collect();
    let nb = RecordBatch::try_new(schema, cols).map_err(|e| e.to_string())?;
    Ok((nb, changed))
}
