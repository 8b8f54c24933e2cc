//! Writing data files without opening their table: writers encode and upload in parallel and
//! only take turns to commit.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, PutPayload};

use super::Add;
use crate::parquet_io;
use crate::registry::TableDef;
use crate::store::Warehouse;
use crate::Error;

/// Writes a data file of a table without opening the table (see [`super::Table::write`]): writers
/// encode and upload in parallel and only take turns to commit.
pub async fn write_file(
    wh: &Warehouse,
    def: &'static TableDef,
    partition: &[(&str, String)],
    name: &str,
    batches: &[RecordBatch],
) -> Result<Add, Error> {
    let mode = object_store::PutMode::Create;
    write_in(wh, def, (partition, name), batches, mode).await
}

/// [`write_file`] for a file whose content is a function of its name (a summary, named after
/// the files it sums): one left uncommitted by a crash is written over.
pub async fn write_derived_file(
    wh: &Warehouse,
    def: &'static TableDef,
    partition: &[(&str, String)],
    name: &str,
    batches: &[RecordBatch],
) -> Result<Add, Error> {
    let mode = object_store::PutMode::Overwrite;
    write_in(wh, def, (partition, name), batches, mode).await
}

async fn write_in(
    wh: &Warehouse,
    def: &'static TableDef,
    at: (&[(&str, String)], &str),
    batches: &[RecordBatch],
    mode: object_store::PutMode,
) -> Result<Add, Error> {
    let files: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(wh.store(), wh.path(def.name)));
    put_file(&files, &wh.join(def.name), def, at, batches, mode).await
}

pub(super) async fn put_file(
    files: &Arc<dyn ObjectStore>,
    at: &str,
    def: &'static TableDef,
    (partition, name): (&[(&str, String)], &str),
    batches: &[RecordBatch],
    mode: object_store::PutMode,
) -> Result<Add, Error> {
    let dir: String = partition.iter().map(|(k, v)| format!("{k}={v}/")).collect();
    let e = parquet_io::encode(&def.schema(), batches, &format!("{at}/{dir}{name}"))?;
    put_encoded(files, at, (partition, name), e, mode).await
}

/// [`write_file`] for rows encoded already ([`parquet_io::encode`] or
/// [`parquet_io::encode_columns`] with the table's schema):
/// ingest encodes on whichever worker is free, and the segment's own worker writes the file.
pub async fn write_encoded(
    wh: &Warehouse,
    def: &'static TableDef,
    partition: &[(&str, String)],
    name: &str,
    e: parquet_io::Encoded,
) -> Result<Add, Error> {
    let files: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(wh.store(), wh.path(def.name)));
    let mode = object_store::PutMode::Create;
    put_encoded(&files, &wh.join(def.name), (partition, name), e, mode).await
}

async fn put_encoded(
    files: &Arc<dyn ObjectStore>,
    at: &str,
    (partition, name): (&[(&str, String)], &str),
    e: parquet_io::Encoded,
    mode: object_store::PutMode,
) -> Result<Add, Error> {
    let dir: String = partition.iter().map(|(k, v)| format!("{k}={v}/")).collect();
    let path = format!("{dir}{name}");
    let size = e.bytes.len() as i64;
    // Data files are immutable: a name is never written twice (a file a version still lists
    // must not change under its readers), so an existing one is an error, not overwritten
    // (but for derived files, whose content the name decides).
    files
        .put_opts(
            &object_store::path::Path::from(path.as_str()),
            PutPayload::from_bytes(e.bytes),
            object_store::PutOptions::from(mode),
        )
        .await
        .map_err(Error::store(format!("{at}/{path}"), "write"))?;
    Ok(Add {
        path,
        partition_values: partition
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.clone())))
            .collect::<HashMap<_, _>>(),
        size,
        modification_time: chrono::Utc::now().timestamp_millis(),
        data_change: true,
        stats: Some(e.stats),
        ..Default::default()
    })
}
