//! The `runs` table: one row per ingest run with its conservation balance.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};

use crate::registry::{RUNS, RUN_COUNTERS};
use crate::store::Warehouse;
use crate::Error;

/// One run's row.
#[derive(Debug, Clone, Default)]
pub struct RunRow {
    /// The run's id.
    pub run_id: String,
    /// `ingest`, `run`, …
    pub command: String,
    /// Start, microseconds since the epoch.
    pub started_micros: i64,
    /// End, microseconds since the epoch.
    pub finished_micros: i64,
    /// The counters named in [`RUN_COUNTERS`], in that order.
    pub counters: Vec<u128>,
    /// Whether the balance held.
    pub balanced: bool,
    /// Unattributed records and bytes per reason, as text.
    pub unattributed_by_reason: String,
}

/// Appends a run's row.
pub async fn append(wh: &Warehouse, r: &RunRow) -> Result<(), Error> {
    let t = wh.table(&RUNS).await?;
    let b = batch(r)?;
    t.lock().await.append(&r.run_id, &[b]).await?;
    Ok(())
}

fn batch(r: &RunRow) -> Result<RecordBatch, Error> {
    if r.counters.len() != RUN_COUNTERS.len() {
        return Err(Error::Schema {
            table: "runs".into(),
            message: format!(
                "{} counters given, {} expected",
                r.counters.len(),
                RUN_COUNTERS.len()
            ),
        });
    }
    let s = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
    let t = |v: i64| {
        Arc::new(TimestampMicrosecondArray::from(vec![v]).with_timezone("UTC")) as ArrayRef
    };
    let mut cols = vec![
        s(&r.run_id),
        s(&r.command),
        t(r.started_micros),
        t(r.finished_micros),
    ];
    for (name, v) in RUN_COUNTERS.iter().zip(&r.counters) {
        cols.push(if name.starts_with("bytes") {
            Arc::new(
                Decimal128Array::from(vec![i128::try_from(*v).unwrap_or(i128::MAX)])
                    .with_precision_and_scale(38, 0)
                    .expect("38 digits"),
            ) as ArrayRef
        } else {
            Arc::new(Int64Array::from(
                vec![i64::try_from(*v).unwrap_or(i64::MAX)],
            )) as ArrayRef
        });
    }
    cols.push(Arc::new(BooleanArray::from(vec![r.balanced])));
    cols.push(s(&r.unattributed_by_reason));
    RecordBatch::try_new(RUNS.schema(), cols).map_err(|e| Error::Schema {
        table: "runs".into(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_fits_the_schema() {
        let mut r = RunRow {
            run_id: "r".into(),
            counters: vec![1; RUN_COUNTERS.len()],
            ..Default::default()
        };
        assert_eq!(batch(&r).unwrap().num_rows(), 1);
        r.counters.pop();
        assert!(batch(&r).is_err());
    }
}
