//! Table schemas over time: columns a newer release adds to an existing table, files written
//! before them, and query results given the table's types.

use arrow::array::RecordBatch;
use deltalake::kernel::engine::arrow_conversion::TryFromArrow;
use deltalake::kernel::StructType;

use super::{is_conflict, Table};
use crate::registry::TableDef;
use crate::Error;

impl Table {
    /// Adds the columns the registry defines and the table's log lacks (nullable columns of a
    /// newer release), in one metadata commit; files written before read them as nulls.
    pub(crate) async fn evolve(&mut self) -> Result<(), Error> {
        for attempt in 0..3 {
            let have: std::collections::HashSet<String> = self
                .delta
                .snapshot()
                .map_err(Error::delta(&self.at, "read the snapshot"))?
                .schema()
                .fields()
                .map(|f| f.name().to_string())
                .collect();
            let want =
                StructType::try_from_arrow(self.def.table_schema().as_ref()).map_err(|e| {
                    Error::Schema {
                        table: self.def.name.into(),
                        message: e.to_string(),
                    }
                })?;
            let missing: Vec<_> = want
                .fields()
                .filter(|f| !have.contains(f.name()))
                .cloned()
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if let Some(f) = missing.iter().find(|f| !f.is_nullable()) {
                return Err(Error::Schema {
                    table: self.def.name.into(),
                    message: format!(
                        "column {} is missing from the table and cannot be added (not nullable)",
                        f.name()
                    ),
                });
            }
            match self.delta.clone().add_columns().with_fields(missing).await {
                Ok(t) => {
                    self.delta = t;
                    return Ok(());
                }
                // Another writer of the same release added them first: look again.
                Err(e) if attempt < 2 && is_conflict(&e) => self.refresh().await?,
                Err(e) => return Err(Error::delta(&self.at, "add new columns to")(e)),
            }
        }
        Ok(())
    }
}

/// A batch read from a data file with the columns of `schema`: files written before a column
/// was added lack it and read as nulls.
pub fn widen(
    schema: &arrow::datatypes::SchemaRef,
    b: RecordBatch,
    at: &str,
) -> Result<RecordBatch, Error> {
    if b.schema().fields() == schema.fields() {
        return Ok(b);
    }
    let err = |m: String| Error::Corrupt {
        path: at.to_string(),
        message: m,
    };
    let mut cols = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        match b.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => cols.push(c.clone()),
            Some(c) => {
                return Err(err(format!(
                    "column {} is {}, the table says {}",
                    f.name(),
                    c.data_type(),
                    f.data_type()
                )))
            }
            None if f.is_nullable() => {
                cols.push(arrow::array::new_null_array(f.data_type(), b.num_rows()))
            }
            None => return Err(err(format!("no column {}", f.name()))),
        }
    }
    RecordBatch::try_new(schema.clone(), cols).map_err(|e| err(e.to_string()))
}

/// Gives a batch computed by a query the table's columns and types, whatever the engine
/// inferred from portable SQL: columns are taken by name, timestamps become microseconds UTC
/// (`generate_series` over an interval yields nanoseconds in DataFusion) and sums are cast to
/// the table's integer type, refusing values that do not fit.
pub fn conform(def: &TableDef, b: &RecordBatch) -> Result<RecordBatch, Error> {
    let schema = def.schema();
    let opts = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    let err = |m: String| Error::Schema {
        table: def.name.to_string(),
        message: m,
    };
    let mut cols = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let c = b
            .column_by_name(f.name())
            .ok_or_else(|| err(format!("the query gave no column {}", f.name())))?;
        cols.push(if c.data_type() == f.data_type() {
            c.clone()
        } else {
            arrow::compute::cast_with_options(c, f.data_type(), &opts)
                .map_err(|e| err(format!("column {}: {e}", f.name())))?
        });
    }
    RecordBatch::try_new(schema, cols).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::DataType;

    use super::*;
    use crate::registry::{FLOWS, FLOWS_BEFORE_RECORD_COLUMNS};
    use crate::table::Change;
    use crate::Warehouse;

    /// One row with a value in every column.
    fn one_row(def: &TableDef) -> RecordBatch {
        let schema = def.schema();
        let cols = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match f.data_type() {
                    DataType::Int64 => Arc::new(Int64Array::from(vec![7])),
                    DataType::Int32 => Arc::new(Int32Array::from(vec![7])),
                    DataType::Utf8 => Arc::new(StringArray::from(vec!["x"])),
                    _ => Arc::new(TimestampMicrosecondArray::from(vec![0]).with_timezone("UTC")),
                }
            })
            .collect();
        RecordBatch::try_new(schema, cols).unwrap()
    }

    #[tokio::test]
    async fn a_table_from_an_older_release_gains_the_new_columns_and_old_files_read_as_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::local(dir.path()).unwrap();
        let part = [
            ("date", "2026-10-01".to_string()),
            ("hour", "00".to_string()),
        ];
        {
            let mut old = Table::open_or_create(&wh, &FLOWS_BEFORE_RECORD_COLUMNS)
                .await
                .unwrap();
            let add = old
                .write(
                    &part,
                    "s1.00000.parquet",
                    &[one_row(&FLOWS_BEFORE_RECORD_COLUMNS)],
                )
                .await
                .unwrap();
            old.commit(Change {
                adds: vec![add],
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let t = wh.table(&FLOWS).await.unwrap();
        let t = t.lock().await;
        let names: Vec<String> = t
            .delta
            .snapshot()
            .unwrap()
            .schema()
            .fields()
            .map(|f| f.name().to_string())
            .collect();
        assert!(names.iter().any(|n| n == "context_account"), "{names:?}");
        let rows = t.read_all().await.unwrap();
        assert_eq!(rows[0].schema(), FLOWS.schema());
        assert_eq!(
            rows[0].column_by_name("log_region").unwrap().null_count(),
            1
        );
        assert_eq!(rows[0].column_by_name("region").unwrap().null_count(), 0);
        // The query engine reads the old file under the new schema too.
        let ctx = datafusion::prelude::SessionContext::new();
        let p = t.provider(&ctx.state(), None).await.unwrap();
        ctx.register_table("flows", p).unwrap();
        let out = ctx
            .sql("SELECT count(*) AS n, count(log_region) AS r, count(region) AS g FROM flows")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let got = arrow::util::pretty::pretty_format_batches(&out)
            .unwrap()
            .to_string();
        assert!(got.contains("| 1 | 0 | 1 |"), "{got}");
        // A second open finds nothing to add (no new version).
        let v = t.version();
        drop(t);
        let mut again = Table::open(&wh, &FLOWS).await.unwrap().unwrap();
        again.evolve().await.unwrap();
        assert_eq!(again.version(), v);
    }
}
