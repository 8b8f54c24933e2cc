//! Hourly summaries written beside the rows they sum, so that the month close and the
//! reconciliation read thousands of rows where the warehouse holds millions:
//! [`crate::flow_hours`] beside `flows`, [`crate::broker_hours`] beside `broker_metrics`.
//!
//! **One summary file per source file**, of the same partition and name: whatever adds or
//! removes a source file (a segment commit, a carry, a re-attribution, a supersede, a
//! recovery) does the same to its summary, and the pair is checked by name. [`repair`] makes
//! the tables agree again after anything that changed one and not the other (a crash between
//! their two commits, or a warehouse written before the summaries existed): it sums every
//! source file without a summary and removes every summary without its source file.

use std::collections::{HashMap, HashSet};

use arrow::array::RecordBatch;

use crate::registry::{TableDef, BROKER_HOURS, BROKER_METRICS, FLOWS, FLOW_HOURS};
use crate::store::Warehouse;
use crate::table::{Add, Change};
use crate::Error;

/// A table and the summary written beside each of its files.
#[derive(Debug)]
pub struct Pair {
    /// The table whose files are summed.
    pub source: &'static TableDef,
    /// The summary table.
    pub summary: &'static TableDef,
    /// The summary rows of a source file's rows (`at` names the file in errors).
    pub summarize: fn(&[RecordBatch], &str) -> Result<RecordBatch, Error>,
}

/// Every summarized table.
pub static PAIRS: &[Pair] = &[
    Pair {
        source: &FLOWS,
        summary: &FLOW_HOURS,
        summarize: crate::flow_hours::summarize,
    },
    Pair {
        source: &BROKER_METRICS,
        summary: &BROKER_HOURS,
        summarize: crate::broker_hours::summarize,
    },
];

/// The pair whose source is `def`.
pub fn of_source(def: &TableDef) -> Option<&'static Pair> {
    PAIRS.iter().find(|p| p.source.name == def.name)
}

/// Whether `def` is a summary table (written only with its source files).
pub fn is_summary(def: &TableDef) -> bool {
    PAIRS.iter().any(|p| p.summary.name == def.name)
}

/// What [`repair`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Repaired {
    /// Source files summed (they had no summary).
    pub summed: usize,
    /// Summaries removed (their source file is gone).
    pub removed: usize,
}

/// Makes every summary table hold exactly one summary per source file (see the module docs),
/// in one commit per table. `written` holds summaries already uploaded for new source files
/// (by summary table name and path), which are committed instead of summing their files
/// again. The caller holds the writer lock.
pub async fn repair(
    wh: &Warehouse,
    mut written: HashMap<(&'static str, String), Add>,
) -> Result<Repaired, Error> {
    let mut out = Repaired::default();
    for pair in PAIRS {
        let Some(src) = wh.table_if_exists(pair.source).await? else {
            continue;
        };
        let mut src = src.lock().await;
        src.refresh().await?;
        let files = src.files()?;
        let sums = wh.table(pair.summary).await?;
        let mut sums = sums.lock().await;
        sums.refresh().await?;
        let summaries = sums.files()?;
        let want: HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
        let have: HashSet<&str> = summaries.iter().map(|f| f.path.as_str()).collect();
        let mut change = Change {
            info: vec![("operation", "summarize".to_string())],
            ..Default::default()
        };
        for f in files.iter().filter(|f| !have.contains(f.path.as_str())) {
            let add = match written.remove(&(pair.summary.name, f.path.clone())) {
                Some(add) => add,
                None => {
                    let rows = src.read(std::slice::from_ref(f)).await?;
                    let at = wh.join(&format!("{}/{}", pair.source.name, f.path));
                    let sum = (pair.summarize)(&rows, &at)?;
                    let partition = f.partition_values(pair.source);
                    crate::table::write_derived_file(wh, pair.summary, &partition, f.name(), &[sum])
                        .await?
                }
            };
            out.summed += 1;
            change.adds.push(add);
        }
        for s in summaries
            .into_iter()
            .filter(|s| !want.contains(s.path.as_str()))
        {
            out.removed += 1;
            change.removes.push(s);
        }
        sums.commit(change).await?;
    }
    Ok(out)
}
