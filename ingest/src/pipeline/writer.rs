//! A worker's open segment: the rows of the inputs read since its last commit, buffered per
//! table partition, written out as files of the segment when the buffer is full, and committed
//! with the inputs' checkpoint rows (see `linkmeter_warehouse::segment`). `flows` partitions
//! may be encoded by another worker (`encoding.rs`); their files are written here when they
//! come back, so a segment's files are all written by its own worker.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::Arc;

use linkmeter_warehouse::inputs::InputRow;
use linkmeter_warehouse::registry::{BROKER_METRICS, COVERAGE, FLOWS, QUARANTINE};
use linkmeter_warehouse::segment::Segment;
use linkmeter_warehouse::{Error, Warehouse};

use super::encoding::{Sent, Shared, Task};
use super::Options;
use crate::inventory::Index;
use crate::limits::Limits;
use crate::rows::{CoverageBuilder, FlowsBuilder, MetricsBuilder, QuarantineBuilder};

/// A worker's segment writer.
pub(super) struct SegmentWriter<'a> {
    pub(super) wh: &'a Warehouse,
    pub(super) rt: &'a tokio::runtime::Handle,
    pub(super) ix: &'a Index,
    pub(super) run_id: String,
    round: u32,
    worker: usize,
    seq: u32,
    segment: Option<Segment>,
    /// `flows` rows by clock hour (Unix seconds).
    pub(super) flows: BTreeMap<i64, FlowsBuilder>,
    /// `coverage` rows by day.
    pub(super) coverage: BTreeMap<String, CoverageBuilder>,
    /// `broker_metrics` rows by day.
    pub(super) metrics: BTreeMap<String, MetricsBuilder>,
    pub(super) quarantine: QuarantineBuilder,
    /// Rows buffered since the last flush.
    pub(super) buffered: usize,
    /// An estimate of the bytes those rows hold (with their builders' reserve).
    pub(super) buffered_bytes: usize,
    pub(super) flush_rows: usize,
    pub(super) limits: Limits,
    pub(super) stop: Option<Arc<AtomicBool>>,
    max_inputs: usize,
    members: Vec<InputRow>,
    /// Where encoding tasks go when another worker is free to take them.
    shared: &'a Shared,
    /// This segment's encoded partitions come back here (a new channel per segment, so
    /// an abandoned segment's late tasks report to nobody).
    sent: (Sender<Sent>, Receiver<Sent>),
    /// Tasks of this segment not received yet.
    outstanding: usize,
}

impl<'a> SegmentWriter<'a> {
    pub(super) fn new(
        wh: &'a Warehouse,
        rt: &'a tokio::runtime::Handle,
        ix: &'a Index,
        opts: &Options,
        worker: usize,
        shared: &'a Shared,
    ) -> Self {
        SegmentWriter {
            wh,
            rt,
            ix,
            run_id: opts.run_id.clone(),
            round: opts.round,
            worker,
            seq: 0,
            segment: None,
            flows: BTreeMap::new(),
            coverage: BTreeMap::new(),
            metrics: BTreeMap::new(),
            quarantine: QuarantineBuilder::default(),
            buffered: 0,
            buffered_bytes: 0,
            flush_rows: opts.flush_rows.max(1),
            limits: opts.limits,
            stop: opts.stop.clone(),
            max_inputs: opts.segment_inputs.max(1),
            members: Vec::new(),
            shared,
            sent: channel(),
            outstanding: 0,
        }
    }

    /// The id of the segment being filled: unique per run, round, worker and sequence, and
    /// starting with the run id (which names the shard).
    pub(super) fn id(&self) -> String {
        match self.round {
            0 => format!("{}-w{}-{:05}", self.run_id, self.worker, self.seq),
            r => format!("{}-r{r}-w{}-{:05}", self.run_id, self.worker, self.seq),
        }
    }

    /// Whether the segment should be committed before the next input.
    pub(super) fn full(&self) -> bool {
        self.buffered >= self.flush_rows
            || self.buffered_bytes >= self.limits.buffer_bytes
            || self.members.len() >= self.max_inputs
            // The segment's hourly sums wait in memory for its commit; folded, they grow with
            // distinct keys, which an input does not bound. Before folding and this, 40 M
            // records in 16 files peaked at 387 MiB against 150 MiB for 4 M (now 204 MiB).
            || self
                .segment
                .as_ref()
                .is_some_and(|s| s.summary_rows() >= (self.flush_rows / 4).max(1))
    }

