//! The linkmeter warehouse: the on-disk contract every other crate reads and writes through.
//!
//! Every table is a Delta Lake table (Parquet data files plus a transaction log) under one root,
//! a local directory or `s3://bucket/prefix`, with Hive-style partition directories:
//!
//! - [`registry`]: each table's name, schema, partitioning and kind, defined once;
//! - [`store`]: the [`Warehouse`] handle (local or object store) and its tables;
//! - [`table`]: one Delta table: its files, commits, reads and a DataFusion provider;
//! - [`summaries`]: hourly sums written beside `flows` ([`flow_hours`]) and `broker_metrics`
//!   ([`broker_hours`]), one summary file per segment and day, for the month close;
//! - [`segment`]: the commit protocol that makes ingest idempotent and crash-safe across tables;
//! - [`inputs`] and [`runs`]: the checkpoint of ingested inputs and the run log;
//! - [`closed`]: months closed for finance (frozen; later changes become adjustments);
//! - [`lock`]: the writer lock of scheduled runs;
//! - [`marks`]: which inventories the ingested rows were attributed under;
//! - [`parquet_io`]: file encoding and the statistics readers prune by;
//! - [`csv_out`]: CSV for people (finance exports, `sql --format csv`), formula-safe.
//!
//! `docs/architecture.md` tells how a commit makes rows visible.

pub mod broker_hours;
pub mod closed;
pub mod csv_out;
pub mod flow_hours;
pub mod inputs;
pub mod lock;
pub mod marks;
pub mod parquet_io;
pub mod registry;
pub mod runs;
pub mod segment;
pub mod store;
pub mod summaries;
pub mod table;
pub mod time;

pub use lock::LockGuard;
pub use registry::TableDef;
pub use store::Warehouse;
pub use table::Table;
pub use time::Month;

/// Errors writing or reading the warehouse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Encoding or decoding Parquet failed.
    #[error("warehouse {path}: Parquet error: {source}")]
    Parquet {
        /// The file or table.
        path: String,
        /// What Parquet said.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// Rows do not have the table's columns (a bug in the writer).
    #[error("warehouse table {table}: {message}")]
    Schema {
        /// The table.
        table: String,
        /// What differs.
        message: String,
    },
    /// Another run holds the warehouse lock.
    #[error("warehouse {path} is locked by another linkmeter run ({holder}); wait for it to finish (a local lock ends with its process; a lock on S3 whose holder was killed is taken over once it has not been renewed for lock_ttl_secs, 15 minutes by default)")]
    Locked {
        /// The lock file or object.
        path: String,
        /// Who holds it.
        holder: String,
    },
    /// The object store or filesystem failed (after its retries).
    #[error("warehouse {path}: {op} failed: {message}")]
    Store {
        /// The object or file.
        path: String,
        /// What was being done.
        op: &'static str,
        /// The store's message.
        message: String,
    },
    /// A Delta Lake operation failed.
    #[error("warehouse table {table}: {op} failed: {source}")]
    Delta {
        /// The table's location.
        table: String,
        /// What was being done.
        op: &'static str,
        /// What delta-rs said.
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    /// Another writer changed what this run planned on; nothing that counts was committed.
    #[error("warehouse {path}: {message}")]
    Raced {
        /// The table.
        path: String,
        /// What changed, and what to do.
        message: String,
    },
    /// A warehouse file does not hold what linkmeter wrote.
    #[error("warehouse {path}: unexpected content: {message}")]
    Corrupt {
        /// The file or table.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The warehouse was written by an earlier linkmeter in a layout this one does not read.
    #[error("warehouse {path} was written by an earlier linkmeter (plain Parquet with segment manifests, before Delta Lake tables); this version cannot read it. Rebuild it from the sources: move it aside (mv {path} {path}.old), run `linkmeter ingest` (or `run`) to read every input again, then `linkmeter invoice --month M` for the months you need. See README \"Upgrading\".")]
    OldLayout {
        /// The warehouse root.
        path: String,
    },
}

impl Error {
    /// Whether this is a Delta commit that lost to a concurrent one (worth looking again).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Delta { source, .. } if crate::table::is_conflict(source))
    }

    pub(crate) fn store(
        path: impl std::fmt::Display,
        op: &'static str,
    ) -> impl FnOnce(object_store::Error) -> Error {
        let path = path.to_string();
        move |e| Error::Store {
            path,
            op,
            message: e.to_string(),
        }
    }

    pub(crate) fn delta(
        table: impl std::fmt::Display,
        op: &'static str,
    ) -> impl FnOnce(deltalake::DeltaTableError) -> Error {
        let table = table.to_string();
        move |e| Error::Delta {
            table,
            op,
            source: Box::new(e),
        }
    }
}
