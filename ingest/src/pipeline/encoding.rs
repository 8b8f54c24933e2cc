//! Parquet encoding shared by the workers at the end of a run. While some worker is done with
//! its inputs, a worker that flushes hands each `flows` partition over as a task and reads
//! on, and the done worker encodes what is queued (before that, every worker encodes its own:
//! handing every flush over measured 5% more CPU, the rows leaving the core whose cache holds
//! them). Encoding is about a fifth of ingest's CPU: sharing it balances the workers by
//! hour files (milliseconds each) instead of by inputs (a quarter of a second each), so a run
//! no longer ends with one core idle while the other writes its last input's files.
//!
//! A task only encodes; the segment's owner writes the file and keeps it for its commit
//! (`writer.rs`), so a segment's files are still all written by its own worker.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use linkmeter_warehouse::parquet_io::{self, Encoded};
use linkmeter_warehouse::registry::FLOWS;
use linkmeter_warehouse::{flow_hours, time, Error};

use crate::inventory::Index;
use crate::rows::FlowsBuilder;

/// A `flows` partition encoded (by any worker), waiting for its owner to write it.
pub(super) struct Hour {
    pub partition: [(&'static str, String); 2],
    pub encoded: Encoded,
    pub summary: RecordBatch,
}

/// What a task sends back: a panic travels to the owner, which re-raises it.
pub(super) type Sent = std::thread::Result<Result<Hour, Error>>;

/// One hour's rows of a segment, to encode.
pub(super) struct Task {
    /// The clock hour (Unix seconds).
    pub hour: i64,
    pub rows: FlowsBuilder,
    /// The segment, for error messages.
    pub at: String,
    /// The segment's owner.
    pub to: Sender<Sent>,
}

impl Task {
    /// Encodes the rows and sends them to the segment's owner.
    pub(super) fn run(self, ix: &Index) {
        let Task { hour, rows, at, to } = self;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            encode_hour(hour, rows, ix, &at)
        }));
        // The owner is gone only when it abandoned the segment.
        let _ = to.send(r);
    }
}

/// Finishes, sums and encodes one hour's `flows` rows: the CPU part of writing them.
fn encode_hour(hour: i64, mut b: FlowsBuilder, ix: &Index, at: &str) -> Result<Hour, Error> {
    let (d, h) = time::day_hour(hour);
    let (columns, groups) = b.finish_columns(ix);
    let summary = flow_hours::from_groups(&groups.keys, &groups.sums, at)?;
    let what = format!("{at}, date={d}/hour={h}");
    let encoded = parquet_io::encode_columns(&FLOWS.schema(), &columns, &what)?;
    Ok(Hour {
        partition: [("date", d), ("hour", h)],
        encoded,
        summary,
    })
}

/// The tasks waiting for a free worker.
pub(super) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Most rows the queued tasks may hold: past it, a flushing worker encodes its own rows
    /// (the queue is memory held on top of each worker's buffer).
    cap_rows: usize,
    workers: usize,
}

struct State {
    tasks: VecDeque<(usize, Task)>,
    /// Rows held by queued and running tasks.
    rows: usize,
    /// Workers still reading inputs (they may queue more).
    reading: usize,
}

