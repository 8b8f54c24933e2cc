//! The worker pool: each worker takes the next input (in plan order, or as a stream's reader
//! hands it over), reads it into its own segment and commits the segment when full. Workers
//! share the input queue, the encoding queue (a worker done with its inputs encodes the
//! others' `flows` partitions: `encoding.rs`) and a failure flag; each returns its tallies
//! through its join handle.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use linkmeter_warehouse::{Error, Warehouse};

use super::encoding::{Reading, Shared};
use super::feed::{Feed, Popped};
use super::identity::listed;
use super::input::Unfinished;
use super::plan::Listed;
use super::writer::SegmentWriter;
use super::{Job, Options, Progress, QuarantineSample, SAMPLES};
use crate::inventory::Index;
use crate::source::{Fetch, InputRef};
use crate::summary::Tally;

/// Where the workers take their inputs from.
pub(super) enum Queue<'a> {
    /// Planned inputs, identified up front.
    Planned {
        jobs: &'a [Job],
        listed: &'a [Listed],
        /// Indexes into `jobs`, in reading order.
        order: &'a [usize],
    },
    /// Inputs handed over while the workers run (never held by the warehouse: the reader
    /// skips what is).
    Feed(&'a Feed),
}

/// What the workers are given.
pub(super) struct Work<'a> {
    pub queue: Queue<'a>,
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
    if let Queue::Planned { jobs, order, .. } = w.queue {
        download_ahead(jobs, order);
    }
    let next = AtomicUsize::new(0);
    let failed = Arc::new(AtomicBool::new(false));
    let workers = w.opts.workers.max(1);
    // Queued encoding holds at most one worker's buffer more.
    let shared = Shared::new(workers, w.opts.flush_rows.max(1));
    let results: Vec<Result<Done, Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|k| {
                let (next, failed, shared) = (&next, failed.clone(), &shared);
                // Named, so that `top -H` and profiles tell workers from readers.
                std::thread::Builder::new()
                    .name(format!("lm-worker-{k}"))
                    .spawn_scoped(scope, move || {
                        let r = worker(w, k, next, &failed, shared, progress);
                        if r.is_err() {
                            failed.store(true, Ordering::Relaxed);
                            if let Queue::Feed(f) = w.queue {
                                // The run fails: the reader stops, and workers waiting for an
                                // input finish now rather than with the next one.
                                f.close();
                            }
                        }
                        r
                    })
                    .expect("a thread can be started")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    if let Queue::Feed(f) = w.queue {
        // A reader waiting for room must not wait for workers that are gone.
        f.close();
    }
    let mut done = Done::default();
    for r in results {
        let d = r?;
        done.tally.merge(&d.tally);
        let room = SAMPLES.saturating_sub(done.samples.len());
        done.samples.extend(d.samples.into_iter().take(room));
        done.interrupted |= d.interrupted;
    }
    done.interrupted |= match w.queue {
        Queue::Planned { order, .. } => next.load(Ordering::Relaxed) < order.len(),
        Queue::Feed(f) => f.left(),
    };
    Ok(done)
}

/// What a worker takes next.
enum Taken<'a> {
    /// An input and its identity.
    Input(Box<(Cow<'a, Job>, Cow<'a, Listed>)>),
    /// Nothing to read until the source has more: commit what is held.
    Idle,
    /// Nothing left.
    End,
}

impl<'a> Queue<'a> {
    /// The next input; `idle`: answer [`Taken::Idle`] rather than wait for a quiet source.
    fn take(&self, next: &AtomicUsize, idle: bool) -> Taken<'a> {
        match *self {
            Queue::Planned {
                jobs,
                listed,
                order,
            } => match order.get(next.fetch_add(1, Ordering::Relaxed)) {
                Some(&i) => Taken::Input(Box::new((
                    Cow::Borrowed(&jobs[i]),
                    Cow::Borrowed(&listed[i]),
                ))),
                None => Taken::End,
            },
            Queue::Feed(f) => match f.pop(idle) {
                Popped::Input(job) => {
                    let l = listed(&job, &mut Vec::new());
                    Taken::Input(Box::new((Cow::Owned(*job), Cow::Owned(l))))
                }
                Popped::Quiet => Taken::Idle,
                Popped::End => Taken::End,
            },
        }
    }
}

fn worker(
    w: &Work<'_>,
    k: usize,
    next: &AtomicUsize,
    failed: &AtomicBool,
    shared: &Shared,
    progress: &Progress,
) -> Result<Done, Error> {
    let reading = Reading(shared);
    let mut seg = SegmentWriter::new(w.wh, w.rt, w.ix, w.opts, k, shared);
    let mut done = Done::default();
    // What the open segment's inputs add: it counts once the segment is committed.
    let mut open = Done::default();
    // Whether an idle source may end the wait for the next input (once per idle spell).
    let mut may_idle = true;
    loop {
        if failed.load(Ordering::Relaxed) {
            // Another worker failed: stop without committing (the run fails; the next one
            // removes what this segment wrote).
            return Ok(done);
        }
        if w.opts.stopped() {
            break;
        }
        let (job, listed) = match w.queue.take(next, may_idle) {
            Taken::Input(next) => *next,
            Taken::Idle => {
                // The stream's reader is waiting for more (at the end of a batch run, for
                // the broker to confirm each partition's end): commit now, not after it.
                commit(w, &mut seg)?;
                done.absorb(std::mem::take(&mut open));
                may_idle = false;
                continue;
            }
            Taken::End => break,
        };
        may_idle = true;
        match seg.ingest_input(&job, &listed, w.inventory_hash, progress) {
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
            commit(w, &mut seg)?;
            done.absorb(std::mem::take(&mut open));
        }
    }
    commit(w, &mut seg)?;
    done.absorb(open);
    // Encode for the workers still reading until they are done.
    drop(reading);
    shared.help_until_done(w.ix, failed);
    Ok(done)
}

/// Commits a worker's segment; a feed learns which of its inputs are now held.
fn commit(w: &Work<'_>, seg: &mut SegmentWriter<'_>) -> Result<(), Error> {
    let keys = match w.queue {
        Queue::Feed(_) => seg.member_keys(),
        Queue::Planned { .. } => Vec::new(),
    };
    seg.commit()?;
    if let Queue::Feed(f) = w.queue {
        f.committed(keys);
    }
    Ok(())
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
