//! A whole ingest run: the inventory tables, every file and S3 source in one plan, then every
//! Kafka source to its end (or followed until stopped, [`streams`]), and the run's row in
//! `runs`.

mod streams;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use linkmeter_warehouse::runs::{self, RunRow};
use linkmeter_warehouse::Warehouse;

use crate::bill::decode::BillFormat;
use crate::bill::load::BillJob;
use crate::decode::Content;
use crate::fields::Format;
use crate::inventory::Index;
use crate::limits::Limits;
use crate::pipeline::{self, IngestError, Job, Options, Progress, Report};
use crate::source::file::FileSource;
use crate::source::kafka::KafkaSettings;
use crate::source::layout::{self, Window};
use crate::source::s3::S3Source;
use crate::source::s3_read::{S3Settings, S3Store};
use crate::source::{Batch, Source, SourceError};

/// Errors that stop a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The run's settings cannot work (exit code 2).
    #[error("{0}")]
    Config(String),
    /// A source could not be listed or read; what was written so far is kept.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Writing stopped.
    #[error("ingest stopped: {0}")]
    Ingest(#[from] IngestError),
    /// The warehouse failed.
    #[error(transparent)]
    Warehouse(#[from] linkmeter_warehouse::Error),
}

/// Where a source's inputs are.
#[derive(Debug, Clone)]
pub enum Location {
    /// A local file or directory.
    Files(PathBuf),
    /// An S3 bucket and key prefix.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
    /// A Kafka topic.
    Kafka(Box<KafkaSettings>),
}

/// One configured source.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// Its name (part of every input's identity).
    pub name: String,
    /// Where its inputs are.
    pub at: Location,
    /// Format of text without a header line.
    pub format: Format,
    /// Account to assume when neither a record nor its path names one.
    pub account: Option<String>,
    /// What its inputs hold.
    pub content: Content,
}

/// How a run goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `ingest` or `run`, for the `runs` table.
    pub command: &'static str,
    /// Re-read unchanged inputs.
    pub force: bool,
    /// Worker threads.
    pub workers: usize,
    /// Rows a worker buffers before writing them.
    pub flush_rows: usize,
    /// Only inputs whose key time is in `[since, until)`.
    pub range: Option<Window>,
    /// Shard `i` of `n`.
    pub shard: Option<(u32, u32)>,
    /// Follow Kafka sources, writing what arrived at this interval, until `stop`.
    pub follow: Option<Duration>,
    /// Raised by SIGTERM/SIGINT: finish the input at hand, commit, and return.
    pub stop: Option<Arc<AtomicBool>>,
    /// How S3 sources are reached.
    pub s3: S3Settings,
    /// What one input may cost.
    pub limits: Limits,
    /// Read symbolic links whose target is a file inside their source's root.
    pub follow_symlinks: bool,
}

/// What a run did.
#[derive(Debug)]
pub struct Outcome {
    /// The balance and what was quarantined.
    pub report: Report,
    /// The run's id.
    pub run_id: String,
    /// Wall time.
    pub elapsed: Duration,
    /// The S3 client, when a source was on S3 (its counters go in the summary).
    pub s3: Option<Arc<S3Store>>,
    /// What re-attribution to the current inventory did.
    pub reattributed: crate::reattribute::Summary,
    /// Summaries written or dropped to match `flows`/`broker_metrics` (whole runs).
    pub summaries: linkmeter_warehouse::summaries::Repaired,
    /// What loading the bill exports did (`None` without bill sources).
    pub bills: Option<crate::bill::load::BillSummary>,
}

impl Outcome {
    /// The run summary: the balance, what S3 did, what was replaced, and where input was
    /// quarantined.
    pub fn summary(&self, warehouse: &str) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let t = &self.report.tally;
        let _ = writeln!(
            out,
            "run {} finished in {:.1}s; warehouse {warehouse}",
            self.run_id,
            self.elapsed.as_secs_f64()
        );
        let _ = write!(out, "{t}");
        if let Some(s3) = &self.s3 {
            let st = s3.stats();
            let _ = writeln!(
                out,
                "S3: {} requests, {} retried ({} cut-off bodies resumed), {} objects unreadable after retries, {:.1} MiB downloaded",
                st.requests.load(Ordering::Relaxed),
                st.retries.load(Ordering::Relaxed),
                st.resumed.load(Ordering::Relaxed),
                st.failed_objects.load(Ordering::Relaxed),
                st.bytes.load(Ordering::Relaxed) as f64 / 1048576.0
            );
        }
        let _ = write!(out, "{}", self.reattributed);
        if let Some(b) = &self.bills {
            out.push_str(&b.text());
        }
        let r = self.summaries;
        if r.summed + r.removed > 0 {
            let _ = writeln!(
                out,
                "hourly summaries: {} written from their flows/broker_metrics files (a warehouse from before them, or a run cut short), {} that no longer matched their files dropped",
                r.summed, r.removed
            );
        }
        if self.report.superseded + self.report.rolled_back > 0 {
            let _ = writeln!(
                out,
                "segments {} replaced because an input changed (the rows of {} unchanged or unlisted inputs carried over, not read again), {} rolled back after an interrupted run",
                self.report.superseded, self.report.carried, self.report.rolled_back
            );
        }
        if t.quarantined > 0 || t.quarantine_rows > 0 {
            let _ = writeln!(
                out,
                "quarantined input ({} entries; all in table `quarantine`):",
                t.quarantine_rows
            );
            for s in self.report.samples.iter().take(10) {
                let _ = writeln!(
                    out,
                    "  {}:{} (offset {}): {}",
                    s.uri, s.bad.position.line, s.bad.position.offset, s.bad.reason
                );
            }
            if t.quarantine_rows > 10 {
                let _ = writeln!(out, "  … see: linkmeter sql --warehouse {warehouse} \"SELECT source_uri, line, reason FROM quarantine\"");
            }
        }
        out
    }
}

