//! A warehouse table pinned to the file list of one snapshot and scanned as plain Parquet: what
//! the distributed engine plans on. The client reads the Delta log and the `inputs` checkpoint
//! once, and the scheduler and executors read exactly those files, so every stage of a query
//! sees the version the client saw (a commit landing meanwhile is not half-read), and no
//! executor needs to read a Delta log. [`PinnedCodec`] carries the list inside the plan.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;
use linkmeter_warehouse::registry::{self, TableDef};
use serde::{Deserialize, Serialize};

/// One data file of a pinned table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedFile {
    /// Object-store path (no leading `/`), within the table's store.
    pub path: String,
    /// Size in bytes (as the Delta log says).
    pub size: u64,
    /// Values of the table's partition columns, in their order.
    pub partition: Vec<Option<String>>,
}

/// What travels in a plan: the table by name (its columns come from the registry) and its files.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Wire {
    table: String,
    store: String,
    files: Vec<PinnedFile>,
}

/// A table of the registry over a fixed list of Parquet files.
#[derive(Debug)]
pub struct PinnedTable {
    def: &'static TableDef,
    store: ObjectStoreUrl,
    files: Vec<PinnedFile>,
    schema: SchemaRef,
}

impl PinnedTable {
    /// `files` of table `def` in the object store at `store` (`file://` or `s3://bucket`).
    pub fn new(def: &'static TableDef, store: &str, files: Vec<PinnedFile>) -> Result<Self> {
        // Files come from a plan on the wire: each must carry a value per partition column.
        if let Some(f) = files
            .iter()
            .find(|f| f.partition.len() != def.partitions.len())
        {
            return Err(DataFusionError::Plan(format!(
                "table {}: file {} has {} partition values for partition columns {:?} (client and cluster run different versions?)",
                def.name,
                f.path,
                f.partition.len(),
                def.partitions
            )));
        }
        Ok(PinnedTable {
            def,
            store: ObjectStoreUrl::parse(store)?,
            files,
            schema: def.table_schema(),
        })
    }

    /// The files it reads.
    pub fn files(&self) -> &[PinnedFile] {
        &self.files
    }

    fn partition_fields(&self) -> Vec<FieldRef> {
        self.def
            .partitions
            .iter()
            .map(|p| Arc::new(Field::new(*p, DataType::Utf8, true)))
            .collect()
    }

    /// The files whose partition values pass the filters that name partition columns only.
    fn prune(&self, state: &dyn Session, filters: &[Expr]) -> Result<Vec<&PinnedFile>> {
        let parts = self.def.partitions;
        let on_parts: Vec<Expr> = filters
            .iter()
            .filter(|e| {
                // A volatile filter (random()) evaluated once per file would drop whole files.
                let cols = e.column_refs();
                !e.is_volatile()
                    && !cols.is_empty()
                    && cols.iter().all(|c| parts.contains(&c.name.as_str()))
            })
            .cloned()
            .collect();
        let Some(predicate) = conjunction(on_parts) else {
            return Ok(self.files.iter().collect());
        };
        if self.files.is_empty() {
            return Ok(Vec::new());
        }
        let fields = self.partition_fields();
        let columns: Vec<ArrayRef> = (0..parts.len())
            .map(|i| {
                Arc::new(StringArray::from_iter(
                    self.files.iter().map(|f| f.partition[i].as_deref()),
                )) as ArrayRef
            })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        let df_schema = DFSchema::try_from(schema)?;
        let expr = state.create_physical_expr(predicate, &df_schema)?;
        let keep = expr.evaluate(&batch)?.into_array(batch.num_rows())?;
        let keep = keep
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| DataFusionError::Internal("partition filter is not boolean".into()))?;
        Ok(self
            .files
            .iter()
            .zip(keep.iter())
            .filter(|(_, k)| k == &Some(true))
            .map(|(f, _)| f)
            .collect())
    }
}

