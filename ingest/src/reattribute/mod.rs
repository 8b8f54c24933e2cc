//! Re-attribution from the warehouse: when the clusters or connections of the inventory
//! change, the stored `flows` and `coverage` rows whose attribution can change are attributed
//! again and their files replaced through the commit log, without reading any raw input (which
//! may have expired). Every record that can ever be billed is stored (multi-VPC traffic is
//! relevant by its port whatever the inventory says), so this recovers all of it but records
//! filtered under the old inventory (not MSK ports and no known endpoint address).
//!
//! Which rows can change is found from the difference between the inventories the rows were
//! written under ([`linkmeter_warehouse::marks`]) and the current one: ENIs whose connection,
//! AZ or addresses differ, their addresses, and regions gained or lost. A file is read whole
//! only when one of its rows names one of those; it is rewritten only when a row's
//! attribution actually changed.

mod coverage;
mod keys;
pub mod rows;

use std::sync::Mutex;

use bytes::Bytes;
use linkmeter_warehouse::registry::FLOWS;
use linkmeter_warehouse::table::{widen, Change, DataFile};
use linkmeter_warehouse::{marks, parquet_io, segment, Error, Warehouse};

use crate::inventory::{Index, Inventory};
pub use keys::Keys;
pub use rows::Moves;

/// What re-attribution did.
#[derive(Debug, Default)]
pub struct Summary {
    /// The inventories (attribution hashes) the rows were attributed under before.
    pub from: Vec<String>,
    /// Every row was a candidate (no record of the previous inventory).
    pub full: bool,
    /// `flows` files looked at, read whole, and replaced.
    pub files: (usize, usize, usize),
    /// `coverage` files replaced.
    pub coverage_files: usize,
    /// Rows that changed verdict.
    pub moves: Moves,
    /// A shard ran under an inventory the warehouse is not attributed under: the next whole
    /// run re-attributes.
    pub deferred: bool,
}

impl Summary {
    /// Whether anything was looked at.
    pub fn ran(&self) -> bool {
        !self.from.is_empty() || self.full
    }
}

/// The mark of an inventory: its hash and the inventory (to diff against later).
fn mark_of(ix: &Index) -> (String, Bytes) {
    let json = serde_json::to_vec(&ix.inventory).expect("inventory types serialize");
    (format!("{:016x}", ix.attribution), Bytes::from(json))
}

/// Brings the warehouse's attribution to `ix` (see the module docs). A shard only records
/// that its rows are written under `ix`; the next whole run re-attributes. Blocking: call it
/// outside `rt`. `tag` names the rewritten files (unique to the run). The summaries of the
/// files it replaces are the caller's to rebuild (`linkmeter_warehouse::summaries::repair`).
pub fn reattribute(
    wh: &Warehouse,
    ix: &Index,
    rt: &tokio::runtime::Handle,
    shard: bool,
    tag: &str,
    workers: usize,
) -> Result<Summary, Error> {
    let (current, content) = mark_of(ix);
    let mut marks = rt.block_on(marks::list(wh))?;
    if marks.is_empty() && legacy_stale(wh, ix, rt)? {
        // Rows from before marks, read under another inventory: a mark no release can
        // parse makes the next whole run check every row (a shard's own mark must not hide
        // them).
        let legacy = Bytes::from_static(b"rows written before attribution marks");
        rt.block_on(marks::put(wh, "legacy", legacy.clone()))?;
        marks.push(("legacy".to_string(), legacy));
    }
    let mut s = Summary::default();
    if shard {
        if !marks.iter().any(|(h, _)| *h == current) {
            rt.block_on(marks::put(wh, &current, content))?;
        }
        s.deferred = marks.iter().any(|(h, _)| *h != current);
        return Ok(s);
    }
    let mut keys = Keys::default();
    for (hash, bytes) in marks.iter().filter(|(h, _)| *h != current) {
        s.from.push(hash.clone());
        let old = serde_json::from_slice::<Inventory>(bytes)
            .ok()
            .and_then(|i| i.index().ok());
        match old {
            Some(old) => keys.merge(Keys::between(&old, ix)),
            // A mark this release cannot read (legacy, or an older format): every row.
            None => keys = Keys::all(),
        }
    }
    if s.from.is_empty() {
        // A new warehouse, or one whose rows are all under this inventory.
        if marks.is_empty() {
            rt.block_on(marks::settle(wh, &current, content))?;
        }
        return Ok(s);
    }
    // The current inventory's mark first: rows rewritten under it are never unmarked, so a
    // crash before the old marks go leaves every inventory that rows may be under.
    rt.block_on(marks::put(wh, &current, content.clone()))?;
    s.full = keys.is_all();
    tracing::info!(message = "re-attributing stored rows to the current inventory", from = ?s.from, every_row = s.full);
    flows(wh, ix, rt, &keys, tag, workers.max(1), &mut s)?;
    s.coverage_files = coverage::redo(wh, ix, rt, tag)?;
    rt.block_on(marks::settle(wh, &current, content))?;
    Ok(s)
}

/// Whether a warehouse from before marks holds inputs read under another inventory (they
/// record the attribution hash, or the whole inventory text's before that).
fn legacy_stale(wh: &Warehouse, ix: &Index, rt: &tokio::runtime::Handle) -> Result<bool, Error> {
    let committed = rt.block_on(linkmeter_warehouse::inputs::read(wh))?;
    let now = [
        format!("{:016x}", ix.attribution),
        format!("{:016x}", ix.hash),
    ];
    Ok(committed
        .inputs
        .values()
        .any(|r| !now.contains(&r.inventory_hash)))
}

