//! Hourly summaries written beside the rows they sum, so that the month close and the
//! reconciliation read thousands of rows where the warehouse holds millions:
//! [`crate::flow_hours`] beside `flows`, [`crate::broker_hours`] beside `broker_metrics`.
//!
//! **One summary file per segment and day**, holding the sums of that segment's source files
//! of that day, and **named after them**: `SEGMENT.sHASH.parquet`, HASH a digest of the source
//! files' names. So a summary belongs to its segment (supersede, recovery and the catalog's
//! checkpoint filter treat it like the segment's other files), and whether it still sums the
//! files that are there is a question of names: [`repair`] compares, per segment and day, the
//! name the current source files call for with the summaries there are, rebuilds what is
//! missing from the source files and removes what no longer matches — after a crash between
//! two tables' commits, a re-attribution that replaced some `flows` files, or in a warehouse
//! written before the summaries. When every name matches it reads nothing. (A file per source
//! file would have been simpler to pair, but readers pay about a millisecond per file, and a
//! month of `flows` is thousands of files.)

use std::collections::{BTreeMap, HashSet};

use arrow::array::RecordBatch;

use crate::registry::{TableDef, BROKER_HOURS, BROKER_METRICS, FLOWS, FLOW_HOURS};
use crate::store::Warehouse;
use crate::table::{Change, DataFile};
use crate::Error;

/// A table and the summary written beside its files.
#[derive(Debug)]
pub struct Pair {
    /// The table whose files are summed.
    pub source: &'static TableDef,
    /// The summary table (partitioned by `date`).
    pub summary: &'static TableDef,
    /// The summary rows of one source file's rows (`at` names the file in errors).
    pub summarize: SumFn,
    /// Folds several files' summary rows into one row per key, where rows of one key from
    /// different files may be added up (not for `broker_hours`, keyed by source file).
    pub merge: Option<SumFn>,
}

impl Pair {
    /// Folds the summary rows of several files into one batch with one row per key, where the
    /// pair allows it: always when `last`, else once they have doubled since the last fold (so
    /// each row is folded a bounded number of times). A file's sums repeat the keys of the
    /// files before it: unfolded, the 40 M-record bench set's segments held 640,000 rows,
    /// which fold to under 50,000.
    pub fn fold(&self, rows: &mut Vec<RecordBatch>, last: bool, at: &str) -> Result<(), Error> {
        let Some(merge) = self.merge else {
            return Ok(());
        };
        let held: usize = rows.iter().map(RecordBatch::num_rows).sum();
        let due = match rows.first() {
            Some(first) => held >= 2 * first.num_rows() + 4096,
            None => false,
        };
        if rows.len() > 1 && (last || due) {
            *rows = vec![merge(rows, at)?];
        }
        Ok(())
    }
}

/// Summary rows of some rows (`at` names them in errors).
pub type SumFn = fn(&[RecordBatch], &str) -> Result<RecordBatch, Error>;

/// Every summarized table.
pub static PAIRS: &[Pair] = &[
    Pair {
        source: &FLOWS,
        summary: &FLOW_HOURS,
        summarize: crate::flow_hours::summarize,
        merge: Some(crate::flow_hours::merge),
    },
    Pair {
        source: &BROKER_METRICS,
        summary: &BROKER_HOURS,
        summarize: crate::broker_hours::summarize,
        merge: None,
    },
];

/// The pair whose source is `def`.
pub fn of_source(def: &TableDef) -> Option<&'static Pair> {
    PAIRS.iter().find(|p| p.source.name == def.name)
}

/// Whether `def` is a summary table (written only with its source files).
pub fn is_summary(def: &TableDef) -> bool {
    of_summary(def.name).is_some()
}

/// The pair whose summary table is named `table`.
pub fn of_summary(table: &str) -> Option<&'static Pair> {
    PAIRS.iter().find(|p| p.summary.name == table)
}

/// The name of the summary of `segment`'s source files named `sources` (of one day).
pub fn summary_name(segment: &str, sources: &[&str]) -> String {
    let mut names: Vec<&str> = sources.to_vec();
    names.sort_unstable();
    let digest = xxhash_rust::xxh3::xxh3_64(names.join("\n").as_bytes());
    format!("{segment}.s{digest:016x}.parquet")
}

/// The summaries (by path in the summary table) that source `files` call for, with the
/// files each sums.
pub fn expected(files: &[DataFile]) -> BTreeMap<String, Vec<&DataFile>> {
    let mut groups: BTreeMap<(String, String), Vec<&DataFile>> = BTreeMap::new();
    for f in files {
        let segment = crate::segment::segment_of(f.name()).to_string();
        groups.entry((segment, day(f))).or_default().push(f);
    }
    groups
        .into_iter()
        .map(|((segment, date), group)| {
            let names: Vec<&str> = group.iter().map(|f| f.name()).collect();
            (
                format!("date={date}/{}", summary_name(&segment, &names)),
                group,
            )
        })
        .collect()
}

/// Whether `summaries` are exactly what source `files` call for (no read: by name).
pub fn matches(files: &[DataFile], summaries: &[DataFile]) -> bool {
    let want = expected(files);
    summaries.len() == want.len() && summaries.iter().all(|s| want.contains_key(&s.path))
}

/// What [`repair`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Repaired {
    /// Summaries written from their source files (they were missing or stale).
    pub summed: usize,
    /// Summaries removed (their source files changed or are gone).
    pub removed: usize,
}

/// The `date` partition value of a file.
fn day(f: &DataFile) -> String {
    f.partition
        .get("date")
        .cloned()
        .flatten()
        .unwrap_or_default()
}

/// Makes every summary table hold exactly the summaries its source files call for (see the
/// module docs), in one commit per table. The caller holds the writer lock.
pub async fn repair(wh: &Warehouse) -> Result<Repaired, Error> {
    let mut out = Repaired::default();
    for pair in PAIRS {
        let Some(src) = wh.table_if_exists(pair.source).await? else {
            continue;
        };
        let mut src = src.lock().await;
        src.refresh().await?;
        let files = src.files()?;
        let want = expected(&files);
        let sums = wh.table(pair.summary).await?;
        let mut sums = sums.lock().await;
        sums.refresh().await?;
        let summaries = sums.files()?;
        let have: HashSet<&str> = summaries.iter().map(|f| f.path.as_str()).collect();
        let mut change = Change {
            info: vec![("operation", "summarize".to_string())],
            ..Default::default()
        };
        for (path, group) in &want {
            if !have.contains(path.as_str()) {
                let (dir, name) = path.split_once('/').expect("date=D/NAME");
                let date = dir.trim_start_matches("date=").to_string();
                let mut batches = Vec::with_capacity(group.len());
                for f in group {
                    let rows = src.read(std::slice::from_ref(*f)).await?;
                    let at = wh.join(&format!("{}/{}", pair.source.name, f.path));
                    batches.push((pair.summarize)(&rows, &at)?);
                    pair.fold(&mut batches, false, &at)?;
                }
                pair.fold(&mut batches, true, name)?;
                let partition = [("date", date)];
                let add =
                    crate::table::write_derived_file(wh, pair.summary, &partition, name, &batches)
                        .await?;
                out.summed += 1;
                change.adds.push(add);
            }
        }
        for s in summaries
            .into_iter()
            .filter(|s| !want.contains_key(&s.path))
        {
            out.removed += 1;
            change.removes.push(s);
        }
        sums.commit(change).await?;
    }
    Ok(out)
}
