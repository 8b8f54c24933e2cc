//! The `inputs` table: the checkpoint of ingest. One row per input whose rows are in the
//! warehouse, naming the segment that holds them; a rerun compares what its sources list
//! against it. Written by [`crate::segment`] after the rows it describes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};

use crate::registry::INPUTS;
use crate::store::Warehouse;
use crate::Error;

/// One ingested input: what the next run compares against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InputRow {
    /// The segment whose files hold its rows.
    pub segment_id: String,
    /// The run that read it.
    pub run_id: String,
    /// Stable id (a hash of the key).
    pub input_id: String,
    /// Source name and path, or a Kafka range.
    pub input_key: String,
    /// Where it was read from.
    pub source_uri: String,
    /// The content's identity (an ETag with the size, or a hash of the bytes).
    pub content_hash: String,
    /// The inventory it was attributed with.
    pub inventory_hash: String,
    /// Bytes.
    pub size: u64,
    /// Records read.
    pub records: u64,
    /// Rows written to `flows`.
    pub flow_rows: u64,
    /// Records quarantined.
    pub quarantined: u64,
    /// When it was read.
    pub ingested_at_micros: i64,
    /// Generation of the decoders that read it: an input an older generation quarantined
    /// whole is read again by newer decoders.
    pub decoders: u64,
}

/// What the warehouse holds: every committed input, by id.
#[derive(Debug, Default, Clone)]
pub struct Committed {
    /// Inputs by id.
    pub inputs: HashMap<String, InputRow>,
}

impl Committed {
    /// The ids of the inputs of each segment.
    pub fn segments(&self) -> BTreeMap<&str, Vec<&InputRow>> {
        let mut m: BTreeMap<&str, Vec<&InputRow>> = BTreeMap::new();
        for r in self.inputs.values() {
            m.entry(r.segment_id.as_str()).or_default().push(r);
        }
        for v in m.values_mut() {
            v.sort_by(|a, b| a.input_key.cmp(&b.input_key));
        }
        m
    }
}

/// Reads the checkpoint (empty when nothing was ingested yet). The table stays open in the
/// warehouse handle and each of its files is decoded once, so a stream read in many rounds
/// pays only for what changed since the last round.
pub async fn read(wh: &Warehouse) -> Result<Committed, Error> {
    let Some(t) = wh.table_if_exists(&INPUTS).await? else {
        return Ok(Committed::default());
    };
    let mut t = t.lock().await;
    t.refresh().await?;
    let files = t.files()?;
    let mut c = Committed::default();
    for f in &files {
        let rows = match wh.cached_rows(&f.path) {
            Some(rows) => rows,
            None => {
                let mut rows = Vec::new();
                for b in t.read(std::slice::from_ref(f)).await? {
                    rows.extend(self::rows(&b, t.location())?);
                }
                wh.cache_rows(&f.path, rows)
            }
        };
        for r in rows.iter() {
            c.inputs.insert(r.input_id.clone(), r.clone());
        }
    }
    wh.keep_cached_rows(files.iter().map(|f| f.path.as_str()));
    Ok(c)
}

fn n(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The rows of one segment as a batch of the `inputs` schema.
pub fn batch(rows: &[InputRow]) -> RecordBatch {
    let col_s = |f: &dyn Fn(&InputRow) -> &str| {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>())) as ArrayRef
    };
    let col_n = |f: &dyn Fn(&InputRow) -> u64| {
        Arc::new(Int64Array::from(
            rows.iter().map(|r| n(f(r))).collect::<Vec<_>>(),
        )) as ArrayRef
    };
    let cols = vec![
        col_s(&|r| &r.segment_id),
        col_s(&|r| &r.run_id),
        col_s(&|r| &r.input_id),
        col_s(&|r| &r.input_key),
        col_s(&|r| &r.source_uri),
        col_s(&|r| &r.content_hash),
        col_s(&|r| &r.inventory_hash),
        col_n(&|r| r.size),
        col_n(&|r| r.records),
        col_n(&|r| r.flow_rows),
        col_n(&|r| r.quarantined),
        Arc::new(
            TimestampMicrosecondArray::from(
                rows.iter()
                    .map(|r| r.ingested_at_micros)
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
        col_n(&|r| r.decoders),
    ];
    RecordBatch::try_new(INPUTS.schema(), cols).expect("columns match the inputs schema")
}

/// Parses a batch of the `inputs` table.
pub fn rows(b: &RecordBatch, at: &str) -> Result<Vec<InputRow>, Error> {
    let corrupt = |m: String| Error::Corrupt {
        path: at.to_string(),
        message: m,
    };
    let col = |name: &str| {
        b.column_by_name(name)
            .ok_or_else(|| corrupt(format!("no column {name}")))
    };
    let st = |name: &str| -> Result<Vec<String>, Error> {
        let a = col(name)?
            .as_string_opt::<i32>()
            .ok_or_else(|| corrupt(format!("{name} is not text")))?;
        Ok(a.iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect())
    };
    let int = |name: &str| -> Result<Vec<u64>, Error> {
        let a = col(name)?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| corrupt(format!("{name} is not a 64-bit integer")))?;
        Ok((0..a.len())
            .map(|i| {
                if a.is_null(i) {
                    0
                } else {
                    a.value(i).max(0) as u64
                }
            })
            .collect())
    };
    let at_col = col("ingested_at")?
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| corrupt("ingested_at is not a timestamp".into()))?
        .values()
        .to_vec();
    let (seg, run, id, key, uri, ch, ih) = (
        st("segment_id")?,
        st("run_id")?,
        st("input_id")?,
        st("input_key")?,
        st("source_uri")?,
        st("content_hash")?,
        st("inventory_hash")?,
    );
    let (size, recs, fr, q, dec) = (
        int("size")?,
        int("records")?,
        int("flow_rows")?,
        int("quarantined")?,
        int("decoders")?,
    );
    Ok((0..b.num_rows())
        .map(|i| InputRow {
            segment_id: seg[i].clone(),
            run_id: run[i].clone(),
            input_id: id[i].clone(),
            input_key: key[i].clone(),
            source_uri: uri[i].clone(),
            content_hash: ch[i].clone(),
            inventory_hash: ih[i].clone(),
            size: size[i],
            records: recs[i],
            flow_rows: fr[i],
            quarantined: q[i],
            ingested_at_micros: at_col[i],
            decoders: dec[i],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_a_batch() {
        let r = InputRow {
            segment_id: "s1".into(),
            run_id: "r".into(),
            input_id: "00ff".into(),
            input_key: "src/a.log".into(),
            source_uri: "file:///a.log".into(),
            content_hash: "h".into(),
            inventory_hash: "i".into(),
            size: 10,
            records: 3,
            flow_rows: 2,
            quarantined: 1,
            ingested_at_micros: 5,
            decoders: 3,
        };
        let b = batch(std::slice::from_ref(&r));
        assert_eq!(rows(&b, "t").unwrap(), vec![r]);
    }
}
