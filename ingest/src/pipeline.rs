//! Ingest: source → decode → attribute → warehouse.
//!
//! Inputs are written in **segments**: a worker buffers the rows of consecutive inputs and
//! writes them together (one file per table partition per segment), because flow-log inputs
//! are small and per-file costs dominated when every input had its own files. The `inputs`
//! table is the commit log that keeps this idempotent and crash-safe:
//!
//! 1. Start: every `pending` segment (a run died mid-write) is rolled back: its files, then
//!    its manifest, are deleted; its inputs have no committed entry, so they are read again.
//! 2. Plan: an input whose content hash and inventory hash match its committed entry is
//!    skipped. Every other input is (re)read, and so is every other input of a segment that
//!    held one of them, because that segment is superseded: its manifest is rewritten as
//!    `pending` first, then its files and manifest are deleted.
//! 3. Write: before a segment's files are written its manifest lists them as `pending`; after
//!    the last one lands it is rewritten as `committed` with its inputs.
//!
//! So a crash leaves at worst rows that the next run rolls back (never counted twice after
//! recovery) or inputs with no rows yet (read again): reruns converge to the same contents.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::attribute::{attribute, Outcome};
use crate::decode::flow_parquet::{ParquetDecoder, PARQUET_MAGIC};
use crate::decode::flow_text::TextDecoder;
use crate::decode::metric_stream::MetricStreamDecoder;
use crate::decode::otel::OtelDecoder;
use crate::decode::prometheus::PrometheusDecoder;
use crate::decode::{BadInput, Content, Decoder, Event, FlowRecord, MetricPoint, Position};
use crate::fields::Format;
use crate::hours::split_hours;
use crate::inventory::Index;
use crate::source::{Fetch, InputRef, Location};
use crate::summary::Tally;
use crate::warehouse::builders::{
    CoverageBuilder, FlowsBuilder, Lineage, MetricsBuilder, QuarantineBuilder,
};
use crate::warehouse::tables::{
    read_segments, write_segment, InputRow, SegmentManifest, SegmentStatus,
};
use crate::warehouse::{Sink, WarehouseError};

/// Errors that stop a run (bad input never does: it is quarantined).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The warehouse could not be written or read.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// An input must be re-read, but rows written together with it belong to inputs that this
    /// run does not list, so replacing them would lose data.
    #[error("an input changed, but its rows were written in segment {segment} together with {count} input(s) this run does not list (for example {example}); run ingest once over everything (no --source, --since/--until or --shard), or restore the missing files, so nothing is lost")]
    Unlisted {
        segment: String,
        count: usize,
        example: String,
    },
}

/// One input with the settings of the source it came from.
#[derive(Debug, Clone)]
pub struct Job {
    /// The input.
    pub input: InputRef,
    /// Opens the input when it is not a local file.
    pub fetch: Option<Arc<dyn Fetch>>,
    /// For stream inputs: (first line of a message, its offset), sorted; lineage then records
    /// the message's offset in `source_offset` instead of a byte offset.
    pub line_offsets: Option<Arc<Vec<(u64, i64)>>>,
    /// Format for text files without a header line.
    pub format: Format,
    /// Account to assume when neither the record nor the path names one.
    pub account: Option<String>,
    /// What the input holds (by its bytes unless the source says).
    pub content: Content,
}

/// Generation of the decoders: 1 read flow logs only, 2 added CloudWatch metric streams (JSON),
/// 3 Prometheus text and OpenTelemetry 1.0.0. An input an older generation quarantined whole is
/// read again.
pub const DECODERS: u64 = 3;

/// Run-wide settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Identifies this run in lineage columns and the `runs` table.
    pub run_id: String,
    /// Re-ingest inputs even when their checkpoint says they are unchanged.
    pub force: bool,
    /// Worker threads.
    pub workers: usize,
    /// Buffered rows per worker before a segment is written (bounds memory).
    pub flush_rows: usize,
    /// Most inputs in one segment.
    pub segment_inputs: usize,
    /// This run is shard `i` of `n` (its run id ends in [`shard_tag`]); it recovers only
    /// its own shard's unfinished segments, since other shards may be writing theirs now.
    pub shard: Option<(u32, u32)>,
    /// Which call of [`ingest`] this is within the run (a stream is written in rounds): part
    /// of segment names, so rounds never overwrite each other's files.
    pub round: u32,
    /// Raised (SIGTERM) to stop: workers take no new input, commit what they hold, and the
    /// run returns with [`Report::interrupted`] set. The rest is read by the next run.
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// The suffix of the run ids of shard `i` of `n`.
pub fn shard_tag((i, n): (u32, u32)) -> String {
    format!("-s{i}of{n}")
}

/// The shard a run id names, if any.
fn run_shard(run_id: &str) -> Option<(u32, u32)> {
    let (i, n) = run_id.rsplit_once("-s")?.1.split_once("of")?;
    Some((i.parse().ok()?, n.parse().ok()?))
}

impl Default for Options {
    fn default() -> Self {
        Options {
            run_id: "run".into(),
            force: false,
            workers: 2,
            flush_rows: 100_000,
            segment_inputs: 4096,
            shard: None,
            round: 0,
            stop: None,
        }
    }
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Input bytes read so far (compressed where the input is).
    pub bytes_read: AtomicU64,
    /// Inputs finished (read or skipped).
    pub inputs_done: AtomicU64,
    /// Records decoded so far.
    pub records: AtomicU64,
}

/// A quarantine entry with the input it came from, for the run summary.
#[derive(Debug, Clone)]
pub struct QuarantineSample {
    /// The input's URI.
    pub uri: String,
    /// The entry.
    pub bad: BadInput,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// The conservation balance.
    pub tally: Tally,
    /// The first quarantine entries (up to 20), to show the user.
    pub samples: Vec<QuarantineSample>,
    /// Segments rolled back because an earlier run died while writing them.
    pub rolled_back: u64,
    /// Committed segments replaced because one of their inputs changed.
    pub superseded: u64,
    /// Stopped before every input was read (see [`Options::stop`]).
    pub interrupted: bool,
}

/// Stable id of an input.
pub fn input_id(key: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(key.as_bytes()))
}

/// What identifies an input's content: the store's version (an S3 ETag) with the size, or
/// else a hash of the bytes.
fn content_identity(input: &InputRef) -> std::io::Result<(String, u64)> {
    match (&input.version, &input.location) {
        (Some(v), _) => Ok((
            format!("etag:{}:{}", v.trim_matches('"'), input.size),
            input.size,
        )),
        (None, Location::File(p)) => hash_file(p),
        (None, _) => Err(std::io::Error::other("an input without a version")),
    }
}

fn hash_file(path: &std::path::Path) -> std::io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((format!("{:032x}", h.digest128()), size))
}