/// One file looked at: replaced by `add` (None: removed, every row now filtered), or kept.
struct Looked {
    file: DataFile,
    read: bool,
    replace: Option<Option<linkmeter_warehouse::table::Add>>,
    moves: Moves,
}

fn flows(
    wh: &Warehouse,
    ix: &Index,
    rt: &tokio::runtime::Handle,
    keys: &Keys,
    tag: &str,
    workers: usize,
    s: &mut Summary,
) -> Result<(), Error> {
    let Some(t) = rt.block_on(wh.table_if_exists(&FLOWS))? else {
        return Ok(());
    };
    let files = rt.block_on(async {
        let mut t = t.lock().await;
        t.refresh().await?;
        t.files()
    })?;
    let next = Mutex::new(files.into_iter());
    let done: Mutex<Vec<Looked>> = Mutex::new(Vec::new());
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                if failed.lock().expect("no panics").is_some() {
                    return;
                }
                let Some(f) = next.lock().expect("no panics").next() else {
                    return;
                };
                match look(wh, ix, rt, keys, tag, f) {
                    Ok(l) => done.lock().expect("no panics").push(l),
                    Err(e) => {
                        *failed.lock().expect("no panics") = Some(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().expect("no panics") {
        return Err(e);
    }
    let done = done.into_inner().expect("no panics");
    let mut change = Change {
        info: vec![("operation", "reattribute".to_string())],
        ..Default::default()
    };
    for l in done {
        s.files.0 += 1;
        s.files.1 += usize::from(l.read);
        s.moves.merge(l.moves);
        if let Some(add) = l.replace {
            s.files.2 += 1;
            change.removes.push(l.file);
            change.adds.extend(add);
        }
    }
    // For audits, the commit says what moved.
    let moves: Vec<serde_json::Value> = s
        .moves
        .by_change
        .iter()
        .map(|((from, to), (rows, bytes))| {
            serde_json::json!({"from": from, "to": to, "rows": rows, "bytes": bytes.to_string()})
        })
        .collect();
    change
        .info
        .push(("moves", serde_json::Value::Array(moves).to_string()));
    // One commit: readers see every row under the old attribution or every row under the
    // new. Nothing else writes `flows` meanwhile (a whole run holds the writer lock).
    rt.block_on(async {
        let mut t = t.lock().await;
        t.commit(change).await
    })?;
    Ok(())
}

/// Looks at one `flows` file: reads its key columns, and when a row may change, all of it.
fn look(
    wh: &Warehouse,
    ix: &Index,
    rt: &tokio::runtime::Handle,
    keys: &Keys,
    tag: &str,
    file: DataFile,
) -> Result<Looked, Error> {
    let at = wh.join(&format!("{}/{}", FLOWS.name, file.path));
    let mut l = Looked {
        file,
        read: false,
        replace: None,
        moves: Moves::default(),
    };
    // Rows of an hour no change reaches (a lifetime edit) are not even opened.
    if !keys.is_all() && !keys.may_touch_hour(l.file.hour()) {
        return Ok(l);
    }
    let Some(bytes) = rt.block_on(wh.get_file(&format!("{}/{}", FLOWS.name, l.file.path)))? else {
        return Err(Error::Corrupt {
            path: at,
            message: "a file the table lists is missing".into(),
        });
    };
    if !keys.is_all() {
        let cols = parquet_io::decode_dictionaries(bytes.clone(), keys::COLUMNS, &at)?;
        if !cols.iter().any(|b| keys.touches(b)) {
            return Ok(l);
        }
    }
    l.read = true;
    let schema = FLOWS.schema();
    let mut out = Vec::new();
    let mut changed = false;
    for b in parquet_io::decode(bytes, &at)? {
        let b = widen(&schema, b, &at)?;
        let r = rows::reattribute(&b, ix).map_err(|m| Error::Corrupt {
            path: at.clone(),
            message: m,
        })?;
        changed |= r.changed;
        l.moves.merge(r.moves);
        out.push(r.batch);
    }
    if !changed {
        return Ok(l);
    }
    let rows: usize = out.iter().map(|b| b.num_rows()).sum();
    if rows == 0 {
        l.replace = Some(None);
        return Ok(l);
    }
    let partition = l.file.partition_values(&FLOWS);
    let name = segment::rewritten_name(&l.file.path, tag);
    let add = rt.block_on(linkmeter_warehouse::table::write_file(
        wh, &FLOWS, &partition, &name, &out,
    ))?;
    l.replace = Some(Some(add));
    Ok(l)
}

impl std::fmt::Display for Summary {
    /// Nothing when nothing was looked at; else what was looked at, replaced and moved, and
    /// what cannot be recovered.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.deferred {
            writeln!(f, "re-attribution: the warehouse holds rows attributed under another inventory; a shard does not re-attribute, the next whole run (without --shard) does")?;
        }
        if !self.ran() {
            return Ok(());
        }
        let (looked, read, replaced) = self.files;
        writeln!(
            f,
            "re-attributed to the current inventory (was {}): {looked} flows files looked at, {read} read, {replaced} replaced, {} coverage files replaced; no raw input read",
            if self.full { "unknown: every row checked".to_string() } else { self.from.join(", ") },
            self.coverage_files
        )?;
        for ((from, to), (rows, bytes)) in &self.moves.by_change {
            writeln!(f, "  {from} → {to}: {rows} rows, {bytes} bytes")?;
        }
        writeln!(f, "  records filtered under the previous inventory were never stored and stay uncounted; `linkmeter ingest --force` reads again the raw inputs still at their source")
    }
}
