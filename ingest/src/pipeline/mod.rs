//! Ingest: source → decode → attribute → warehouse, idempotent and crash-safe.
//!
//! Inputs are written in **segments**: a worker buffers the rows of consecutive inputs and
//! writes them together (one file per table partition per segment), because flow-log inputs
//! are small and per-file costs dominated when every input had its own files. The warehouse's
//! commit protocol (`linkmeter_warehouse::segment`) makes a segment count only once its inputs
//! are in the `inputs` checkpoint, which is committed after its rows. A run:
//!
//! 1. **recovers** ([`recover`]): removes the files of segments an earlier run did not finish;
//! 2. **plans** ([`plan`], a pure function of what is listed and what is committed): an input
//!    whose content and inventory match its checkpoint is skipped; every other input is read,
//!    and the segment that held its old rows is **superseded**: the rows of that segment's
//!    other inputs are carried into a new segment (never read again, even when their raw
//!    input is gone), then the old segment's checkpoint rows and files are removed, all before
//!    anything is written;
//! 3. **writes** ([`workers`]): each worker fills a segment ([`writer`]) input by input
//!    ([`input`]) and commits it when full.
//!
//! So a crash leaves at worst orphan rows that the next run removes before writing (never
//! counted twice after recovery) or inputs with no checkpoint (read again): reruns converge to
//! the same contents.

mod encoding;
mod feed;
mod identity;
mod input;
pub mod plan;
mod recover;
mod workers;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use linkmeter_warehouse::Warehouse;

use crate::decode::{BadInput, Content};
use crate::fields::Format;
use crate::inventory::Index;
use crate::limits::Limits;
use crate::source::kafka::LineOffsets;
use crate::source::{Fetch, InputRef};
use crate::summary::Tally;

pub use feed::Feed;
pub use identity::{input_id, shard_tag};

/// Errors that stop a run (bad input never does: it is quarantined).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The warehouse could not be written or read.
    #[error(transparent)]
    Warehouse(#[from] linkmeter_warehouse::Error),
}

/// One input with the settings of the source it came from.
#[derive(Debug, Clone)]
pub struct Job {
    /// The input.
    pub input: InputRef,
    /// Opens the input when it is not a local file.
    pub fetch: Option<Arc<dyn Fetch>>,
    /// For stream inputs: where each message starts, so lineage records the message's offset
    /// in `source_offset` instead of a byte offset.
    pub line_offsets: Option<Arc<LineOffsets>>,
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
    /// Buffered rows per worker before they are written out (bounds memory).
    pub flush_rows: usize,
    /// Most inputs in one segment.
    pub segment_inputs: usize,
    /// This run is shard `i` of `n` (its run id ends in [`shard_tag`]); it recovers only
    /// its own shard's unfinished segments, since other shards may be writing theirs now.
    pub shard: Option<(u32, u32)>,
    /// Which call of [`ingest`] this is within the run (a stream is written in rounds): part
    /// of segment names, so rounds never collide.
    pub round: u32,
    /// Raised (SIGTERM) to stop: workers take no new input, commit what they hold, and the
    /// run returns with [`Report::interrupted`] set. The rest is read by the next run. Raised
    /// while an input is read, it abandons that worker's open segment (read again next run).
    pub stop: Option<Arc<AtomicBool>>,
    /// What one input may cost.
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            run_id: crate::run::run_id(None),
            force: false,
            workers: 2,
            flush_rows: 100_000,
            segment_inputs: 4096,
            shard: None,
            round: 0,
            stop: None,
            limits: Limits::default(),
        }
    }
}

impl Options {
    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
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
    /// Input bytes listed (set once the sources are listed).
    pub bytes_total: AtomicU64,
    /// Inputs listed.
    pub inputs_total: AtomicU64,
}

/// A quarantine entry with the input it came from, for the run summary.
#[derive(Debug, Clone)]
pub struct QuarantineSample {
    /// The input's URI.
    pub uri: String,
    /// The entry.
    pub bad: BadInput,
}

/// How many quarantine entries a run keeps to show the user.
pub const SAMPLES: usize = 20;

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// The conservation balance.
    pub tally: Tally,
    /// The first quarantine entries (up to [`SAMPLES`]), to show the user.
    pub samples: Vec<QuarantineSample>,
    /// Segments rolled back because an earlier run died while writing them.
    pub rolled_back: u64,
    /// Committed segments replaced because one of their inputs changed.
    pub superseded: u64,
    /// Inputs of those segments whose rows were carried into new segments, not read again.
    pub carried: u64,
    /// Stopped before every input was read (see [`Options::stop`]).
    pub interrupted: bool,
}

