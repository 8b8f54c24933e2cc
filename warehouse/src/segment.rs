//! The commit protocol of ingest: how the rows of a group of inputs (a **segment**) become
//! visible in several tables, and how a crash between two tables' commits neither loses nor
//! doubles a row.
//!
//! A Delta commit is atomic per table, not across tables. So:
//!
//! - Every data file of a segment is named `SEGMENT.PART.parquet` in every table, so the files
//!   of a segment are found by name in any table's snapshot.
//! - **A data file counts only if its segment is in the checkpoint** (`inputs`, one row per
//!   input naming its segment). A file whose segment is not is an *orphan*.
//! - Writing: the segment's files are committed to `flows`, `flow_hours`, `coverage`,
//!   `broker_metrics` and `quarantine` (one commit each), and **the `inputs` rows last**. A
//!   crash before that last commit leaves orphans and inputs without a checkpoint: the next
//!   run removes the orphans ([`recover`]) before it writes anything, and reads those inputs
//!   again.
//! - Replacing (an input changed): **the `inputs` rows are removed first**, then the
//!   segment's files in every table ([`supersede`]). A crash in between leaves orphans, which
//!   [`recover`] removes; the inputs are read again because the checkpoint no longer has them.
//!   When some of the segment's inputs stay, their rows are copied into a new segment first
//!   and one `inputs` commit switches from the old segment to the new ([`carry`]).
//!
//! Readers see each table's latest commit. Between a segment's first commit and its
//! checkpoint (milliseconds, or until the next run after a crash) its rows are visible but
//! not yet checkpointed; they are never visible twice, because an input's old rows are removed
//! before its new rows are written, and orphans are removed before anything is written.
//!
//! Who may remove orphans: a run that holds the whole warehouse (an unsharded run, which the
//! writer lock keeps apart from every other) removes all; shard `i` of `n` removes only its own
//! (segment ids carry the run id, which ends in `-s{i}of{n}`), since other shards may be
//! between their two commits right now.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use deltalake::kernel::Add;

use crate::inputs::{self, Committed, InputRow};
use crate::registry::{TableDef, INPUTS, SEGMENT_TABLES};
use crate::store::Warehouse;
use crate::summaries;
use crate::table::{Change, DataFile};
use crate::Error;

/// The name of part `part` of segment `id` in any table.
pub fn file_name(id: &str, part: u32) -> String {
    format!("{id}.{part:05}.parquet")
}

/// The segment a data file belongs to (its name up to the first dot).
pub fn segment_of(name: &str) -> &str {
    let name = name.rsplit('/').next().unwrap_or(name);
    name.split('.').next().unwrap_or(name)
}

/// The name of a segment's file rewritten in place (re-attribution): still of its segment and
/// part, tagged so that it differs from the file it replaces (`SEG.PART.rTAG.parquet`).
pub fn rewritten_name(name: &str, tag: &str) -> String {
    let name = name.rsplit('/').next().unwrap_or(name);
    let mut parts = name.split('.');
    let seg = parts.next().unwrap_or(name);
    match parts.next() {
        Some(part) if part != "parquet" => format!("{seg}.{part}.r{tag}.parquet"),
        _ => format!("{seg}.r{tag}.parquet"),
    }
}

/// A segment being written: its files, uploaded but not committed yet.
#[derive(Debug)]
pub struct Segment {
    id: String,
    part: u32,
    adds: BTreeMap<&'static str, Vec<Add>>,
    /// Summaries of the files written so far, by summary table and day: (file names, rows),
    /// written as one file per table and day when the segment commits.
    sums: BTreeMap<(&'static str, String), Summed>,
}

/// The names of files written and their summary rows.
type Summed = (Vec<String>, Vec<RecordBatch>);

impl Segment {
    /// A new segment. `id` must be unique in the warehouse and contain no dot (it starts with
    /// the run id; see [`crate::segment`] on shards).
    pub fn new(id: String) -> Segment {
        debug_assert!(!id.contains('.') && !id.contains('/'), "segment id {id}");
        Segment {
            id,
            part: 0,
            adds: BTreeMap::new(),
            sums: BTreeMap::new(),
        }
    }

    /// The segment's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Summary rows held for the commit (they grow with the distinct keys written, not with
    /// the rows: the writer commits early when they are many).
    pub fn summary_rows(&self) -> usize {
        self.sums
            .values()
            .flat_map(|(_, rows)| rows)
            .map(RecordBatch::num_rows)
            .sum()
    }

