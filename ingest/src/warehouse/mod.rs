//! The Parquet warehouse: Hive-partitioned tables under one root (DESIGN §5), written
//! through a [`Sink`] so that a later object-store sink has the same guarantees.
//!
//! Guarantees: a file becomes visible only complete (written under `_tmp/`, then renamed), and
//! the `inputs` table is a small commit log that makes reruns replace rather than add (see
//! [`crate::pipeline`]).

pub mod builders;
pub mod local;
pub mod object;
pub mod schema;
pub mod tables;

use arrow::array::RecordBatch;

pub use local::LocalSink;
pub use object::ObjectSink;

/// Errors writing or reading the warehouse.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// A filesystem operation failed.
    #[error("warehouse {path}: {op} failed: {source}")]
    Io {
        path: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Encoding or decoding Parquet failed.
    #[error("warehouse {path}: Parquet error: {source}")]
    Parquet {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// Another run holds the warehouse lock.
    #[error("warehouse {path} is locked by another linkmeter run ({holder}); wait for it to finish, or delete {path} if that process is gone")]
    Locked { path: String, holder: String },
    /// The object store failed (after its retries).
    #[error("warehouse {path}: {op} failed: {message}")]
    Store {
        path: String,
        op: &'static str,
        message: String,
    },
    /// A warehouse file does not have the columns linkmeter wrote.
    #[error("warehouse {path}: unexpected content: {message}")]
    Corrupt { path: String, message: String },
}

/// Reads a whole Parquet file (from disk or from bytes) into batches.
pub(crate) fn read_parquet<R: parquet::file::reader::ChunkReader + 'static>(
    input: R,
    rel_path: &str,
) -> Result<Vec<RecordBatch>, WarehouseError> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(input)
        .and_then(|b| b.build())
        .map_err(|source| WarehouseError::Parquet {
            path: rel_path.to_string(),
            source,
        })?;
    reader
        .map(|b| {
            b.map_err(|e| WarehouseError::Corrupt {
                path: rel_path.to_string(),
                message: e.to_string(),
            })
        })
        .collect()
}

/// The role of a sink: commit Parquet files into the warehouse atomically.
pub trait Sink: Send + Sync {
    /// Writes `batches` as one Parquet file at `rel_path`; readers see all of it or nothing.
    fn put(&self, rel_path: &str, batches: &[RecordBatch]) -> Result<u64, WarehouseError>;
    /// Writes bytes (a report file) at `rel_path`; readers see all of it or nothing.
    fn put_bytes(&self, rel_path: &str, bytes: &[u8]) -> Result<(), WarehouseError>;
    /// Takes the writer lock of the warehouse (of one shard's ingest, when `shard` is given).
    fn lock(&self, command: &str, shard: Option<(u32, u32)>) -> Result<LockGuard, WarehouseError>;
    /// Removes a file; a missing file is not an error.
    fn delete(&self, rel_path: &str) -> Result<(), WarehouseError>;
    /// Lists the files under a directory (warehouse-relative paths, recursive, sorted);
    /// an absent directory is empty.
    fn list(&self, dir: &str) -> Result<Vec<String>, WarehouseError>;
    /// Reads a whole Parquet file, or `None` when it does not exist.
    fn get(&self, rel_path: &str) -> Result<Option<Vec<RecordBatch>>, WarehouseError>;
    /// Where the warehouse lives, for messages.
    fn root_display(&self) -> String;
}

/// Holds a warehouse lock; releases it on drop.
pub struct LockGuard {
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl LockGuard {
    /// A guard that runs `release` when dropped.
    pub fn new(release: impl FnOnce() + Send + 'static) -> Self {
        LockGuard {
            release: Some(Box::new(release)),
        }
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockGuard")
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(r) = self.release.take() {
            r();
        }
    }
}
