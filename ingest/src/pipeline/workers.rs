//! The worker pool: each worker takes the next input in plan order, reads it into its own
//! segment and commits the segment when full. Workers share only the position in the plan and
//! a failure flag; each returns its tallies through its join handle.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use linkmeter_warehouse::{Error, Warehouse};

use super::input::Unfinished;
use super::plan::Listed;
use super::writer::SegmentWriter;
use super::{Job, Options, Progress, QuarantineSample, SAMPLES};
use crate::inventory::Index;
use crate::source::{Fetch, InputRef};
use crate::summary::Tally;

/// What the workers are given.
pub(super) struct Work<'a> {
    pub jobs: &'a [Job],
    pub listed: &'a [Listed],
    /// Indexes into `jobs`, in reading order.
    pub order: &'a [usize],
    pub ix: &'a Index,
    pub wh: &'a Warehouse,
    pub rt: &'a tokio::runtime::Handle,
    pub opts: &'a Options,
    pub inventory_hash: &'a str,
}

/// What the workers did.
#[derive(Debug, Default)]
pub(super) struct Done {
    pub tally: Tally,
    pub samples: Vec<QuarantineSample>,
    /// A stop request ended the work before every input was read.
    pub interrupted: bool,
}

/// Reads every planned input with `opts.workers` threads.
pub(super) fn run(w: &Work<'_>, progress: &Progress) -> Result<Done, Error> {
    download_ahead(w.jobs, w.order);
    let next = AtomicUsize::new(0);
    let failed = Arc::new(AtomicBool::new(false));
    let results: Vec<Result<Done, Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..w.opts.workers.max(1))
            .map(|k| {
                let (next, failed) = (&next, failed.clone());
                scope.spawn(move || {
                    let r = worker(w, k, next, &failed, progress);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut done = Done::default();
    for r in results {
        let d = r?;
        done.tally.merge(&d.tally);
        let room = SAMPLES.saturating_sub(done.samples.len());
        done.samples.extend(d.samples.into_iter().take(room));
        done.interrupted |= d.interrupted;
    }
    done.interrupted |= next.load(Ordering::Relaxed) < w.order.len();
    Ok(done)
}

fn worker(
    w: &Work<'_>,
    k: usize,
    next: &AtomicUsize,
    failed: &AtomicBool,
    progress: &Progress,
) -> Result<Done, Error> {
    let mut seg = SegmentWriter::new(w.wh, w.rt, w.ix, w.opts, k);
    let mut done = Done::default();
    // What the open segment's inputs add: it counts once the segment is committed.
    let mut open = Done::default();
    loop {
        if failed.load(Ordering::Relaxed) {
            // Another worker failed: stop without committing (the run fails; the next one
            // removes what this segment wrote).
            return Ok(done);
        }
        if w.opts.stopped() {
            break;
        }
        let slot = next.fetch_add(1, Ordering::Relaxed);
        let Some(&i) = w.order.get(slot) else { break };
        match seg.ingest_input(&w.jobs[i], &w.listed[i], w.inventory_hash, progress) {
            Ok((t, s)) => {
                open.tally.merge(&t);
                let room = SAMPLES.saturating_sub(open.samples.len());
                open.samples.extend(s.into_iter().take(room));
            }
            Err(Unfinished::Failed(e)) => return Err(e),
            Err(Unfinished::Stopped) => {
                seg.abandon();
                done.interrupted = true;
                return Ok(done);
            }
        }
        progress.inputs_done.fetch_add(1, Ordering::Relaxed);
        if seg.full() {
            seg.commit()?;
            done.absorb(std::mem::take(&mut open));
        }
    }
    seg.commit()?;
    done.absorb(open);
    Ok(done)
}

impl Done {
    fn absorb(&mut self, o: Done) {
        self.tally.merge(&o.tally);
        let room = SAMPLES.saturating_sub(self.samples.len());
        self.samples.extend(o.samples.into_iter().take(room));
    }
}

/// Remote stores download ahead, in the order the workers will ask.
fn download_ahead(jobs: &[Job], order: &[usize]) {
    let mut fetchers: Vec<(Arc<dyn Fetch>, Vec<InputRef>)> = Vec::new();
    for &i in order {
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
}
