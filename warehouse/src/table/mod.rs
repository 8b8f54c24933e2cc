//! One warehouse table: a Delta Lake table whose commits add and remove whole Parquet files.
//!
//! linkmeter writes its data files itself (its own Parquet settings and file names, see
//! [`crate::segment`]) and commits them with `add`/`remove` actions through delta-rs, whose
//! commit is atomic on local disk and on S3 (a log entry is written only if absent, with
//! `If-None-Match` on S3; no lock service). Readers see one committed version at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::RecordBatch;
use deltalake::kernel::engine::arrow_conversion::TryFromArrow;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
pub use deltalake::kernel::Add;
use deltalake::kernel::{Action, Remove, StructType};
use deltalake::logstore::{default_logstore, LogStoreRef, StorageConfig};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError};
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::parquet_io;
use crate::registry::TableDef;
use crate::store::Warehouse;
use crate::Error;

mod schema;
mod write;
pub use schema::{conform, widen};
use write::put_file;
pub use write::{write_derived_file, write_encoded, write_file};

/// A data file of a table's current version.
#[derive(Debug, Clone)]
pub struct DataFile {
    /// Path relative to the table's directory (`date=…/hour=…/NAME.parquet`).
    pub path: String,
    /// Partition values.
    pub partition: BTreeMap<String, Option<String>>,
    /// Size in bytes.
    pub size: i64,
    /// Rows, when the file's statistics say.
    pub records: Option<usize>,
}