/// A run id: the UTC time, 32 random bits (two runs in one second as PID 1 in two
/// containers still differ) and the shard tag.
pub fn run_id(shard: Option<(u32, u32)>) -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = chrono::Utc::now();
    let salt = xxhash_rust::xxh3::xxh3_64(
        &[
            now.timestamp_nanos_opt().unwrap_or_default().to_le_bytes(),
            u64::from(std::process::id()).to_le_bytes(),
            SEQ.fetch_add(1, Ordering::Relaxed).to_le_bytes(),
        ]
        .concat(),
    );
    format!(
        "{}-{:08x}{}",
        now.format("%Y%m%dT%H%M%SZ"),
        salt & 0xffff_ffff,
        shard.map(pipeline::shard_tag).unwrap_or_default()
    )
}

/// Ingests every source. Blocking: call it from a thread outside `rt`.
pub fn run(
    specs: &[SourceSpec],
    ix: &Index,
    wh: &Warehouse,
    rt: &tokio::runtime::Handle,
    o: &RunOptions,
    progress: &Progress,
) -> Result<Outcome, RunError> {
    let started = chrono::Utc::now();
    let t0 = Instant::now();
    if specs.is_empty() {
        return Err(RunError::Config(
            "the config names no [[sources]]; add one with a name and a uri".into(),
        ));
    }
    let streams = specs
        .iter()
        .filter(|s| matches!(s.at, Location::Kafka(_)))
        .count();
    if o.follow.is_some() && streams == 0 {
        return Err(RunError::Config(
            "--follow keeps reading kafka:// sources, and this run has none; run without --follow"
                .into(),
        ));
    }
    let run_id = run_id(o.shard);
    rt.block_on(crate::inventory_tables::write_inventory(wh, ix))?;
    // Before any row is written under this inventory, so that rows are all under one.
    let tag = run_id.split('-').nth(1).unwrap_or("x");
    let reattributed =
        crate::reattribute::reattribute(wh, ix, rt, o.shard.is_some(), tag, o.workers)?;
    // A whole run holds the warehouse: it brings the summaries level with their tables, the
    // files re-attribution just replaced among them (a crash in between leaves names that do
    // not match, which the next whole run or close finds). A shard writes its own segments'
    // summaries with them, but leaves older gaps to the next whole run (or the month close).
    let summaries = match o.shard {
        None => rt.block_on(linkmeter_warehouse::summaries::repair(wh))?,
        Some(_) => Default::default(),
    };
    let opts = Options {
        run_id: run_id.clone(),
        force: o.force,
        workers: o.workers.max(1),
        flush_rows: o.flush_rows,
        shard: o.shard,
        stop: o.stop.clone(),
        limits: o.limits,
        ..Options::default()
    };
    let (jobs, bill_jobs, s3) = list_batch_sources(specs, rt, o)?;
    progress
        .inputs_total
        .fetch_add(jobs.len() as u64, Ordering::Relaxed);
    progress
        .bytes_total
        .fetch_add(jobs.iter().map(|j| j.input.size).sum(), Ordering::Relaxed);
    let mut report = pipeline::ingest(&jobs, ix, wh, rt, &opts, progress)?;
    let mut kopts = opts.clone();
    if !report.interrupted {
        let w = streams::Writing {
            ix,
            wh,
            rt,
            progress,
        };
        streams::read_streams(specs, &w, o, &mut kopts, &mut report)?;
    }
    // A bill restates whole periods, so it is loaded by one task: never by shards but the first.
    let bills = match (specs.iter().any(|s| s.content.is_bill()), o.shard) {
        (true, None | Some((0, _))) if !report.interrupted => Some(crate::bill::load::load(
            &bill_jobs, wh, rt, &o.limits, &run_id,
        )?),
        _ => None,
    };
    let row = run_row(&run_id, o.command, started, &report);
    rt.block_on(runs::append(wh, &row))?;
    Ok(Outcome {
        report,
        run_id,
        elapsed: t0.elapsed(),
        s3,
        reattributed,
        summaries,
        bills,
    })
}

