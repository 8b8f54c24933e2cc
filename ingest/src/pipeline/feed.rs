//! A bounded queue of inputs that arrive while the workers run: a stream read in batch mode
//! hands each input over as soon as it is closed, instead of in rounds that the workers write
//! in lockstep with the reading. The keys of inputs whose segments have committed go back to
//! the reader (a Kafka source commits its consumer group's offsets from them).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use super::Job;

/// Inputs in flight from a reader to the workers, bounded in bytes.
#[derive(Debug)]
pub struct Feed {
    state: Mutex<State>,
    ready: Condvar,
    /// Raised once no more inputs will be taken or given (see [`Feed::close`]).
    closed: AtomicBool,
    cap: usize,
}

#[derive(Debug, Default)]
struct State {
    jobs: VecDeque<Job>,
    bytes: usize,
    /// The reader has handed over everything the source had for now.
    quiet: bool,
    committed: Vec<String>,
}

/// What a worker gets from [`Feed::pop`].
#[derive(Debug)]
pub(super) enum Popped {
    /// The next input.
    Input(Box<Job>),
    /// Nothing queued and the source is quiet: a good moment to commit what is held, rather
    /// than after the reader's wait for the ends of the partitions.
    Quiet,
    /// The feed is closed and empty.
    End,
}

impl Feed {
    /// A feed that holds at most `cap_bytes` of queued inputs (one input more when a single
    /// input is larger), so memory is bounded by it and what the workers hold.
    pub fn new(cap_bytes: usize) -> Self {
        Feed {
            state: Mutex::default(),
            ready: Condvar::new(),
            closed: AtomicBool::new(false),
            cap: cap_bytes.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; a poisoned lock still holds consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an input, waiting while the queue is full. False once the feed is closed: the
    /// input was not queued (the workers have stopped, or the reader closed it).
    pub fn push(&self, job: Job) -> bool {
        let size = usize::try_from(job.input.size).unwrap_or(usize::MAX);
        let mut s = self.lock();
        while !self.is_closed() && s.bytes > 0 && s.bytes.saturating_add(size) > self.cap {
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if self.is_closed() {
            return false;
        }
        s.bytes = s.bytes.saturating_add(size);
        s.jobs.push_back(job);
        self.ready.notify_all();
        true
    }

    /// No more inputs will come: the workers finish what is queued, unless a stop or a
    /// failure ends them first. Called by the reader when it is done and by the pipeline when
    /// its workers are.
    pub fn close(&self) {
        let _s = self.lock();
        self.closed.store(true, Ordering::Relaxed);
        self.ready.notify_all();
    }

    /// Whether [`close`](Self::close) was called; a reader polls it to stop reading early.
    pub fn closed(&self) -> &AtomicBool {
        &self.closed
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Tells the workers whether the reader has handed over all the source had for now (its
    /// last read ended because nothing more came, not because it had read enough).
    pub fn set_quiet(&self, quiet: bool) {
        self.lock().quiet = quiet;
        self.ready.notify_all();
    }

    /// The next input, waiting for one. With `quiet`, an empty queue of a quiet source
    /// answers [`Popped::Quiet`] instead of waiting.
    pub(super) fn pop(&self, quiet: bool) -> Popped {
        let mut s = self.lock();
        loop {
            if let Some(j) = s.jobs.pop_front() {
                s.bytes = s
                    .bytes
                    .saturating_sub(usize::try_from(j.input.size).unwrap_or(usize::MAX));
                self.ready.notify_all();
                return Popped::Input(Box::new(j));
            }
            if self.is_closed() {
                return Popped::End;
            }
            if quiet && s.quiet {
                return Popped::Quiet;
            }
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Whether inputs were left queued (a stop or failure ended the workers first).
    pub(super) fn left(&self) -> bool {
        !self.lock().jobs.is_empty()
    }

    /// Records the keys of inputs whose segment has committed.
    pub(super) fn committed(&self, keys: impl IntoIterator<Item = String>) {
        self.lock().committed.extend(keys);
    }

    /// The keys recorded by [`committed`](Self::committed) since the last call.
    pub fn take_committed(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().committed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Content;
    use crate::fields::{Format, DEFAULT_FORMAT};
    use crate::source::{InputRef, Location};

    fn key(p: Popped) -> Option<String> {
        match p {
            Popped::Input(j) => Some(j.input.key.clone()),
            Popped::Quiet | Popped::End => None,
        }
    }

    fn job(key: &str, size: u64) -> Job {
        Job {
            input: InputRef {
                uri: key.into(),
                key: key.into(),
                location: Location::File(key.into()),
                version: None,
                size,
                account_hint: None,
            },
            fetch: None,
            line_offsets: None,
            format: Format::parse(DEFAULT_FORMAT).unwrap(),
            account: None,
            content: Content::Auto,
        }
    }

    #[test]
    fn a_full_feed_holds_the_reader_until_a_worker_takes_an_input() {
        let feed = Feed::new(10);
        assert!(feed.push(job("a", 6)));
        std::thread::scope(|s| {
            let reader = s.spawn(|| feed.push(job("b", 6)));
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(
                !reader.is_finished(),
                "12 bytes would exceed the 10-byte bound"
            );
            assert_eq!(key(feed.pop(false)), Some("a".into()));
            assert!(reader.join().unwrap());
        });
        // One input larger than the bound still passes when the queue is empty.
        assert_eq!(key(feed.pop(false)), Some("b".into()));
        assert!(feed.push(job("huge", 100)));
        feed.close();
        assert_eq!(key(feed.pop(false)), Some("huge".into()));
        assert!(matches!(feed.pop(false), Popped::End));
    }

    #[test]
    fn closing_wakes_a_waiting_reader_and_refuses_its_input() {
        let feed = Feed::new(1);
        assert!(feed.push(job("a", 5)));
        std::thread::scope(|s| {
            let reader = s.spawn(|| feed.push(job("b", 5)));
            std::thread::sleep(std::time::Duration::from_millis(50));
            feed.close();
            assert!(!reader.join().unwrap());
        });
        assert!(feed.left());
        assert!(!feed.push(job("c", 0)));
    }

    #[test]
    fn a_worker_asking_for_quiet_is_woken_when_the_reader_goes_quiet() {
        let feed = Feed::new(100);
        std::thread::scope(|s| {
            let worker = s.spawn(|| feed.pop(true));
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!worker.is_finished(), "not quiet yet: the worker waits");
            feed.set_quiet(true);
            assert!(matches!(worker.join().unwrap(), Popped::Quiet));
        });
        // Queued inputs come first, and a worker not asking for quiet waits on.
        assert!(feed.push(job("a", 1)));
        assert_eq!(key(feed.pop(true)), Some("a".into()));
        std::thread::scope(|s| {
            let worker = s.spawn(|| feed.pop(false));
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!worker.is_finished());
            feed.close();
            assert!(matches!(worker.join().unwrap(), Popped::End));
        });
    }

    #[test]
    fn committed_keys_are_taken_once() {
        let feed = Feed::new(1);
        feed.committed(["k1".to_string(), "k2".to_string()]);
        assert_eq!(feed.take_committed(), vec!["k1", "k2"]);
        assert!(feed.take_committed().is_empty());
    }
}
