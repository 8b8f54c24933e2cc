//! Kafka sources within a run. Batch mode streams: the reader hands each input (one
//! partition's offset range) to the workers as soon as it has closed it, and the workers keep
//! their segments open across inputs, as for files. Follow mode reads in rounds, each written
//! and committed before the next is read (its flush interval is the round).

use std::sync::atomic::{AtomicBool, Ordering};

use linkmeter_warehouse::{inputs, Warehouse};

use super::{jobs_of, Location, RunError, RunOptions, SourceSpec};
use crate::inventory::Index;
use crate::pipeline::{self, Feed, Options, Progress, Report};
use crate::source::kafka::{KafkaReader, KafkaSettings};
use crate::source::Batch;

/// What every Kafka source of a run writes with.
pub(super) struct Writing<'a> {
    pub ix: &'a Index,
    pub wh: &'a Warehouse,
    pub rt: &'a tokio::runtime::Handle,
    pub progress: &'a Progress,
}

/// Reads every Kafka source: to its end, or (following) until stopped.
pub(super) fn read_streams(
    specs: &[SourceSpec],
    w: &Writing<'_>,
    o: &RunOptions,
    opts: &mut Options,
    report: &mut Report,
) -> Result<(), RunError> {
    let kafka: Vec<(&SourceSpec, &KafkaSettings)> = specs
        .iter()
        .filter_map(|s| match &s.at {
            Location::Kafka(k) => Some((s, k.as_ref())),
            _ => None,
        })
        .collect();
    if kafka.is_empty() {
        return Ok(());
    }
    let held: Vec<String> =
        w.rt.block_on(inputs::read(w.wh))?
            .inputs
            .into_values()
            .map(|r| r.input_key)
            .collect();
    let mut readers = Vec::new();
    for (spec, k) in kafka {
        readers.push((
            spec,
            k,
            KafkaReader::open(k.clone(), held.iter().map(String::as_str))?,
        ));
    }
    let never = AtomicBool::new(false);
    let stop = o.stop.as_deref().unwrap_or(&never);
    let stopped = || stop.load(Ordering::Relaxed);
    let Some(flush) = o.follow else {
        for (spec, k, reader) in readers.iter_mut() {
            if stopped() {
                break;
            }
            // Every source writes segments of its own (the file pass was round 0).
            opts.round += 1;
            stream_batch(spec, k, reader, w, opts, stop, report)?;
        }
        report.interrupted |= stopped();
        return Ok(());
    };
    tracing::info!(
        message = "following",
        sources = readers.len(),
        flush_secs = flush.as_secs()
    );
    let share = flush / readers.len().max(1) as u32;
    while !stopped() {
        for (spec, _, reader) in readers.iter_mut() {
            if let Some(batch) = reader.follow_round(share, stop)? {
                let next = batch.next.clone();
                if !write_round(spec, batch, w, opts, report)? {
                    reader.commit(&next);
                }
            }
        }
    }
    Ok(())
}

/// Reads one source to the end of every partition with one set of workers: the reader hands
/// inputs over through a [`Feed`] bounded by `round_bytes`, and commits the consumer group's
/// offsets as the workers' segments commit (the warehouse is the checkpoint; the group's
/// offsets are for lag monitoring). A stop or a failure leaves what was not committed to the
/// next run.
fn stream_batch(
    spec: &SourceSpec,
    k: &KafkaSettings,
    reader: &mut KafkaReader,
    w: &Writing<'_>,
    opts: &Options,
    stop: &AtomicBool,
    report: &mut Report,
) -> Result<(), RunError> {
    let feed = Feed::new(k.round_bytes);
    let (read, written) = std::thread::scope(|s| {
        let read = std::thread::Builder::new()
            .name("lm-kafka-read".into())
            .spawn_scoped(s, || {
                let r = feed_inputs(spec, k, &mut *reader, &feed, stop);
                feed.close();
                r
            })
            .expect("a thread can be started");
        let written = pipeline::ingest_feed(&feed, w.ix, w.wh, w.rt, opts, w.progress);
        let read = read.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (read, written)
    });
    let whole = matches!(read, Ok(true)) && matches!(&written, Ok(r) if !r.interrupted);
    if whole {
        // Every input is held: the group moves to where each partition's reading ended
        // (past ranges an earlier run held, too).
        reader.commit(&reader.next_offsets());
    } else {
        reader.held(&feed.take_committed(), true);
    }
    report.merge(written?);
    read?;
    Ok(())
}

/// The reader's side of [`stream_batch`]: true when every partition was read to its end and
/// handed over, false when a stop or the workers' end cut it short.
fn feed_inputs(
    spec: &SourceSpec,
    k: &KafkaSettings,
    reader: &mut KafkaReader,
    feed: &Feed,
    stop: &AtomicBool,
) -> Result<bool, RunError> {
    // The first inputs are small, so the workers start within milliseconds; later ones are
    // a chunk per partition or less (the step ends early when the consumer goes quiet).
    let mut step = (k.chunk_bytes / 4).max(1);
    loop {
        let Some(batch) = reader.next_step_until(step, &[stop, feed.closed()])? else {
            return Ok(reader.done());
        };
        let jobs = jobs_of(spec, batch);
        let bytes: u64 = jobs.iter().map(|j| j.input.size).sum();
        for job in jobs {
            if !feed.push(job) {
                return Ok(false);
            }
        }
        // A read that ended short of its size ended because nothing more came.
        feed.set_quiet(bytes < step as u64);
        step = k.chunk_bytes.max(1);
        reader.held(&feed.take_committed(), false);
        if stop.load(Ordering::Relaxed) || feed.closed().load(Ordering::Relaxed) {
            return Ok(false);
        }
    }
}

/// Writes one round of a followed stream (segments of its own); the caller then commits the
/// source's offsets, unless this returns true: a stop cut the round short.
fn write_round(
    spec: &SourceSpec,
    batch: Batch,
    w: &Writing<'_>,
    opts: &mut Options,
    report: &mut Report,
) -> Result<bool, RunError> {
    let jobs = jobs_of(spec, batch);
    opts.round += 1;
    let r = pipeline::ingest(&jobs, w.ix, w.wh, w.rt, opts, w.progress)?;
    let cut = r.interrupted;
    report.merge(r);
    Ok(cut)
}