    /// Files written so far.
    pub fn files(&self) -> usize {
        self.adds.values().map(Vec::len).sum()
    }

    /// Writes rows of one partition of a segment table as a file of this segment (and, for a
    /// summarized table, sums them for the segment's summary of that day: see
    /// [`crate::summaries`]). Nothing is visible until [`Segment::commit`].
    pub async fn write(
        &mut self,
        wh: &Warehouse,
        def: &'static TableDef,
        partition: &[(&str, String)],
        batches: &[RecordBatch],
    ) -> Result<(), Error> {
        debug_assert!(SEGMENT_TABLES.iter().any(|t| t.name == def.name));
        debug_assert!(
            !summaries::is_summary(def),
            "summaries come with their rows"
        );
        let name = file_name(&self.id, self.part);
        self.part += 1;
        let add = crate::table::write_file(wh, def, partition, &name, batches).await?;
        let summary = match summaries::of_source(def) {
            Some(pair) => {
                let at = wh.join(&format!("{}/{}", def.name, add.path));
                Some((pair.summarize)(batches, &at)?)
            }
            None => None,
        };
        self.add(wh, def, partition, name, add, summary)
    }

    /// [`Segment::write`] for rows encoded already (by [`crate::parquet_io::encode`] or
    /// [`crate::parquet_io::encode_columns`] with `def`'s schema, on any thread); a summarized
    /// table's rows must come with their summary.
    pub async fn write_encoded(
        &mut self,
        wh: &Warehouse,
        def: &'static TableDef,
        partition: &[(&str, String)],
        encoded: crate::parquet_io::Encoded,
        summary: Option<RecordBatch>,
    ) -> Result<(), Error> {
        debug_assert!(SEGMENT_TABLES.iter().any(|t| t.name == def.name));
        let name = file_name(&self.id, self.part);
        self.part += 1;
        let add = crate::table::write_encoded(wh, def, partition, &name, encoded).await?;
        self.add(wh, def, partition, name, add, summary)
    }

    /// Keeps a written file for the commit, and folds its summary rows into the segment's.
    fn add(
        &mut self,
        wh: &Warehouse,
        def: &'static TableDef,
        partition: &[(&str, String)],
        name: String,
        add: Add,
        summary: Option<RecordBatch>,
    ) -> Result<(), Error> {
        if let Some(pair) = summaries::of_source(def) {
            let at = wh.join(&format!("{}/{}", def.name, add.path));
            // Without its summary rows the file's bytes would be missing from every rollup.
            let sum = summary.ok_or_else(|| Error::Schema {
                table: def.name.to_string(),
                message: format!("{at} was written without its {} rows", pair.summary.name),
            })?;
            let day = partition
                .iter()
                .find(|(k, _)| *k == "date")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let (names, rows) = self.sums.entry((pair.summary.name, day)).or_default();
            names.push(name.clone());
            rows.push(sum);
            pair.fold(rows, false, &at)?;
        }
        self.adds.entry(def.name).or_default().push(add);
        Ok(())
    }