impl Shared {
    /// A queue for `workers` reading workers, holding at most `cap_rows` rows.
    pub(super) fn new(workers: usize, cap_rows: usize) -> Self {
        Shared {
            state: Mutex::new(State {
                tasks: VecDeque::new(),
                rows: 0,
                reading: workers,
            }),
            changed: Condvar::new(),
            cap_rows,
            workers,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing runs under the lock that can panic: a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a task when a worker is done reading and so free to take it, or gives it back
    /// (the caller runs it): while every worker reads, each encodes its own rows, which are
    /// still in its core's cache (handing them over measured 5% more CPU), and the queue
    /// holds at most `cap_rows`.
    pub(super) fn offer(&self, task: Task) -> Option<Task> {
        let rows = task.rows.len();
        let mut s = self.lock();
        if s.reading == self.workers || (s.rows + rows > self.cap_rows && s.rows > 0) {
            return Some(task);
        }
        s.rows += rows;
        s.tasks.push_back((rows, task));
        drop(s);
        self.changed.notify_one();
        None
    }

    /// Runs one queued task; `false` when there was none.
    pub(super) fn help(&self, ix: &Index) -> bool {
        let Some((rows, task)) = self.lock().tasks.pop_front() else {
            return false;
        };
        task.run(ix);
        self.lock().rows -= rows;
        true
    }

    /// A worker has read its last input (or failed): it queues nothing more.
    fn done_reading(&self) {
        self.lock().reading -= 1;
        self.changed.notify_all();
    }

    /// Runs queued tasks until every worker is done reading and the queue is empty, or
    /// `failed` is raised.
    pub(super) fn help_until_done(&self, ix: &Index, failed: &AtomicBool) {
        loop {
            if self.help(ix) {
                continue;
            }
            let s = self.lock();
            if (s.tasks.is_empty() && s.reading == 0) || failed.load(Ordering::Relaxed) {
                return;
            }
            if s.tasks.is_empty() {
                // Woken by a new task or a worker finishing; the timeout is only a backstop.
                drop(
                    self.changed
                        .wait_timeout(s, Duration::from_millis(50))
                        .unwrap_or_else(|p| p.into_inner()),
                );
            }
        }
    }
}

/// Marks its worker done reading when dropped, however the worker ends (an error or a
/// panic included), so that no other worker waits for it.
pub(super) struct Reading<'s>(pub &'s Shared);

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.done_reading();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    fn ix() -> Index {
        crate::inventory::Inventory::from_toml(crate::inventory::tests::SAMPLE, "t").unwrap()
    }

    fn task(to: &Sender<Sent>) -> Task {
        Task {
            hour: 1_790_000_000 / 3600 * 3600,
            rows: FlowsBuilder::default(),
            at: "test".into(),
            to: to.clone(),
        }
    }

    #[test]
    fn every_task_runs_once_on_some_worker_and_reports_to_its_owner() {
        let ix = ix();
        let q = Shared::new(3, 10);
        let (tx, rx) = channel();
        assert!(
            q.offer(task(&tx)).is_some(),
            "while all read, each encodes its own"
        );
        drop(Reading(&q)); // one of the three is done reading
        for _ in 0..5 {
            assert!(q.offer(task(&tx)).is_none(), "empty rows never fill it");
        }
        let failed = AtomicBool::new(false);
        std::thread::scope(|s| {
            let helper = s.spawn(|| {
                // Done reading, as a worker is before it helps.
                drop(Reading(&q));
                q.help_until_done(&ix, &failed);
            });
            {
                let _r = Reading(&q);
                while q.help(&ix) {}
            }
            helper.join().unwrap();
        });
        drop(tx);
        let got: Vec<Sent> = rx.iter().collect();
        assert_eq!(got.len(), 5);
        for r in got {
            let h = r.unwrap().unwrap();
            assert_eq!(h.partition[0].0, "date");
            assert_eq!(h.encoded.rows, 0);
        }
        let s = q.lock();
        assert_eq!((s.rows, s.reading, s.tasks.len()), (0, 0, 0));
    }

    #[test]
    fn a_waiting_helper_returns_when_the_last_reader_fails() {
        let ix = ix();
        let q = Shared::new(2, 10);
        let failed = AtomicBool::new(false);
        std::thread::scope(|s| {
            let helper = s.spawn(|| {
                // Done reading, as a worker is before it helps.
                drop(Reading(&q));
                q.help_until_done(&ix, &failed);
            });
            // A reader that ends by an error: its guard still counts it out.
            let r = Reading(&q);
            std::thread::sleep(Duration::from_millis(20));
            drop(r);
            helper.join().unwrap();
        });
        assert_eq!(q.lock().reading, 0);
    }
}