    /// Whether a stop was requested.
    pub(super) fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Drops the open segment: its rows are not committed, and the files it wrote are
    /// removed by the next run's recovery, which reads its inputs again.
    pub(super) fn abandon(&mut self) {
        self.flows.clear();
        self.coverage.clear();
        self.metrics.clear();
        self.quarantine = QuarantineBuilder::default();
        self.members.clear();
        self.segment = None;
        self.buffered = 0;
        self.buffered_bytes = 0;
        self.sent = channel();
        self.outstanding = 0;
        self.seq += 1;
    }

    /// Adds an input's checkpoint row (committed with the segment).
    pub(super) fn add_member(&mut self, row: InputRow) {
        self.members.push(row);
    }

    /// The keys of the open segment's inputs.
    pub(super) fn member_keys(&self) -> Vec<String> {
        self.members.iter().map(|m| m.input_key.clone()).collect()
    }

    /// Writes the buffered rows as files of the open segment (not visible until committed).
    /// `flows` partitions go to the shared encoding queue when a worker is free to take them
    /// (`encoding.rs`); their files are written when they come back, by the next flush or
    /// the commit.
    pub(super) fn flush(&mut self) -> Result<(), Error> {
        self.buffered = 0;
        self.buffered_bytes = 0;
        let id = self.id();
        let at = format!("flows of segment {id}");
        self.segment.get_or_insert_with(|| Segment::new(id));
        for (hour, b) in std::mem::take(&mut self.flows) {
            if b.is_empty() {
                continue;
            }
            let task = Task {
                hour,
                rows: b,
                at: at.clone(),
                to: self.sent.0.clone(),
            };
            self.outstanding += 1;
            if let Some(task) = self.shared.offer(task) {
                task.run(self.ix);
            }
        }
        self.collect(false)?;
        let (wh, rt) = (self.wh, self.rt);
        let seg = self.segment.as_mut().expect("opened above");
        for (date, mut b) in std::mem::take(&mut self.coverage) {
            if !b.is_empty() {
                rt.block_on(seg.write(wh, &COVERAGE, &[("date", date)], &[b.finish()]))?;
            }
        }
        for (date, mut b) in std::mem::take(&mut self.metrics) {
            if !b.is_empty() {
                rt.block_on(seg.write(wh, &BROKER_METRICS, &[("date", date)], &[b.finish()]))?;
            }
        }
        if !self.quarantine.is_empty() {
            let batch = self
                .quarantine
                .finish(chrono::Utc::now().timestamp_micros());
            rt.block_on(seg.write(wh, &QUARANTINE, &[], &[batch]))?;
        }
        Ok(())
    }

    /// Writes what is buffered and commits the segment with its inputs' checkpoint rows.
    pub(super) fn commit(&mut self) -> Result<(), Error> {
        if self.members.is_empty() && self.segment.is_none() && self.buffered == 0 {
            return Ok(());
        }
        self.flush()?;
        self.collect(true)?;
        let id = self.id();
        let seg = self.segment.take().unwrap_or_else(|| Segment::new(id));
        self.rt.block_on(seg.commit(self.wh, &self.members))?;
        self.members.clear();
        self.seq += 1;
        Ok(())
    }
}

impl SegmentWriter<'_> {
    /// Writes the segment's encoded partitions that have come back; `wait`: all of them,
    /// encoding queued ones here (anyone's: the queue is shared) while others are busy.
    fn collect(&mut self, wait: bool) -> Result<(), Error> {
        while self.outstanding > 0 {
            let sent = match self.sent.1.try_recv() {
                Ok(sent) => sent,
                Err(TryRecvError::Empty) if wait => {
                    if self.shared.help(self.ix) {
                        continue;
                    }
                    // Another worker is encoding it; the sender we hold keeps this open.
                    self.sent.1.recv().expect("the writer holds a sender")
                }
                Err(_) => return Ok(()),
            };
            self.outstanding -= 1;
            let h = sent.unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            let [(dk, d), (hk, hv)] = h.partition;
            let seg = self
                .segment
                .as_mut()
                .expect("tasks come from a flushed segment");
            self.rt.block_on(seg.write_encoded(
                self.wh,
                &FLOWS,
                &[(dk, d), (hk, hv)],
                h.encoded,
                Some(h.summary),
            ))?;
        }
        Ok(())
    }
}