impl DataFile {
    /// The file name (after the last `/`).
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// Its partition values in the order of the table's partition columns, as
    /// [`Table::write`] takes them (to write a file's replacement beside it).
    pub fn partition_values(&self, def: &TableDef) -> Vec<(&'static str, String)> {
        def.partitions
            .iter()
            .map(|k| {
                (
                    *k,
                    self.partition
                        .get(*k)
                        .cloned()
                        .flatten()
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    /// The clock hour (Unix seconds) of a file partitioned by `date` and `hour`.
    pub fn hour(&self) -> Option<i64> {
        let value = |k: &str| self.partition.get(k).cloned().flatten();
        crate::time::hour_of(&value("date")?, &value("hour")?)
    }

    fn remove(&self) -> Action {
        Action::Remove(Remove {
            path: self.path.clone(),
            data_change: true,
            deletion_timestamp: Some(chrono::Utc::now().timestamp_millis()),
            extended_file_metadata: Some(true),
            partition_values: Some(
                self.partition
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            size: Some(self.size),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
        })
    }
}

/// A change to commit: files to add (written already) and current files to remove.
#[derive(Debug, Default)]
pub struct Change {
    /// Files written with [`Table::write`].
    pub adds: Vec<Add>,
    /// Files of the current version to remove.
    pub removes: Vec<DataFile>,
    /// Kept in the commit's `commitInfo` (segment ids, run ids), for audits.
    pub info: Vec<(&'static str, String)>,
    /// The rows this commit replaces, as SQL over partition columns (`month = '2026-10'`): a
    /// concurrent commit adding such rows conflicts instead of being silently kept beside.
    pub predicate: Option<String>,
}

/// An open table at one version.
pub struct Table {
    /// What the table is.
    pub def: &'static TableDef,
    delta: DeltaTable,
    files: Arc<dyn ObjectStore>,
    at: String,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({} v{:?})", self.at, self.version())
    }
}

fn log_store(wh: &Warehouse, def: &TableDef) -> Result<(LogStoreRef, Arc<dyn ObjectStore>), Error> {
    let location = wh
        .url()
        .join(&format!("{}/", def.name))
        .map_err(|e| Error::Store {
            path: wh.join(def.name),
            op: "make a URL of",
            message: e.to_string(),
        })?;
    let files: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(wh.store(), wh.path(def.name)));
    let ls = default_logstore(
        files.clone(),
        wh.store(),
        &location,
        &StorageConfig::default(),
    );
    Ok((ls, files))
}

/// `STEM.TIME-PID.parquet`: unique per writer and instant.
fn unique_name(stem: &str) -> String {
    format!(
        "{stem}.{}-{}.parquet",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%9fZ"),
        std::process::id()
    )
}

/// Whether a commit failed because another writer's commit conflicts with it (retrying on
/// the newer version may work).
pub(crate) fn is_conflict(e: &DeltaTableError) -> bool {
    use deltalake::kernel::transaction::TransactionError;
    matches!(
        e,
        DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(_) | TransactionError::MaxCommitAttempts(_)
        }
    )
}

/// Whether a table directory holds a Delta log.
async fn has_log(files: &Arc<dyn ObjectStore>) -> Result<bool, object_store::Error> {
    use futures::TryStreamExt;
    let log = object_store::path::Path::from("_delta_log");
    Ok(files.list(Some(&log)).try_next().await?.is_some())
}

impl Table {
    /// The table's latest version, or `None` when it has no log yet.
    pub(crate) async fn open(
        wh: &Warehouse,
        def: &'static TableDef,
    ) -> Result<Option<Table>, Error> {
        let (ls, files) = log_store(wh, def)?;
        // Asked first, so that opening a table never written is not an error anywhere.
        if !has_log(&files)
            .await
            .map_err(Error::store(wh.join(def.name), "list"))?
        {
            return Ok(None);
        }
        let mut delta = DeltaTable::new(ls);
        match delta.load().await {
            Ok(()) => Ok(Some(Table {
                def,
                delta,
                files,
                at: wh.join(def.name),
            })),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            // A table never written has no directory: the error for that depends on the store.
            Err(e) => match has_log(&files).await {
                Ok(false) => Ok(None),
                _ => Err(Error::delta(wh.join(def.name), "open")(e)),
            },
        }
    }

    /// Opens the table, creating it (version 0: schema and partitioning) when it does not exist.
    pub(crate) async fn open_or_create(
        wh: &Warehouse,
        def: &'static TableDef,
    ) -> Result<Table, Error> {
        // Another process may be creating the table at this moment (shards starting on a new
        // warehouse): its log can be half there, so opening and creating are retried a little.
        let mut last = None;
        for attempt in 0..5u64 {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            match Self::open(wh, def).await {
                Ok(Some(t)) => return Ok(t),
                Ok(None) => {}
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            }
            match Self::create(wh, def).await {
                Ok(t) => return Ok(t),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Corrupt {
            path: wh.join(def.name),
            message: "the table could be neither created nor opened".into(),
        }))
    }

    /// Creates the table (version 0: schema and partitioning).
    async fn create(wh: &Warehouse, def: &'static TableDef) -> Result<Table, Error> {
        let (ls, files) = log_store(wh, def)?;
        let at = wh.join(def.name);
        let schema =
            StructType::try_from_arrow(def.table_schema().as_ref()).map_err(|e| Error::Schema {
                table: def.name.into(),
                message: e.to_string(),
            })?;
        let delta = DeltaTable::new(ls)
            .create()
            .with_table_name(def.name)
            .with_comment(def.about)
            .with_columns(schema.fields().cloned())
            .with_partition_columns(def.partitions.iter().copied())
            .await
            .map_err(Error::delta(&at, "create"))?;
        Ok(Table {
            def,
            delta,
            files,
            at,
        })
    }

    /// The version this handle sees (`None` before the table's first commit).
    pub fn version(&self) -> Option<u64> {
        self.delta.version()
    }

    /// Where the table is, for messages.
    pub fn location(&self) -> &str {
        &self.at
    }

    /// Moves to the latest committed version.
    pub async fn refresh(&mut self) -> Result<(), Error> {
        self.delta
            .update_incremental(None)
            .await
            .map_err(Error::delta(&self.at, "refresh"))
    }

    /// The data files of the version this handle sees.
    pub fn files(&self) -> Result<Vec<DataFile>, Error> {
        let snap = self
            .delta
            .snapshot()
            .map_err(Error::delta(&self.at, "read the snapshot"))?;
        Ok(snap
            .log_data()
            .iter()
            .map(|f| DataFile {
                path: f.path().to_string(),
                partition: f.partition_values_map().into_iter().collect(),
                size: f.size(),
                records: f.num_records(),
            })
            .collect())
    }

    /// Encodes `batches` as one Parquet file named `name` in the partition's directory and
    /// uploads it. It is part of the table only once a [`Change`] holding it is committed.
    pub async fn write(
        &self,
        partition: &[(&str, String)],
        name: &str,
        batches: &[RecordBatch],
    ) -> Result<Add, Error> {
        let mode = object_store::PutMode::Create;
        put_file(
            &self.files,
            &self.at,
            self.def,
            (partition, name),
            batches,
            mode,
        )
        .await
    }

    /// Commits a change as one new version (or nothing, when the change is empty) and moves to
    /// the latest version. Concurrent appends by other writers are kept; a concurrent removal
    /// of a file this change also removes is a conflict.
    pub async fn commit(&mut self, change: Change) -> Result<Option<u64>, Error> {
        if change.adds.is_empty() && change.removes.is_empty() {
            return Ok(None);
        }
        let mut actions: Vec<Action> = change.removes.iter().map(DataFile::remove).collect();
        actions.extend(change.adds.into_iter().map(Action::Add));
        let info: HashMap<String, serde_json::Value> = change
            .info
            .into_iter()
            .map(|(k, v)| (format!("linkmeter.{k}"), serde_json::Value::String(v)))
            .collect();
        let mode = match change.removes.is_empty() {
            true => SaveMode::Append,
            false => SaveMode::Overwrite,
        };
        let op = DeltaOperation::Write {
            mode,
            partition_by: (!self.def.partitions.is_empty())
                .then(|| self.def.partitions.iter().map(|p| p.to_string()).collect()),
            predicate: change.predicate,
        };
        let blind = change.removes.is_empty();
        for attempt in 0.. {
            let snapshot = self
                .delta
                .snapshot()
                .map_err(Error::delta(&self.at, "read the snapshot"))?;
            // Checkpoints (every `delta.checkpointInterval` commits) keep opening and updating
            // the table proportional to the commits since the last one, not to all commits.
            let done = CommitBuilder::from(CommitProperties::default())
                .with_actions(actions.clone())
                .with_app_metadata(info.clone())
                .build(Some(snapshot), self.delta.log_store(), op.clone())
                .await;
            match done {
                Ok(done) => {
                    let v = done.version();
                    self.delta
                        .update_incremental(Some(v))
                        .await
                        .map_err(Error::delta(&self.at, "refresh after commit"))?;
                    return Ok(Some(v));
                }
                // Adding files depends on nothing another writer can have changed but the
                // table's metadata (another process creating the table at the same moment):
                // on the newer version, the same commit is valid.
                Err(e) if blind && attempt < 3 && is_conflict(&e) => {
                    tracing::debug!(message = "concurrent commit; retrying the append", table = %self.at, error = %e);
                    self.refresh().await?;
                }
                Err(e) => return Err(Error::delta(&self.at, "commit")(e)),
            }
        }
        unreachable!("the loop returns")
    }

    /// The bytes of one data file.
    pub async fn get_bytes(&self, f: &DataFile) -> Result<bytes::Bytes, Error> {
        let at = format!("{}/{}", self.at, f.path);
        self.files
            .get(&object_store::path::Path::from(f.path.as_str()))
            .await
            .map_err(Error::store(&at, "read"))?
            .bytes()
            .await
            .map_err(Error::store(&at, "read"))
    }

    /// Reads the data columns of some of the table's files.
    pub async fn read(&self, files: &[DataFile]) -> Result<Vec<RecordBatch>, Error> {
        let mut out = Vec::new();
        for f in files {
            let at = format!("{}/{}", self.at, f.path);
            let bytes = self
                .files
                .get(&object_store::path::Path::from(f.path.as_str()))
                .await
                .map_err(Error::store(&at, "read"))?
                .bytes()
                .await
                .map_err(Error::store(&at, "read"))?;
            for b in parquet_io::decode(bytes, &at)? {
                out.push(widen(&self.def.schema(), b, &at)?);
            }
        }
        Ok(out)
    }

    /// Reads every row of the version this handle sees (small tables: inputs, runs).
    pub async fn read_all(&self) -> Result<Vec<RecordBatch>, Error> {
        self.read(&self.files()?).await
    }

    /// Replaces every file of one partition (of the whole table, when `partition` is empty)
    /// with one file of `batches` named `STEM.UNIQUE.parquet`, in one commit. (A new name
    /// each time: readers of the previous version still find its files.)
    pub async fn replace(
        &mut self,
        partition: &[(&str, String)],
        stem: &str,
        batches: &[RecordBatch],
    ) -> Result<Option<u64>, Error> {
        let name = unique_name(stem);
        self.refresh().await?;
        let removes: Vec<DataFile> = self
            .files()?
            .into_iter()
            .filter(|f| {
                partition
                    .iter()
                    .all(|(k, v)| f.partition.get(*k).cloned().flatten().as_deref() == Some(v))
            })
            .collect();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let mut adds = Vec::new();
        if rows > 0 || partition.is_empty() {
            // A whole table keeps one file even when empty, so readers know its columns.
            adds.push(self.write(partition, &name, batches).await?);
        }
        let predicate = (!partition.is_empty()).then(|| {
            partition
                .iter()
                .map(|(k, v)| format!("{k} = '{v}'"))
                .collect::<Vec<_>>()
                .join(" AND ")
        });
        self.commit(Change {
            adds,
            removes,
            info: vec![],
            predicate,
        })
        .await
    }

    /// Makes the whole table hold exactly `batches`, as the file `NAME.parquet` where `NAME`
    /// is derived from the content by the caller (the inventory's hash): writers that agree
    /// on the content agree on the name, so any number of them (shards starting together)
    /// converge on one file, whoever commits first; a conflicting commit is retried.
    pub async fn replace_with(&mut self, name: &str, batches: &[RecordBatch]) -> Result<(), Error> {
        let file = format!("{name}.parquet");
        for attempt in 0.. {
            self.refresh().await?;
            let files = self.files()?;
            if files.len() == 1 && files[0].path == file {
                return Ok(());
            }
            let add = match self.write(&[], &file, batches).await {
                Ok(a) => a,
                // Written by a writer of the same content: commit it (the bytes are the same).
                Err(Error::Store { .. }) if self.size_of(&file).await.is_some() => {
                    let e = parquet_io::encode(&self.def.schema(), batches, &file)?;
                    Add {
                        path: file.clone(),
                        size: self.size_of(&file).await.unwrap_or_default(),
                        modification_time: chrono::Utc::now().timestamp_millis(),
                        data_change: true,
                        stats: Some(e.stats),
                        ..Default::default()
                    }
                }
                Err(e) => return Err(e),
            };
            let removes = files.into_iter().filter(|f| f.path != file).collect();
            match self
                .commit(Change {
                    adds: vec![add],
                    removes,
                    ..Default::default()
                })
                .await
            {
                Ok(_) => return Ok(()),
                Err(Error::Delta { source, .. }) if attempt < 5 && is_conflict(&source) => {
                    tracing::debug!(message = "concurrent commit; retrying", table = %self.at);
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns")
    }

    /// The size of a file in the table's directory, if it exists.
    async fn size_of(&self, path: &str) -> Option<i64> {
        let m = self
            .files
            .head(&object_store::path::Path::from(path))
            .await
            .ok()?;
        i64::try_from(m.size).ok()
    }

    /// Adds one file of `batches` (named `STEM.UNIQUE.parquet`) in one commit.
    pub async fn append(
        &mut self,
        stem: &str,
        batches: &[RecordBatch],
    ) -> Result<Option<u64>, Error> {
        let add = self.write(&[], &unique_name(stem), batches).await?;
        self.commit(Change {
            adds: vec![add],
            ..Default::default()
        })
        .await
    }

    /// A DataFusion table provider over the version this handle sees; with `only`, over
    /// just those of its files (paths as [`DataFile::path`]).
    pub async fn provider(
        &self,
        session: &dyn datafusion::catalog::Session,
        only: Option<Vec<String>>,
    ) -> Result<Arc<dyn datafusion::catalog::TableProvider>, Error> {
        self.delta
            .update_datafusion_session(session)
            .map_err(Error::delta(&self.at, "register with the query engine"))?;
        let mut b = self.delta.table_provider();
        if let Some(paths) = only {
            b = b.with_file_paths(paths);
        }
        let p = b
            .build()
            .await
            .map_err(|e| Error::delta(&self.at, "build a query provider")(e.into()))?;
        Ok(Arc::new(p))
    }
}