impl Report {
    /// Adds another call's report (a later round of a stream) to this one.
    pub fn merge(&mut self, r: Report) {
        self.tally.merge(&r.tally);
        self.rolled_back += r.rolled_back;
        self.superseded += r.superseded;
        self.carried += r.carried;
        self.interrupted |= r.interrupted;
        let room = SAMPLES.saturating_sub(self.samples.len());
        self.samples.extend(r.samples.into_iter().take(room));
    }
}

/// Ingests every job into the warehouse. Blocking: call it from a thread outside the runtime
/// (`rt` runs the warehouse's I/O).
pub fn ingest(
    jobs: &[Job],
    ix: &Index,
    wh: &Warehouse,
    rt: &tokio::runtime::Handle,
    opts: &Options,
    progress: &Progress,
) -> Result<Report, IngestError> {
    let mut report = Report::default();
    let (committed, rolled_back) = recover::recover(wh, rt, opts.shard)?;
    report.rolled_back = rolled_back;
    let Some(listed) = identity::identify(jobs, opts) else {
        report.interrupted = true;
        return Ok(report);
    };
    let plan = plan::plan(
        &listed,
        &committed,
        &plan::PlanOptions {
            force: opts.force,
            decoders: DECODERS,
        },
    );
    for (n, (from, keep)) in plan.carry.iter().enumerate() {
        let to = match opts.round {
            0 => format!("{}-c{n:05}", opts.run_id),
            r => format!("{}-r{r}-c{n:05}", opts.run_id),
        };
        rt.block_on(linkmeter_warehouse::segment::carry(wh, from, keep, &to))?;
        report.carried += keep.len() as u64;
    }
    rt.block_on(linkmeter_warehouse::segment::supersede(wh, &plan.supersede))?;
    report.superseded = (plan.supersede.len() + plan.carry.len()) as u64;
    report.tally.inputs_skipped = (jobs.len() - plan.todo.len()) as u64;
    let mut read = vec![false; jobs.len()];
    for &i in &plan.todo {
        read[i] = true;
    }
    for (j, _) in jobs.iter().zip(&read).filter(|(_, r)| !**r) {
        progress
            .bytes_read
            .fetch_add(j.input.size, Ordering::Relaxed);
    }
    progress
        .inputs_done
        .fetch_add(report.tally.inputs_skipped, Ordering::Relaxed);
    let queue = workers::Queue::Planned {
        jobs,
        listed: &listed,
        order: &plan.todo,
    };
    let done = work(queue, ix, wh, rt, opts, progress)?;
    report.interrupted = done.interrupted;
    report.tally.merge(&done.tally);
    report.samples = done.samples;
    Ok(report)
}

/// Ingests inputs as a stream's reader hands them over on `feed`, until it is closed: one set
/// of workers for the whole stream, whose segments span many inputs as they would for files.
/// The feed must carry only inputs the warehouse does not hold (a Kafka reader skips the
/// offset ranges it does), so nothing is planned, superseded or carried. Blocking, like
/// [`ingest`]; the feed is closed when this returns.
pub fn ingest_feed(
    feed: &Feed,
    ix: &Index,
    wh: &Warehouse,
    rt: &tokio::runtime::Handle,
    opts: &Options,
    progress: &Progress,
) -> Result<Report, IngestError> {
    let recovered = recover::recover(wh, rt, opts.shard);
    let rolled_back = match recovered {
        Ok((_, n)) => n,
        Err(e) => {
            feed.close();
            return Err(e);
        }
    };
    let done = work(workers::Queue::Feed(feed), ix, wh, rt, opts, progress)?;
    Ok(Report {
        tally: done.tally,
        samples: done.samples,
        rolled_back,
        interrupted: done.interrupted,
        ..Report::default()
    })
}

/// Runs the workers over `queue`.
fn work(
    queue: workers::Queue<'_>,
    ix: &Index,
    wh: &Warehouse,
    rt: &tokio::runtime::Handle,
    opts: &Options,
    progress: &Progress,
) -> Result<workers::Done, linkmeter_warehouse::Error> {
    // Inputs record the attribution hash they were read under (for audits): an inventory
    // change re-attributes stored rows (`crate::reattribute`), it never reads inputs again.
    let inventory_hash = format!("{:016x}", ix.attribution);
    let w = workers::Work {
        queue,
        ix,
        wh,
        rt,
        opts,
        inventory_hash: &inventory_hash,
    };
    workers::run(&w, progress)
}

#[cfg(test)]
mod tests;