/// Lists every file and S3 source (in the key-time range and this shard) as jobs, and the
/// bill exports (every one: a bill period is loaded whole).
#[allow(clippy::type_complexity)]
fn list_batch_sources(
    specs: &[SourceSpec],
    rt: &tokio::runtime::Handle,
    o: &RunOptions,
) -> Result<(Vec<Job>, Vec<BillJob>, Option<Arc<S3Store>>), RunError> {
    let mut s3: Option<Arc<S3Store>> = None;
    let mut jobs = Vec::new();
    let mut bills = Vec::new();
    for spec in specs {
        let mut src: Box<dyn Source> = match &spec.at {
            Location::Files(path) => Box::new(
                FileSource::new(&spec.name, path)
                    .follow_links_inside(o.follow_symlinks)
                    .with_stop(o.stop.clone()),
            ),
            Location::S3 { bucket, prefix } => {
                let store = match &s3 {
                    Some(st) => st.clone(),
                    None => {
                        let st = S3Store::connect(o.s3.clone(), rt.clone())
                            .map_err(|e| RunError::Config(e.to_string()))?;
                        s3.insert(st).clone()
                    }
                };
                // Bill keys carry no flow-log times to window by.
                let range = if spec.content.is_bill() {
                    None
                } else {
                    o.range
                };
                Box::new(S3Source::new(&spec.name, bucket, prefix, store, range))
            }
            Location::Kafka(_) => continue,
        };
        let Some(batch) = src.next_batch()? else {
            continue;
        };
        if spec.content.is_bill() {
            let declared = match spec.content {
                Content::Focus => BillFormat::Focus,
                _ => BillFormat::Cur2,
            };
            let fetch = batch.fetch.clone();
            bills.extend(batch.inputs.into_iter().map(|(input, _)| BillJob {
                input,
                fetch: fetch.clone(),
                declared,
            }));
            continue;
        }
        let listed = batch.inputs.len();
        let mut mine = jobs_of(spec, batch);
        mine.retain(|j| o.range.is_none_or(|w| layout::key_in(&j.input.key, w)));
        if let Some((i, n)) = o.shard {
            mine.retain(|j| layout::shard_of(&j.input.key, n) == i);
        }
        tracing::info!(message = "source listed", source = %spec.name, inputs = listed, taken = mine.len());
        jobs.extend(mine);
    }
    Ok((jobs, bills, s3))
}

/// The jobs of a batch, with its source's settings.
fn jobs_of(spec: &SourceSpec, batch: Batch) -> Vec<Job> {
    let fetch = batch.fetch;
    batch
        .inputs
        .into_iter()
        .map(|(input, line_offsets)| Job {
            input,
            fetch: fetch.clone(),
            line_offsets,
            format: spec.format.clone(),
            account: spec.account.clone(),
            content: spec.content,
        })
        .collect()
}

/// The run's row of the `runs` table.
fn run_row(
    run_id: &str,
    command: &str,
    started: chrono::DateTime<chrono::Utc>,
    r: &Report,
) -> RunRow {
    let t = &r.tally;
    let counters: [u128; 13] = [
        t.inputs_read.into(),
        t.inputs_skipped.into(),
        t.records_in.into(),
        t.attributed.into(),
        t.unattributed.into(),
        t.filtered.into(),
        t.coverage.into(),
        t.quarantined.into(),
        t.metrics.into(),
        t.bytes_in,
        t.bytes_attributed,
        t.bytes_unattributed,
        t.bytes_filtered,
    ];
    RunRow {
        run_id: run_id.to_string(),
        command: command.to_string(),
        started_micros: started.timestamp_micros(),
        finished_micros: chrono::Utc::now().timestamp_micros(),
        counters: counters.to_vec(),
        balanced: t.balanced(),
        unattributed_by_reason: t
            .by_reason
            .iter()
            .map(|(k, (n, b))| format!("{k}={n} records/{b} bytes"))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_differ_within_a_second_and_name_their_shard() {
        let (a, b) = (run_id(None), run_id(None));
        assert_ne!(a, b);
        assert!(run_id(Some((1, 4))).ends_with("-s1of4"));
        assert_eq!(
            run_row("r", "ingest", chrono::Utc::now(), &Report::default())
                .counters
                .len(),
            linkmeter_warehouse::registry::RUN_COUNTERS.len()
        );
    }
}