/// Deletes a segment's files and then its manifest, after marking it pending so that a crash
/// in between is finished by the next run.
fn remove_segment(sink: &dyn Sink, m: &SegmentManifest) -> Result<(), WarehouseError> {
    if m.status == SegmentStatus::Committed {
        write_segment(
            sink,
            &SegmentManifest {
                status: SegmentStatus::Pending,
                ..m.clone()
            },
        )?;
    }
    for f in &m.files {
        sink.delete(f)?;
    }
    sink.delete(&crate::warehouse::tables::manifest_path(&m.segment_id))
}

/// Orders inputs so a worker's consecutive inputs cover the same hours (AWS file names carry
/// `YYYYMMDDTHHmmZ`), which keeps a segment's files few and large.
fn time_key(key: &str) -> &str {
    let b = key.as_bytes();
    for i in 0..b.len().saturating_sub(13) {
        let w = &b[i..i + 14];
        if w[8] == b'T' && w[13] == b'Z' && w[..8].iter().chain(&w[9..13]).all(u8::is_ascii_digit) {
            return &key[i..i + 14];
        }
    }
    ""
}

/// Ingests every job into the warehouse.
pub fn ingest(
    jobs: &[Job],
    ix: &Index,
    sink: &dyn Sink,
    opts: &Options,
    progress: &Progress,
) -> Result<Report, IngestError> {
    let mut report = Report::default();
    // 1. Recover from runs that died mid-write.
    let mut committed = Vec::new();
    for m in read_segments(sink)? {
        // An unsharded run never overlaps another run (the locks exclude it), so its leftovers
        // are anyone's to undo; another shard's may be in progress right now.
        let theirs = run_shard(&m.run_id);
        let mine = theirs.is_none() || opts.shard.is_none() || theirs == opts.shard;
        if m.status == SegmentStatus::Pending && mine {
            tracing::warn!(message = "rolling back a segment an earlier run did not finish", segment = %m.segment_id, files = m.files.len());
            remove_segment(sink, &m)?;
            report.rolled_back += 1;
        } else if m.status == SegmentStatus::Committed {
            committed.push(m);
        }
        // A pending segment of another shard is that shard's business: it may be running.
    }
    let mut seg_of: HashMap<&str, usize> = HashMap::new();
    for (si, m) in committed.iter().enumerate() {
        for r in &m.inputs {
            seg_of.insert(r.input_id.as_str(), si);
        }
    }
    // 2. Plan.
    let inventory_hash = format!("{:016x}", ix.hash);
    let ids: Vec<String> = jobs.iter().map(|j| input_id(&j.input.key)).collect();
    let mut by_content: HashMap<&str, &InputRow> = HashMap::new();
    for m in &committed {
        for r in &m.inputs {
            by_content.insert(r.content_hash.as_str(), r);
        }
    }
    let listed: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut hashes: Vec<Option<(String, u64)>> = Vec::with_capacity(jobs.len());
    let mut todo: HashSet<usize> = HashSet::new();
    let mut doomed: HashSet<usize> = HashSet::new();
    let mut seen_content: HashMap<String, usize> = HashMap::new();
    for (i, job) in jobs.iter().enumerate() {
        // Hashing local files reads them all: a stop request is honoured here too, before
        // anything is written.
        if opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            report.interrupted = true;
            return Ok(report);
        }
        let h = content_identity(&job.input).ok();
        let entry = seg_of
            .get(ids[i].as_str())
            .and_then(|&si| committed[si].inputs.iter().find(|r| r.input_id == ids[i]));
        let Some((hash, _)) = h.as_ref() else {
            if entry.is_some() {
                // Unreadable now, but ingested before: keep its rows rather than replace
                // them with a quarantine entry because of a passing error.
                tracing::warn!(message = "input unreadable; keeping the rows of its previous ingest", input = %job.input.uri);
                hashes.push(None);
                continue;
            }
            todo.insert(i);
            hashes.push(None);
            continue;
        };
        // The same bytes under another identity (a renamed source, a moved root, two sources
        // listing one file) are one input, not two.
        if let Some(&first) = seen_content.get(hash) {
            tracing::warn!(message = "same content as another input of this run; ingested once", input = %job.input.uri, first = %jobs[first].input.uri);
            hashes.push(h);
            continue;
        }
        seen_content.insert(hash.clone(), i);
        if let Some(other) = by_content.get(hash.as_str()) {
            if other.input_id != ids[i] && !listed.contains(other.input_id.as_str()) && !opts.force
            {
                tracing::warn!(message = "already ingested under another identity; skipped", input = %job.input.uri, as_input = %other.source_uri);
                hashes.push(h);
                continue;
            }
        }
        let same = |r: &InputRow| r.content_hash == *hash && r.inventory_hash == inventory_hash;
        let older_quarantine =
            |r: &InputRow| r.decoders < DECODERS && r.records > 0 && r.quarantined == r.records;
        // Re-reading for newer decoders is a bonus, never a reason to fail: not when the
        // segment also holds inputs this run does not list (they could not be replaced).
        // (Checked only for such inputs: it walks the segment.)
        let all_listed = || {
            seg_of.get(ids[i].as_str()).is_none_or(|&si| {
                committed[si]
                    .inputs
                    .iter()
                    .all(|r| listed.contains(r.input_id.as_str()))
            })
        };
        let unchanged =
            !opts.force && entry.is_some_and(|r| same(r) && !(older_quarantine(r) && all_listed()));
        if !unchanged {
            todo.insert(i);
            if let Some(&si) = seg_of.get(ids[i].as_str()) {
                doomed.insert(si);
            }
        }
        hashes.push(h);
    }
    let index_of: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    for &si in &doomed {
        let unlisted: Vec<&InputRow> = committed[si]
            .inputs
            .iter()
            .filter(|r| !index_of.contains_key(r.input_id.as_str()))
            .collect();
        if let Some(first) = unlisted.first() {
            // Replacing the segment would drop rows of inputs this run cannot read again.
            return Err(IngestError::Unlisted {
                segment: committed[si].segment_id.clone(),
                count: unlisted.len(),
                example: first.source_uri.clone(),
            });
        }
        for r in &committed[si].inputs {
            if let Some(&i) = index_of.get(r.input_id.as_str()) {
                todo.insert(i);
            }
        }
    }
    for &si in &doomed {
        remove_segment(sink, &committed[si])?;
        report.superseded += 1;
    }
    let skipped = (jobs.len() - todo.len()) as u64;
    report.tally.inputs_skipped = skipped;
    for (i, j) in jobs.iter().enumerate() {
        if !todo.contains(&i) {
            progress
                .bytes_read
                .fetch_add(j.input.size, Ordering::Relaxed);
        }
    }
    progress.inputs_done.fetch_add(skipped, Ordering::Relaxed);
    let mut order: Vec<usize> = todo.into_iter().collect();
    order.sort_by(|&a, &b| {
        time_key(&jobs[a].input.key)
            .cmp(time_key(&jobs[b].input.key))
            .then(jobs[a].input.key.cmp(&jobs[b].input.key))
    });

    // Remote stores download ahead in the order the workers will ask.
    let mut fetchers: Vec<(Arc<dyn Fetch>, Vec<InputRef>)> = Vec::new();
    for &i in &order {
        if let Some(f) = &jobs[i].fetch {
            match fetchers.iter_mut().find(|(g, _)| Arc::ptr_eq(g, f)) {
                Some((_, list)) => list.push(jobs[i].input.clone()),
                None => fetchers.push((f.clone(), vec![jobs[i].input.clone()])),
            }
        }
    }
    for (f, list) in fetchers {
        f.plan(list);
    }

    // 3. Write, one segment writer per worker.
    let next = AtomicUsize::new(0);
    let shared = Mutex::new((Tally::default(), Vec::<QuarantineSample>::new()));
    let failure: Mutex<Option<WarehouseError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for w in 0..opts.workers.max(1) {
            let (order, ids, hashes, shared, failure, next, inventory_hash) = (
                &order,
                &ids,
                &hashes,
                &shared,
                &failure,
                &next,
                &inventory_hash,
            );
            scope.spawn(move || {
                let mut seg = Segment::new(sink, ix, opts, w);
                let result = (|| -> Result<(), WarehouseError> {
                    loop {
                        if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                            return Ok(());
                        }
                        if opts
                            .stop
                            .as_ref()
                            .is_some_and(|s| s.load(Ordering::Relaxed))
                        {
                            break;
                        }
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&i) = order.get(k) else { break };
                        let job = &jobs[i];
                        let (tally, samples) = seg.ingest_input(
                            job,
                            &ids[i],
                            hashes[i].as_ref(),
                            inventory_hash,
                            progress,
                        )?;
                        {
                            let mut sh = shared.lock().expect("no worker panics while holding it");
                            sh.0.merge(&tally);
                            let room = 20usize.saturating_sub(sh.1.len());
                            sh.1.extend(samples.into_iter().take(room));
                        }
                        progress.inputs_done.fetch_add(1, Ordering::Relaxed);
                        if seg.full() {
                            seg.commit()?;
                        }
                    }
                    seg.commit()
                })();
                if let Err(e) = result {
                    *failure.lock().expect("no worker panics while holding it") = Some(e);
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("workers finished") {
        return Err(e.into());
    }
    let (tally, samples) = shared.into_inner().expect("workers finished");
    report.tally.merge(&tally);
    report.samples = samples;
    report.interrupted = next.load(Ordering::Relaxed) < order.len();
    Ok(report)
}

/// Counts bytes read for the progress display and remembers whether reading itself failed
/// (as opposed to the bytes failing to decode).
struct Counting<'a, R> {
    inner: R,
    counter: &'a AtomicU64,
    failed: &'a std::cell::Cell<bool>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .inspect_err(|_| self.failed.set(true))?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Why an input could not be read to the end.
enum ReadFailure {
    /// The bytes are not a valid input; reading again will not help until they change.
    Content(String),
    /// The bytes could not be fetched (after the source's retries); the next run tries again.
    Fetch(String),
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

fn date_of(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}

/// A worker's open segment: buffered rows of the inputs read since the last commit.
struct Segment<'a> {
    sink: &'a dyn Sink,
    ix: &'a Index,
    run_id: String,
    round: u32,
    worker: usize,
    seq: u32,
    part: u32,
    flows: BTreeMap<i64, FlowsBuilder>,
    coverage: BTreeMap<String, CoverageBuilder>,
    metrics: BTreeMap<String, MetricsBuilder>,
    quarantine: QuarantineBuilder,
    buffered: usize,
    flush_rows: usize,
    max_inputs: usize,
    files: Vec<String>,
    members: Vec<InputRow>,
}

/// Per-input state while it is decoded into the segment.
struct InputCtx {
    line_offsets: Option<Arc<Vec<(u64, i64)>>>,
    lineage: Lineage,
    account: Option<String>,
    tally: Tally,
    samples: Vec<QuarantineSample>,
    error: Option<WarehouseError>,
}

impl<'a> Segment<'a> {
    fn new(sink: &'a dyn Sink, ix: &'a Index, opts: &Options, worker: usize) -> Self {
        Segment {
            sink,
            ix,
            run_id: opts.run_id.clone(),
            round: opts.round,
            worker,
            seq: 0,
            part: 0,
            flows: BTreeMap::new(),
            coverage: BTreeMap::new(),
            metrics: BTreeMap::new(),
            quarantine: QuarantineBuilder::default(),
            buffered: 0,
            flush_rows: opts.flush_rows.max(1),
            max_inputs: opts.segment_inputs.max(1),
            files: Vec::new(),
            members: Vec::new(),
        }
    }

    fn id(&self) -> String {
        match self.round {
            0 => format!("{}-w{}-{:05}", self.run_id, self.worker, self.seq),
            r => format!("{}-r{r}-w{}-{:05}", self.run_id, self.worker, self.seq),
        }
    }

    fn full(&self) -> bool {
        self.buffered >= self.flush_rows || self.members.len() >= self.max_inputs
    }

    fn manifest(&self, status: SegmentStatus) -> SegmentManifest {
        SegmentManifest {
            segment_id: self.id(),
            status,
            files: self.files.clone(),
            inputs: if status == SegmentStatus::Committed {
                self.members.clone()
            } else {
                Vec::new()
            },
            run_id: self.run_id.clone(),
        }
    }

    /// Writes the buffered rows as part files of the open segment (still pending).
    fn flush(&mut self) -> Result<(), WarehouseError> {
        let id = self.id();
        let part = self.part;
        self.part += 1;
        let mut out: Vec<(String, arrow::array::RecordBatch)> = Vec::new();
        for (hour, mut b) in std::mem::take(&mut self.flows) {
            if b.is_empty() {
                continue;
            }
            let t = DateTime::<Utc>::from_timestamp(hour, 0).unwrap_or_default();
            out.push((
                format!(
                    "flows/date={}/hour={}/{id}-{part:03}.parquet",
                    t.format("%Y-%m-%d"),
                    t.format("%H")
                ),
                b.finish(),
            ));
        }
        for (date, mut b) in std::mem::take(&mut self.coverage) {
            if !b.is_empty() {
                out.push((
                    format!("coverage/date={date}/{id}-{part:03}.parquet"),
                    b.finish(),
                ));
            }
        }
        for (date, mut b) in std::mem::take(&mut self.metrics) {
            if !b.is_empty() {
                out.push((
                    format!("broker_metrics/date={date}/{id}-{part:03}.parquet"),
                    b.finish(),
                ));
            }
        }
        if !self.quarantine.is_empty() {
            out.push((
                format!("quarantine/{id}-{part:03}.parquet"),
                self.quarantine.finish(now_micros()),
            ));
        }
        self.buffered = 0;
        if out.is_empty() {
            return Ok(());
        }
        self.files.extend(out.iter().map(|(p, _)| p.clone()));
        // The manifest names the files before they exist, so a crash can always be undone.
        write_segment(self.sink, &self.manifest(SegmentStatus::Pending))?;
        for (path, batch) in out {
            self.sink.put(&path, &[batch])?;
        }
        Ok(())
    }

    /// Writes what is buffered and commits the segment with its inputs.
    fn commit(&mut self) -> Result<(), WarehouseError> {
        if self.members.is_empty() && self.files.is_empty() && self.buffered == 0 {
            return Ok(());
        }
        self.flush()?;
        write_segment(self.sink, &self.manifest(SegmentStatus::Committed))?;
        self.seq += 1;
        self.part = 0;
        self.files.clear();
        self.members.clear();
        Ok(())
    }

    fn ingest_input(
        &mut self,
        job: &Job,
        id: &str,
        hashed: Option<&(String, u64)>,
        inventory_hash: &str,
        progress: &Progress,
    ) -> Result<(Tally, Vec<QuarantineSample>), WarehouseError> {
        let input = &job.input;
        let mut cx = InputCtx {
            line_offsets: job.line_offsets.clone(),
            lineage: Lineage {
                source_uri: input.uri.clone(),
                input_id: id.to_string(),
                run_id: self.run_id.clone(),
            },
            account: input.account_hint.clone().or_else(|| job.account.clone()),
            tally: Tally {
                inputs_read: 1,
                ..Default::default()
            },
            samples: Vec::new(),
            error: None,
        };
        let (mut content_hash, size) = match hashed {
            Some((h, s)) => (h.clone(), *s),
            None => (String::from("unreadable"), 0),
        };
        if hashed.is_none() {
            self.bad(
                &mut cx,
                BadInput {
                    position: Position::default(),
                    reason: "cannot read the file".into(),
                    raw: String::new(),
                    records: 1,
                },
            );
        } else if let Err(failure) = self.decode_file(job, &mut cx, progress) {
            let reason = match failure {
                ReadFailure::Content(r) => r,
                ReadFailure::Fetch(r) => {
                    // Not recorded as read: the next run reads it again and replaces whatever
                    // part of it this run wrote, so it is never counted twice.
                    content_hash = String::from("unreadable");
                    format!("{r}; it will be read again on the next run")
                }
            };
            self.bad(
                &mut cx,
                BadInput {
                    position: Position::default(),
                    reason,
                    raw: String::new(),
                    records: 1,
                },
            );
        }
        if let Some(e) = cx.error.take() {
            return Err(e);
        }
        progress
            .records
            .fetch_add(cx.tally.records_in, Ordering::Relaxed);
        self.members.push(InputRow {
            input_id: id.to_string(),
            input_key: input.key.clone(),
            source_uri: input.uri.clone(),
            content_hash,
            inventory_hash: inventory_hash.to_string(),
            size,
            records: cx.tally.records_in,
            flow_rows: cx.tally.flow_rows,
            quarantined: cx.tally.quarantined,
            ingested_at_micros: now_micros(),
            decoders: DECODERS,
        });
        Ok((cx.tally, cx.samples))
    }

    fn decode_file(
        &mut self,
        job: &Job,
        cx: &mut InputCtx,
        progress: &Progress,
    ) -> Result<(), ReadFailure> {
        let failed = std::cell::Cell::new(false);
        let raw: Box<dyn Read + Send> = match (&job.input.location, &job.fetch) {
            (Location::File(path), _) => Box::new(
                File::open(path)
                    .map_err(|e| ReadFailure::Fetch(format!("cannot open the file: {e}")))?,
            ),
            (_, Some(f)) => f.open(&job.input),
            (_, None) => return Err(ReadFailure::Fetch("no client for this input".into())),
        };
        let mut reader = Counting {
            inner: raw,
            counter: &progress.bytes_read,
            failed: &failed,
        };
        // The first bytes say what the input is: Parquet, JSON (a metric stream) or text.
        let mut head = vec![0u8; 4096];
        let mut n = 0;
        while n < head.len() {
            match reader.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => return Err(ReadFailure::Fetch(format!("cannot read it: {e}"))),
            }
        }
        head.truncate(n);
        // A stream input is many messages: what they hold is the source's to say, never
        // guessed from the first one.
        let stream = matches!(job.input.location, Location::Stream { .. });
        let is_parquet = n >= 4 && head[..4] == PARQUET_MAGIC[..];
        let content = match job.content {
            Content::Auto if stream => Content::FlowLogs,
            Content::Auto if crate::decode::is_json(&head) => Content::MetricStream,
            Content::Auto if crate::decode::prometheus::looks_like(&head) => Content::Prometheus,
            Content::Auto if !is_parquet && crate::decode::otel::looks_like(&head) => {
                Content::OpenTelemetry
            }
            c => c,
        };
        let mut sink = |ev: Event<'_, '_>| self.on_event(cx, ev);
        let res = if content == Content::MetricStream {
            let d = MetricStreamDecoder::new(std::io::Cursor::new(head).chain(reader));
            if stream { d.messages() } else { d }.decode(&mut sink)
        } else if content == Content::OpenTelemetry {
            if stream {
                // Kafka messages are joined with newlines, which binary records cannot take.
                return Err(ReadFailure::Content("OpenTelemetry metric streams are read from files and S3, not Kafka; send JSON (content = \"metric-stream\") through Kafka".into()));
            }
            OtelDecoder::new(std::io::Cursor::new(head).chain(reader)).decode(&mut sink)
        } else if content == Content::Prometheus {
            let d = PrometheusDecoder::new(std::io::Cursor::new(head).chain(reader));
            if stream { d.messages() } else { d }.decode(&mut sink)
        } else if !stream && n >= 4 && head[..4] == PARQUET_MAGIC[..] {
            // Parquet needs random access: a local file is read in place, an object whole
            // (AWS writes flow-log Parquet files of at most 75 MB).
            match &job.input.location {
                Location::File(path) => {
                    drop(reader);
                    let f = File::open(path)
                        .map_err(|e| ReadFailure::Fetch(format!("cannot open the file: {e}")))?;
                    progress
                        .bytes_read
                        .fetch_add(job.input.size.saturating_sub(n as u64), Ordering::Relaxed);
                    ParquetDecoder::new(f).decode(&mut sink)
                }
                _ => {
                    let mut all = Vec::with_capacity(job.input.size as usize);
                    all.extend_from_slice(&head);
                    reader
                        .read_to_end(&mut all)
                        .map_err(|e| ReadFailure::Fetch(format!("cannot read it: {e}")))?;
                    ParquetDecoder::new(bytes::Bytes::from(all)).decode(&mut sink)
                }
            }
        } else {
            let d = TextDecoder::new(std::io::Cursor::new(head).chain(reader), job.format.clone());
            if stream { d.headerless() } else { d }.decode(&mut sink)
        };
        // A decoder may turn a read error into a quarantine entry and return Ok; what counts
        // is whether the bytes could be fetched to the end.
        match (res, failed.get()) {
            (_, true) => Err(ReadFailure::Fetch(
                "the input could not be read to the end (see the quarantine entry before this one)"
                    .into(),
            )),
            (Ok(_), false) => Ok(()),
            (Err(e), false) => Err(ReadFailure::Content(e.to_string())),
        }
    }

    fn bad(&mut self, cx: &mut InputCtx, bad: BadInput) {
        cx.tally.records_in += bad.records;
        cx.tally.quarantined += bad.records;
        cx.tally.quarantine_rows += 1;
        if cx.samples.len() < 20 {
            cx.samples.push(QuarantineSample {
                uri: cx.lineage.source_uri.clone(),
                bad: bad.clone(),
            });
        }
        self.quarantine.append(bad, &cx.lineage);
        self.buffered += 1;
    }

    fn on_event(&mut self, cx: &mut InputCtx, ev: Event<'_, '_>) {
        let ev = match &cx.line_offsets {
            None => ev,
            Some(map) => {
                let at = |line: u64| {
                    let i = map.partition_point(|(l, _)| *l <= line);
                    i.checked_sub(1)
                        .map(|i| map[i].1.max(0) as u64)
                        .unwrap_or(0)
                };
                match ev {
                    Event::Bad(mut b) => {
                        b.position.offset = at(b.position.line);
                        Event::Bad(b)
                    }
                    Event::Record(r, mut pos) => {
                        pos.offset = at(pos.line);
                        Event::Record(r, pos)
                    }
                    Event::Metric(m, mut pos) => {
                        pos.offset = at(pos.line);
                        Event::Metric(m, pos)
                    }
                    e @ Event::Ignored(_) => e,
                }
            }
        };
        match ev {
            Event::Bad(b) => self.bad(cx, b),
            Event::Record(rec, pos) if rec.is_coverage() => {
                cx.tally.records_in += 1;
                cx.tally.coverage += 1;
                let date = date_of(rec.start.unwrap_or(0));
                self.coverage
                    .entry(date)
                    .or_default()
                    .append(rec, pos, self.ix, &cx.lineage);
                self.buffered += 1;
            }
            Event::Record(rec, pos) => self.record(cx, rec, pos),
            Event::Metric(m, pos) => self.metric(cx, m, pos),
            Event::Ignored(_) => {
                cx.tally.records_in += 1;
                cx.tally.filtered += 1;
            }
        }
        // A large input is written in parts; the segment stays pending until committed.
        if self.buffered >= self.flush_rows && cx.error.is_none() {
            if let Err(e) = self.flush() {
                cx.error = Some(e);
            }
        }
    }

    /// A datapoint of another namespace (a stream carrying EC2 metrics too) is read and
    /// filtered; MSK's are kept whole.
    fn metric(&mut self, cx: &mut InputCtx, m: &MetricPoint, pos: Position) {
        cx.tally.records_in += 1;
        if m.namespace != "AWS/Kafka" {
            cx.tally.filtered += 1;
            return;
        }
        cx.tally.metrics += 1;
        self.metrics
            .entry(date_of(m.time_ms.div_euclid(1000)))
            .or_default()
            .append(m, pos, self.ix, &cx.lineage);
        self.buffered += 1;
    }

    fn record(&mut self, cx: &mut InputCtx, rec: &FlowRecord<'_>, pos: Position) {
        let (Some(bytes), Some(start), Some(end)) = (rec.bytes, rec.start, rec.end) else {
            self.bad(
                cx,
                BadInput {
                    position: pos,
                    reason:
                        "record has no value (`-`) for bytes, start or end, so it cannot be metered"
                            .into(),
                    raw: crate::decode::cut_raw(format!("{rec:?}").as_bytes()),
                    records: 1,
                },
            );
            return;
        };
        let t = &mut cx.tally;
        t.records_in += 1;
        t.bytes_in += bytes;
        match attribute(rec, cx.account.as_deref(), self.ix) {
            Outcome::Filtered => {
                t.filtered += 1;
                t.bytes_filtered += bytes;
            }
            Outcome::Relevant(a) => {
                match a.reason {
                    None => t.attributed += 1,
                    Some(r) => {
                        t.unattributed += 1;
                        let e = t.by_reason.entry(r.as_str().to_string()).or_default();
                        e.0 += 1;
                        e.1 += bytes;
                    }
                }
                let (ix, lineage, flows) = (self.ix, &cx.lineage, &mut self.flows);
                let mut rows = 0usize;
                split_hours(start, end, bytes, rec.packets.unwrap_or(0), |share| {
                    flows
                        .entry(share.hour)
                        .or_default()
                        .append(rec, &a, &share, pos, ix, lineage);
                    if a.reason.is_none() {
                        t.bytes_attributed += share.bytes;
                    } else {
                        t.bytes_unattributed += share.bytes;
                    }
                    rows += 1;
                });
                t.flow_rows += rows as u64;
                self.buffered += rows;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::DEFAULT_FORMAT;
    use crate::inventory::Inventory;
    use crate::source::file::FileSource;
    use crate::source::Source;
    use crate::warehouse::LocalSink;
    use arrow::array::AsArray;
    use arrow::datatypes::UInt64Type;
    use proptest::prelude::*;
    use std::io::Write;
    use std::path::Path;

    fn ix() -> Index {
        Inventory::from_toml(crate::inventory::tests::SAMPLE, "t").unwrap()
    }

    fn jobs(dir: &Path) -> Vec<Job> {
        FileSource::new("t", dir)
            .list()
            .unwrap()
            .into_iter()
            .map(|input| Job {
                input,
                fetch: None,
                line_offsets: None,
                format: Format::parse(DEFAULT_FORMAT).unwrap(),
                account: Some("111111111111".into()),
                content: Content::Auto,
            })
            .collect()
    }

    fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    out.extend(files_under(&e.path()));
                } else {
                    out.push(e.path());
                }
            }
        }
        out
    }

    /// Sums a u64 column over every Parquet file of a table.
    fn table_sum(wh: &Path, table: &str, col: &str) -> (u64, u64) {
        let sink = LocalSink::open(wh).unwrap();
        let (mut rows, mut sum) = (0, 0);
        for f in files_under(&wh.join(table)) {
            let rel = f.strip_prefix(wh).unwrap().to_string_lossy().to_string();
            for b in sink.get(&rel).unwrap().unwrap() {
                rows += b.num_rows() as u64;
                sum += b
                    .column_by_name(col)
                    .unwrap()
                    .as_primitive::<UInt64Type>()
                    .iter()
                    // A null slot's value is unspecified once read back from Parquet.
                    .flatten()
                    .sum::<u64>();
            }
        }
        (rows, sum)
    }

    const HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
    // 2026-10-01T09:50:00Z: records of up to 1.5 h cross one or two hour boundaries.
    const T0: i64 = 1_791_971_400 - 86_400 * 13 + 3000;

    fn line_strategy() -> impl Strategy<Value = String> {
        let t = T0..T0 + 7200;
        prop_oneof![
            // endpoint-side, both directions
            (t.clone(), 0i64..5400, 0u64..2_000_000_000_000, 14001u16..14100).prop_map(|(s, l, b, p)| format!("2 unknown eni-1a 10.0.9.9 10.0.1.10 40000 {p} 6 {} {b} {s} {} ACCEPT OK", b / 1000, s + l)),
            (t.clone(), 0i64..600, any::<u32>()).prop_map(|(s, l, b)| format!("2 unknown eni-1b 10.0.2.10 10.0.9.9 14002 40000 6 9 {b} {s} {} ACCEPT OK", s + l)),
            // client-side, matched by IP within the context account
            (t.clone(), 0i64..600, any::<u32>()).prop_map(|(s, l, b)| format!("2 111111111111 eni-c1 10.0.9.9 10.0.1.10 40000 14001 6 9 {b} {s} {} ACCEPT OK", s + l)),
            // rejected, wrong port, unknown endpoint
            (t.clone(), any::<u16>()).prop_map(|(s, b)| format!("2 111111111111 eni-c1 10.0.9.9 10.0.1.10 40000 14001 6 1 {b} {s} {} REJECT OK", s + 5)),
            (t.clone(), any::<u16>()).prop_map(|(s, b)| format!("2 unknown eni-1a 10.0.9.9 10.0.1.10 40000 9098 6 1 {b} {s} {} ACCEPT OK", s + 5)),
            (t.clone(), any::<u16>()).prop_map(|(s, b)| format!("2 111111111111 eni-c1 10.0.9.9 10.7.7.7 40000 14005 6 1 {b} {s} {} ACCEPT OK", s + 5)),
            // noise
            (t.clone(), any::<u32>()).prop_map(|(s, b)| format!("2 111111111111 eni-c1 10.0.9.9 10.9.9.9 40000 443 6 1 {b} {s} {} ACCEPT OK", s + 5)),
            // coverage
            t.clone().prop_map(|s| format!("2 unknown eni-1a - - - - - - - {s} {} - SKIPDATA", s + 600)),
            // traffic without bytes, bad numbers, garbage
            t.clone().prop_map(|s| format!("2 unknown eni-1a 10.0.9.9 10.0.1.10 40000 14001 6 - - {s} {} ACCEPT OK", s + 5)),
            Just("2 unknown eni-1a 10.0.9.9 10.0.1.10 40000 14001 6 1 18446744073709551616 1 2 ACCEPT OK".to_string()),
            "[ -~]{1,60}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// For any input: in = attributed + unattributed + filtered + coverage + quarantined,
        /// and the bytes written to `flows` are exactly the bytes counted as kept.
        #[test]
        fn run_equation_holds_for_any_input(
            files in proptest::collection::vec((proptest::collection::vec(line_strategy(), 0..40), any::<bool>()), 1..4),
            flush_rows in 1usize..50,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let src = dir.path().join("in");
            std::fs::create_dir_all(&src).unwrap();
            let mut lines_total = 0u64;
            for (i, (lines, gz)) in files.iter().enumerate() {
                let text = format!("{HEADER}\n{}\n", lines.join("\n"));
                lines_total += lines.iter().filter(|l| !l.trim().is_empty()).count() as u64;
                let p = src.join(format!("f{i}.log"));
                if *gz {
                    let mut e = flate2::write::GzEncoder::new(std::fs::File::create(&p).unwrap(), flate2::Compression::fast());
                    e.write_all(text.as_bytes()).unwrap();
                    e.finish().unwrap();
                } else {
                    std::fs::write(&p, text).unwrap();
                }
            }
            let wh = dir.path().join("wh");
            let sink = LocalSink::open(&wh).unwrap();
            let opts = Options { flush_rows, ..Default::default() };
            let r = ingest(&jobs(&src), &ix(), &sink, &opts, &Progress::default()).unwrap();
            let t = &r.tally;
            prop_assert!(t.balanced(), "{t}");
            prop_assert_eq!(t.records_in, lines_total, "{}", t);
            let (rows, bytes) = table_sum(&wh, "flows", "bytes");
            prop_assert_eq!(rows, t.flow_rows);
            prop_assert_eq!(bytes, t.bytes_attributed + t.bytes_unattributed);
            let (_, quarantined) = table_sum(&wh, "quarantine", "records");
            prop_assert_eq!(quarantined, t.quarantined);
        }
    }

    #[test]
    fn parquet_input_goes_through_the_same_path() {
        use arrow::array::{Int64Array, RecordBatch, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in");
        std::fs::create_dir_all(&src).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("interface_id", DataType::Utf8, true),
            Field::new("srcaddr", DataType::Utf8, true),
            Field::new("dstaddr", DataType::Utf8, true),
            Field::new("srcport", DataType::Int64, true),
            Field::new("dstport", DataType::Int64, true),
            Field::new("bytes", DataType::Int64, true),
            Field::new("start", DataType::Int64, true),
            Field::new("end", DataType::Int64, true),
            Field::new("action", DataType::Utf8, true),
            Field::new("log_status", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["eni-1a", "eni-zz"])),
                Arc::new(StringArray::from(vec!["10.0.9.9", "10.5.5.5"])),
                Arc::new(StringArray::from(vec!["10.0.1.10", "10.6.6.6"])),
                Arc::new(Int64Array::from(vec![40000, 40000])),
                Arc::new(Int64Array::from(vec![14003, 443])),
                Arc::new(Int64Array::from(vec![7200, 99])),
                Arc::new(Int64Array::from(vec![T0, T0])),
                Arc::new(Int64Array::from(vec![T0 + 3599, T0 + 1])),
                Arc::new(StringArray::from(vec!["ACCEPT", "ACCEPT"])),
                Arc::new(StringArray::from(vec!["OK", "OK"])),
            ],
        )
        .unwrap();
        // Named like AWS's Parquet delivery; detected by content, not by the name.
        let f = std::fs::File::create(
            src.join("123_vpcflowlogs_us-east-1_fl-1_20261001T0950Z_ab.log.parquet"),
        )
        .unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let wh = dir.path().join("wh");
        let sink = LocalSink::open(&wh).unwrap();
        let r = ingest(
            &jobs(&src),
            &ix(),
            &sink,
            &Options::default(),
            &Progress::default(),
        )
        .unwrap();
        assert_eq!(
            (r.tally.attributed, r.tally.filtered, r.tally.quarantined),
            (1, 1, 0),
            "{}",
            r.tally
        );
        // 3600 seconds starting at :50 → 600 s in one hour, 3000 in the next.
        assert_eq!(table_sum(&wh, "flows", "bytes"), (2, 7200));
    }

    #[test]
    fn changed_inventory_reattributes_unchanged_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("a.log"), format!("{HEADER}\n2 unknown eni-1a 10.0.9.9 10.0.1.10 40000 14001 6 1 500 {T0} {} ACCEPT OK\n", T0 + 5)).unwrap();
        let wh = dir.path().join("wh");
        let sink = LocalSink::open(&wh).unwrap();
        let run = |ix: &Index| {
            ingest(
                &jobs(&src),
                ix,
                &sink,
                &Options::default(),
                &Progress::default(),
            )
            .unwrap()
            .tally
        };
        assert_eq!(run(&ix()).inputs_read, 1);
        assert_eq!(run(&ix()).inputs_skipped, 1);
        // eni-1a removed from the inventory: the same file must be re-read, now unattributed.
        let text = crate::inventory::tests::SAMPLE.replace(
            "{ id = \"eni-1a\", az_id = \"use1-az1\", ips = [\"10.0.1.10\"] },",
            "",
        );
        let ix2 = Inventory::from_toml(&text, "t2").unwrap();
        let t = run(&ix2);
        assert_eq!(
            (t.inputs_read, t.attributed, t.unattributed),
            (1, 0, 1),
            "{t}"
        );
        assert_eq!(
            table_sum(&wh, "flows", "bytes"),
            (1, 500),
            "replaced, not added"
        );
    }

    fn two_inputs(src: &Path) {
        std::fs::create_dir_all(src).unwrap();
        for (name, b) in [("a.log", 500), ("b.log", 700)] {
            std::fs::write(src.join(name), format!("{HEADER}\n2 unknown eni-1a 10.0.9.9 10.0.1.10 40000 14001 6 1 {b} {T0} {} ACCEPT OK\n", T0 + 5)).unwrap();
        }
    }

    #[test]
    fn a_metric_stream_among_flow_logs_goes_to_broker_metrics_and_old_quarantines_are_reread() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in");
        two_inputs(&src);
        let metric = r#"{"metric_stream_name":"msk","account_id":"111111111111","region":"us-east-1","namespace":"AWS/Kafka","metric_name":"BytesInPerSec","dimensions":{"Cluster Name":"c1","Broker ID":"1"},"timestamp":1611929698000,"value":{"count":1.0,"sum":20.0,"max":20.0,"min":20.0},"unit":"Bytes/Second"}"#;
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(src.join("metrics.json.gz")).unwrap(),
            flate2::Compression::default(),
        );
        for _ in 0..3 {
            writeln!(gz, "{metric}").unwrap();
        }
        gz.finish().unwrap();
        let wh = dir.path().join("wh");
        let sink = LocalSink::open(&wh).unwrap();
        let run = || {
            ingest(
                &jobs(&src),
                &ix(),
                &sink,
                &Options::default(),
                &Progress::default(),
            )
            .unwrap()
        };
        let r = run();
        assert!(r.tally.balanced());
        assert_eq!(r.tally.inputs_read, 3);
        assert_eq!((r.tally.metrics, r.tally.quarantine_rows), (3, 0));
        // 20 bytes/s over a minute, three times.
        assert_eq!(table_sum(&wh, "broker_metrics", "bytes"), (3, 3 * 1200));
        assert_eq!(
            table_sum(&wh, "flows", "bytes").1,
            1200,
            "the flow logs beside it are ingested"
        );
        // What a generation-1 run left: the JSON input quarantined whole. It is read again
        // (once), the flow logs' rows are not doubled, and the run after reads nothing.
        let mut segs = read_segments(&sink).unwrap();
        let seg = segs
            .iter_mut()
            .find(|m| {
                m.inputs
                    .iter()
                    .any(|r| r.source_uri.ends_with("metrics.json.gz"))
            })
            .unwrap();
        for r in seg.inputs.iter_mut() {
            if r.source_uri.ends_with("metrics.json.gz") {
                (r.decoders, r.quarantined, r.flow_rows) = (1, r.records, 0);
            }
        }
        write_segment(&sink, seg).unwrap();
        assert!(run().tally.inputs_read >= 1);
        assert_eq!(table_sum(&wh, "broker_metrics", "bytes"), (3, 3 * 1200));
        assert_eq!(table_sum(&wh, "flows", "bytes").1, 1200);
        assert_eq!(run().tally.inputs_read, 0);
        // An input that was partly good is not re-read for a new generation.
        let mut segs = read_segments(&sink).unwrap();
        for m in segs.iter_mut() {
            for r in m.inputs.iter_mut() {
                r.decoders = 1;
            }
            write_segment(&sink, m).unwrap();
        }
        assert_eq!(run().tally.inputs_read, 0);
    }

    #[test]
    fn opentelemetry_and_prometheus_inputs_are_told_by_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in");
        two_inputs(&src);
        // Names say nothing: the bytes decide.
        std::fs::write(
            src.join("stream-1"),
            include_bytes!("decode/testdata/otel_stream.bin"),
        )
        .unwrap();
        std::fs::write(
            src.join("scrape-1"),
            "# TYPE kafka_server_BrokerTopicMetrics_Count untyped\nkafka_server_BrokerTopicMetrics_Count{name=\"BytesInPerSec\",cluster=\"c1\",broker_id=\"1\",} 5 1790812800000\nkafka_server_BrokerTopicMetrics_Count{name=\"MessagesInPerSec\",} 5 1790812800000\n",
        )
        .unwrap();
        let wh = dir.path().join("wh");
        let sink = LocalSink::open(&wh).unwrap();
        let r = ingest(
            &jobs(&src),
            &ix(),
            &sink,
            &Options::default(),
            &Progress::default(),
        )
        .unwrap();
        assert!(r.tally.balanced());
        // Two MSK points from OpenTelemetry and one counter from Prometheus; the DynamoDB
        // point and the MessagesInPerSec sample are read and filtered.
        assert_eq!((r.tally.metrics, r.tally.quarantine_rows), (3, 0));
        assert_eq!(
            table_sum(&wh, "broker_metrics", "bytes"),
            (3, 90_000 + 180_000)
        );
        assert_eq!(table_sum(&wh, "flows", "bytes").1, 1200);
    }

    #[test]
    fn changing_one_input_rereads_its_whole_segment_and_counts_once() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in");
        two_inputs(&src);
        let wh = dir.path().join("wh");
        let sink = LocalSink::open(&wh).unwrap();
        let opts = Options {
            workers: 1,
            ..Default::default()
        };
        let run = || ingest(&jobs(&src), &ix(), &sink, &opts, &Progress::default()).unwrap();
        assert_eq!(run().tally.inputs_read, 2);
        assert_eq!(table_sum(&wh, "flows", "bytes"), (2, 1200));
        assert_eq!(
            files_under(&wh.join("flows")).len(),
            1,
            "one segment, one file"
        );
        std::fs::write(src.join("b.log"), format!("{HEADER}\n2 unknown eni-1a 10.0.9.9 10.0.1.10 40000 14001 6 1 70 {T0} {} ACCEPT OK\n", T0 + 5)).unwrap();
        let r = run();
        assert_eq!(
            (r.tally.inputs_read, r.tally.inputs_skipped, r.superseded),
            (2, 0, 1),
            "a.log shared b.log's segment"
        );
        assert_eq!(table_sum(&wh, "flows", "bytes").1, 570);
        let r = run();
        assert_eq!((r.tally.inputs_read, r.tally.inputs_skipped), (0, 2));
        assert_eq!(table_sum(&wh, "flows", "bytes").1, 570);
    }

    #[test]
    fn run_ids_name_their_shard() {
        assert_eq!(run_shard("20261127T070914Z-02af-s1of3"), Some((1, 3)));
        assert_eq!(
            run_shard(&format!("x-0001{}", shard_tag((0, 4)))),
            Some((0, 4))
        );
        assert_eq!(run_shard("20261127T070914Z-02af"), None);
        assert_eq!(run_shard("run"), None);
    }

    #[test]
    fn a_segment_left_pending_by_a_crash_is_rolled_back() {
        use crate::warehouse::tables::{write_segment, SegmentManifest, SegmentStatus};
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in");
        two_inputs(&src);
        let wh = dir.path().join("wh");
        let sink = LocalSink::open(&wh).unwrap();
        let run = || {
            ingest(
                &jobs(&src),
                &ix(),
                &sink,
                &Options {
                    workers: 1,
                    ..Default::default()
                }, // one segment: one file holds all rows
                &Progress::default(),
            )
            .unwrap()
        };
        run();
        let before = table_sum(&wh, "flows", "bytes");
        // A run that died after writing a data file but before committing: the file is visible.
        let f = files_under(&wh.join("flows")).remove(0);
        let ghost = f.with_file_name("crashed-w0-00000-000.parquet");
        std::fs::copy(&f, &ghost).unwrap();
        let rel = ghost
            .strip_prefix(&wh)
            .unwrap()
            .to_string_lossy()
            .to_string();
        write_segment(
            &sink,
            &SegmentManifest {
                segment_id: "crashed-w0-00000".into(),
                status: SegmentStatus::Pending,
                files: vec![rel],
                inputs: vec![],
                run_id: "crashed".into(),
            },
        )
        .unwrap();
        assert_eq!(
            table_sum(&wh, "flows", "bytes").1,
            before.1 * 2,
            "the crash left double rows"
        );
        let r = run();
        assert_eq!((r.rolled_back, r.tally.inputs_skipped), (1, 2));
        assert_eq!(table_sum(&wh, "flows", "bytes"), before);
        assert!(!ghost.exists());
    }

    #[test]
    fn replacing_a_segment_never_drops_inputs_this_run_does_not_list() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in");
        two_inputs(&src);
        let wh = dir.path().join("wh");
        let sink = LocalSink::open(&wh).unwrap();
        let opts = Options {
            workers: 1,
            ..Default::default()
        };
        ingest(&jobs(&src), &ix(), &sink, &opts, &Progress::default()).unwrap();
        // a.log changes, but this run lists only a.log (as `--source` would): b.log's rows
        // share the segment and cannot be re-read, so the run refuses instead of losing them.
        std::fs::write(src.join("a.log"), format!("{HEADER}\n")).unwrap();
        let only_a: Vec<Job> = jobs(&src)
            .into_iter()
            .filter(|j| j.input.key.ends_with("a.log"))
            .collect();
        let e = ingest(&only_a, &ix(), &sink, &opts, &Progress::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not list") && e.contains("b.log"), "{e}");
        assert_eq!(table_sum(&wh, "flows", "bytes").1, 1200, "nothing removed");
        // With every input listed it goes through.
        ingest(&jobs(&src), &ix(), &sink, &opts, &Progress::default()).unwrap();
        assert_eq!(table_sum(&wh, "flows", "bytes").1, 700);
    }

    #[test]
    fn a_renamed_source_does_not_count_twice_and_unreadable_inputs_keep_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in");
        two_inputs(&src);
        let wh = dir.path().join("wh");
        let sink = LocalSink::open(&wh).unwrap();
        let opts = Options {
            workers: 1,
            ..Default::default()
        };
        ingest(&jobs(&src), &ix(), &sink, &opts, &Progress::default()).unwrap();
        let renamed: Vec<Job> = FileSource::new("renamed", &src)
            .list()
            .unwrap()
            .into_iter()
            .map(|input| Job {
                input,
                fetch: None,
                line_offsets: None,
                format: Format::parse(DEFAULT_FORMAT).unwrap(),
                account: None,
                content: Content::Auto,
            })
            .collect();
        let r = ingest(&renamed, &ix(), &sink, &opts, &Progress::default()).unwrap();
        assert_eq!((r.tally.inputs_read, r.tally.inputs_skipped), (0, 2));
        assert_eq!(table_sum(&wh, "flows", "bytes").1, 1200);
        // b.log becomes unreadable (a dangling path): its earlier rows stay.
        let mut js = jobs(&src);
        for j in js.iter_mut() {
            if j.input.key.ends_with("b.log") {
                j.input.location = Location::File(src.join("gone.log"));
            }
        }
        let r = ingest(&js, &ix(), &sink, &opts, &Progress::default()).unwrap();
        assert_eq!(r.tally.quarantined, 0);
        assert_eq!(table_sum(&wh, "flows", "bytes").1, 1200);
    }
}