#[async_trait::async_trait]
impl TableProvider for PinnedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Partition filters choose files; every filter is still applied to the rows.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let files = self.prune(state, filters)?;
        if files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let groups = state.config().target_partitions().clamp(1, files.len());
        let mut grouped: Vec<Vec<PartitionedFile>> = vec![Vec::new(); groups];
        for (i, f) in files.into_iter().enumerate() {
            let mut pf = PartitionedFile::new(f.path.clone(), f.size);
            pf.partition_values = f
                .partition
                .iter()
                .map(|v| ScalarValue::Utf8(v.clone()))
                .collect();
            grouped[i % groups].push(pf);
        }
        let table_schema = TableSchema::builder(self.def.schema())
            .with_table_partition_cols(self.partition_fields())
            .build();
        let source = ParquetSource::new(table_schema)
            .with_table_parquet_options(state.table_options().parquet.clone());
        let config = FileScanConfigBuilder::new(self.store.clone(), Arc::new(source))
            .with_file_groups(grouped.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// Encodes [`PinnedTable`]s in plans sent to the distributed engine's scheduler; everything
/// else goes to `inner` (Ballista's own codec, for its file formats).
#[derive(Debug)]
pub struct PinnedCodec<C> {
    /// The codec for what is not a pinned table.
    pub inner: C,
}

/// Marks a pinned table's bytes in a plan, so other providers' bytes are never mistaken for one.
const MAGIC: &[u8] = b"linkmeter-pinned-1:";

impl<C> PinnedCodec<C> {
    /// The bytes of a pinned table (`None`: not one).
    pub fn encode(node: &dyn TableProvider) -> Option<Result<Vec<u8>>> {
        let t = node.downcast_ref::<PinnedTable>()?;
        let wire = Wire {
            table: t.def.name.to_string(),
            store: t.store.as_str().to_string(),
            files: t.files.clone(),
        };
        let mut buf = MAGIC.to_vec();
        Some(
            serde_json::to_writer(&mut buf, &wire)
                .map(|()| buf)
                .map_err(|e| DataFusionError::Internal(format!("encoding a pinned table: {e}"))),
        )
    }

    /// The pinned table in `buf` (`None`: not one).
    pub fn decode(buf: &[u8]) -> Option<Result<PinnedTable>> {
        let body = buf.strip_prefix(MAGIC)?;
        Some((|| {
            let w: Wire = serde_json::from_slice(body)
                .map_err(|e| DataFusionError::Internal(format!("decoding a pinned table: {e}")))?;
            let def = registry::by_name(&w.table).ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "the plan names table {}, which this linkmeter does not know (client and cluster run different versions?)",
                    w.table
                ))
            })?;
            PinnedTable::new(def, &w.store, w.files)
        })())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit, SessionContext};
    use linkmeter_warehouse::registry::FLOWS;

    fn files() -> Vec<PinnedFile> {
        ["2026-10-01", "2026-10-02", "2026-10-02"]
            .iter()
            .enumerate()
            .map(|(i, d)| PinnedFile {
                path: format!("wh/flows/date={d}/hour=0{i}/s-{i}.parquet"),
                size: 100 + i as u64,
                partition: vec![Some(d.to_string()), Some(format!("0{i}"))],
            })
            .collect()
    }

    #[test]
    fn a_pinned_table_travels_whole_and_nothing_else_passes_for_one() {
        let t = PinnedTable::new(&FLOWS, "file://", files()).unwrap();
        let bytes = PinnedCodec::<()>::encode(&t).unwrap().unwrap();
        let back = PinnedCodec::<()>::decode(&bytes).unwrap().unwrap();
        assert_eq!(back.files(), t.files());
        assert_eq!(back.schema(), t.schema());
        assert!(PinnedCodec::<()>::decode(b"{\"table\":\"flows\"}").is_none());
        let mut other = bytes.clone();
        let at = other.windows(5).position(|w| w == b"flows").unwrap();
        other[at..at + 5].copy_from_slice(b"nopes");
        let e = PinnedCodec::<()>::decode(&other).unwrap().unwrap_err();
        assert!(e.to_string().contains("nopes"), "{e}");
        let mut short = files();
        short[1].partition.pop();
        let e = PinnedTable::new(&FLOWS, "file://", short).unwrap_err();
        assert!(e.to_string().contains("partition values"), "{e}");
    }

    #[test]
    fn partition_filters_choose_files_and_other_filters_do_not() {
        let t = PinnedTable::new(&FLOWS, "file://", files()).unwrap();
        let ctx = SessionContext::new();
        let state = ctx.state();
        let day = t
            .prune(&state, &[col("date").eq(lit("2026-10-02"))])
            .unwrap();
        assert_eq!(day.len(), 2);
        assert!(day.iter().all(|f| f.path.contains("2026-10-02")));
        let both = t
            .prune(
                &state,
                &[col("date").eq(lit("2026-10-02")), col("hour").eq(lit("02"))],
            )
            .unwrap();
        assert_eq!(both.len(), 1);
        let rows = t.prune(&state, &[col("bytes").gt(lit(5i64))]).unwrap();
        assert_eq!(rows.len(), 3, "a data-column filter keeps every file");
    }
}