    /// Commits the segment: its files in each table, then its inputs' checkpoint rows (which
    /// make them count). Every row of `inputs` must name this segment.
    pub async fn commit(mut self, wh: &Warehouse, inputs: &[InputRow]) -> Result<(), Error> {
        debug_assert!(inputs.iter().all(|r| r.segment_id == self.id));
        self.commit_files(wh).await?;
        if inputs.is_empty() {
            return Ok(());
        }
        let t = wh.table(&INPUTS).await?;
        let add = crate::table::write_file(
            wh,
            &INPUTS,
            &[],
            &file_name(&self.id, 0),
            &[inputs::batch(inputs)],
        )
        .await?;
        t.lock()
            .await
            .commit(Change {
                adds: vec![add],
                info: vec![("segment", self.id.clone())],
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// Commits the segment's data files, one commit per table (orphans until checkpointed).
    async fn commit_files(&mut self, wh: &Warehouse) -> Result<(), Error> {
        for ((table, day), (names, rows)) in std::mem::take(&mut self.sums) {
            let def = crate::registry::by_name(table).expect("summary tables are registered");
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let name = summaries::summary_name(&self.id, &names);
            let mut rows = rows;
            if let Some(pair) = summaries::of_summary(table) {
                pair.fold(&mut rows, true, &name)?;
            }
            let add = crate::table::write_file(wh, def, &[("date", day)], &name, &rows).await?;
            self.adds.entry(table).or_default().push(add);
        }
        for def in SEGMENT_TABLES {
            let Some(adds) = self.adds.remove(def.name) else {
                continue;
            };
            let t = wh.table(def).await?;
            t.lock()
                .await
                .commit(Change {
                    adds,
                    info: vec![("segment", self.id.clone())],
                    ..Default::default()
                })
                .await?;
        }
        Ok(())
    }
}

/// Moves the rows of `keep` (checkpointed inputs of segment `from`) into the new segment `to`,
/// then retires `from`; its other inputs lose their rows and checkpoint (the caller reads them
/// again). Replacing one changed input thus copies its segment's other rows instead of reading
/// their raw inputs again, which may no longer exist (expired logs) or be listed by this run.
///
/// Crash safety, in order: `to`'s data files are committed first (orphans until the next step,
/// so recovery removes them after a crash and `from` stays whole); then **one** `inputs`
/// commit removes `from`'s checkpoint rows and adds `to`'s, so exactly one of the two segments
/// counts at any instant; last, `from`'s files, now orphans, are removed (or by recovery).
/// Returns the rows carried.
pub async fn carry(wh: &Warehouse, from: &str, keep: &[InputRow], to: &str) -> Result<u64, Error> {
    debug_assert!(keep.iter().all(|r| r.segment_id == from));
    let ids: HashSet<&str> = keep.iter().map(|r| r.input_id.as_str()).collect();
    let mut seg = Segment::new(to.to_string());
    let mut rows = 0u64;
    // Summaries are written with the flows rows they sum.
    for def in SEGMENT_TABLES.iter().filter(|d| !summaries::is_summary(d)) {
        let Some(t) = wh.table_if_exists(def).await? else {
            continue;
        };
        let mut t = t.lock().await;
        t.refresh().await?;
        let files: Vec<DataFile> = t
            .files()?
            .into_iter()
            .filter(|f| segment_of(f.name()) == from)
            .collect();
        for f in files {
            let kept = only_inputs(t.read(std::slice::from_ref(&f)).await?, &ids, &f.path)?;
            let n: usize = kept.iter().map(RecordBatch::num_rows).sum();
            if n == 0 {
                continue;
            }
            rows += n as u64;
            seg.write(wh, def, &f.partition_values(def), &kept).await?;
        }
    }
    seg.commit_files(wh).await?;
    let moved: Vec<InputRow> = keep
        .iter()
        .map(|r| InputRow {
            segment_id: to.to_string(),
            ..r.clone()
        })
        .collect();
    let add = crate::table::write_file(
        wh,
        &INPUTS,
        &[],
        &file_name(to, 0),
        &[inputs::batch(&moved)],
    )
    .await?;
    {
        let t = wh.table(&INPUTS).await?;
        let mut t = t.lock().await;
        t.refresh().await?;
        let removes: Vec<DataFile> = t
            .files()?
            .into_iter()
            .filter(|f| segment_of(f.name()) == from)
            .collect();
        if removes.is_empty() {
            // Another writer (a shard running at the same time) replaced `from` since this
            // run planned: switching now would count the rows carried twice. This run's copy
            // stays an orphan, which its next run removes.
            return Err(Error::Raced {
                path: wh.join(INPUTS.name),
                message: format!("segment {from} was replaced by another writer while this run carried its rows; nothing was switched, run again"),
            });
        }
        t.commit(Change {
            adds: vec![add],
            removes,
            info: vec![
                ("operation", "carry".to_string()),
                ("segment", to.to_string()),
                ("from", from.to_string()),
            ],
            ..Default::default()
        })
        .await?;
    }
    for def in SEGMENT_TABLES {
        remove_files(wh, def, |name| segment_of(name) == from, "supersede").await?;
    }
    Ok(rows)
}

/// The rows of `batches` whose `input_id` is one of `ids`.
fn only_inputs(
    batches: Vec<RecordBatch>,
    ids: &HashSet<&str>,
    at: &str,
) -> Result<Vec<RecordBatch>, Error> {
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let col = b
            .column_by_name("input_id")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| Error::Corrupt {
                path: at.to_string(),
                message: "no input_id column of strings".into(),
            })?;
        let mask: BooleanArray = col
            .iter()
            .map(|v| Some(v.is_some_and(|v| ids.contains(v))))
            .collect();
        out.push(
            arrow::compute::filter_record_batch(&b, &mask).map_err(|e| Error::Corrupt {
                path: at.to_string(),
                message: e.to_string(),
            })?,
        );
    }
    Ok(out)
}

/// Name prefix of the quarantine files the bill loader writes (never a segment id, which
/// starts with a run id).
pub const BILL_QUARANTINE: &str = "bill-";

/// Removes the files of some segments from every table: their checkpoint rows first, so a
/// crash leaves orphans (removed by [`recover`]), never rows without their inputs read again.
pub async fn supersede(wh: &Warehouse, segments: &BTreeSet<String>) -> Result<(), Error> {
    if segments.is_empty() {
        return Ok(());
    }
    remove_files(
        wh,
        &INPUTS,
        |name| segments.contains(segment_of(name)),
        "supersede",
    )
    .await?;
    for def in SEGMENT_TABLES {
        remove_files(
            wh,
            def,
            |name| segments.contains(segment_of(name)),
            "supersede",
        )
        .await?;
    }
    Ok(())
}

/// Removes orphans (files of segments the checkpoint does not name) that `mine` says this run
/// may remove. Returns the orphan segments removed.
pub async fn recover(
    wh: &Warehouse,
    committed: &Committed,
    mine: &dyn Fn(&str) -> bool,
) -> Result<BTreeSet<String>, Error> {
    let live: HashSet<&str> = committed
        .inputs
        .values()
        .map(|r| r.segment_id.as_str())
        .collect();
    let mut gone = BTreeSet::new();
    for def in SEGMENT_TABLES {
        let removed = remove_files(
            wh,
            def,
            |name| {
                let s = segment_of(name);
                // `bill-…` quarantine files belong to the bill loader, which replaces them by
                // billing period (`linkmeter_ingest::bill::load`), not to a segment.
                !live.contains(s) && mine(s) && !s.starts_with(BILL_QUARANTINE)
            },
            "recover",
        )
        .await?;
        gone.extend(removed.iter().map(|f| segment_of(&f.path).to_string()));
    }
    Ok(gone)
}

/// Removes (in one commit) the files of a table whose names `doomed` picks.
async fn remove_files(
    wh: &Warehouse,
    def: &'static TableDef,
    doomed: impl Fn(&str) -> bool,
    why: &str,
) -> Result<Vec<DataFile>, Error> {
    // Removing never creates a table.
    let Some(t) = wh.table_if_exists(def).await? else {
        return Ok(Vec::new());
    };
    let mut t = t.lock().await;
    // Another writer may remove some of the same files first (a shard's recovery and a carry
    // both removing an old segment's orphans): on a conflict, look again and remove the rest.
    for attempt in 0.. {
        t.refresh().await?;
        let removes: Vec<DataFile> = t
            .files()?
            .into_iter()
            .filter(|f| doomed(f.name()))
            .collect();
        if removes.is_empty() {
            return Ok(removes);
        }
        let done = t
            .commit(Change {
                removes: removes.clone(),
                info: vec![("operation", why.to_string())],
                ..Default::default()
            })
            .await;
        match done {
            Ok(_) => return Ok(removes),
            Err(e) if attempt < 3 && e.is_conflict() => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_name_their_segment() {
        let n = file_name("20261127T070914Z-02af-s1of3-w0-00001", 7);
        assert_eq!(n, "20261127T070914Z-02af-s1of3-w0-00001.00007.parquet");
        assert_eq!(segment_of(&n), "20261127T070914Z-02af-s1of3-w0-00001");
        assert_eq!(
            segment_of(&format!("date=2026-10-01/hour=03/{n}")),
            "20261127T070914Z-02af-s1of3-w0-00001"
        );
        let r = rewritten_name(&format!("date=2026-10-01/hour=03/{n}"), "ab12");
        assert_eq!(
            r,
            "20261127T070914Z-02af-s1of3-w0-00001.00007.rab12.parquet"
        );
        assert_eq!(
            rewritten_name(&r, "cd34"),
            "20261127T070914Z-02af-s1of3-w0-00001.00007.rcd34.parquet"
        );
        assert_eq!(segment_of(&r), "20261127T070914Z-02af-s1of3-w0-00001");
    }
}
