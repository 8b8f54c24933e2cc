//! One input into a worker's segment: open it, decode it (`decode::route`), attribute every
//! record (`attribute`), split traffic across clock hours and append the rows, keeping the
//! input's share of the balance.

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use linkmeter_warehouse::inputs::InputRow;
use linkmeter_warehouse::{time, Error};

use super::plan::Listed;
use super::writer::SegmentWriter;
use super::{Job, Progress, QuarantineSample, DECODERS, SAMPLES};
use crate::attribute::{attribute, Outcome};
use crate::decode::route::{self, RouteError};
use crate::decode::{BadInput, Event, FlowRecord, MetricPoint, Position};
use crate::hours::split_hours;
use crate::rows::Lineage;
use crate::source::kafka::LineOffsets;
use crate::source::Location;
use crate::summary::Tally;

/// Counts bytes read for the progress display and remembers whether reading itself failed
/// (as opposed to the bytes failing to decode).
struct Counting<'a, R> {
    inner: R,
    counter: &'a AtomicU64,
    counted: u64,
    failed: &'a std::cell::Cell<bool>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .inspect_err(|_| self.failed.set(true))?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        self.counted += n as u64;
        Ok(n)
    }
}

/// Per-input state while it is decoded into the segment.
struct InputCtx {
    line_offsets: Option<Arc<LineOffsets>>,
    lineage: Lineage,
    account: Option<String>,
    tally: Tally,
    samples: Vec<QuarantineSample>,
    error: Option<Error>,
}

/// The largest byte or packet count a record may carry: what the warehouse's signed 64-bit
/// columns hold. More is not a real flow (2^63 bytes is 8 EiB), so it is quarantined.
const MAX_COUNT: u64 = i64::MAX as u64;

impl SegmentWriter<'_> {
    /// Reads one input into the segment; returns its share of the balance and its first
    /// quarantine entries.
    pub(super) fn ingest_input(
        &mut self,
        job: &Job,
        listed: &Listed,
        inventory_hash: &str,
        progress: &Progress,
    ) -> Result<(Tally, Vec<QuarantineSample>), Error> {
        let input = &job.input;
        let mut cx = InputCtx {
            line_offsets: job.line_offsets.clone(),
            lineage: Lineage {
                source_uri: input.uri.clone(),
                input_id: listed.id.clone(),
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
        let (mut content_hash, size) = match &listed.content {
            Some((h, s)) => (h.clone(), *s),
            None => (String::from("unreadable"), 0),
        };
        let failure = match &listed.content {
            None => Some("cannot read the file".to_string()),
            Some(_) => match self.decode_input(job, &mut cx, progress) {
                Ok(()) => None,
                Err(RouteError::Content(r)) => Some(r),
                Err(RouteError::Read(e)) => {
                    // Not recorded as read: the next run reads it again and replaces whatever
                    // part of it this run wrote, so it is never counted twice.
                    content_hash = String::from("unreadable");
                    Some(format!("{e}; it will be read again on the next run"))
                }
            },
        };
        if let Some(reason) = failure {
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
        let segment_id = self.id();
        self.add_member(InputRow {
            segment_id,
            run_id: self.run_id.clone(),
            input_id: listed.id.clone(),
            input_key: input.key.clone(),
            source_uri: input.uri.clone(),
            content_hash,
            inventory_hash: inventory_hash.to_string(),
            size,
            records: cx.tally.records_in,
            flow_rows: cx.tally.flow_rows,
            quarantined: cx.tally.quarantined,
            ingested_at_micros: chrono::Utc::now().timestamp_micros(),
            decoders: DECODERS,
        });
        Ok((cx.tally, cx.samples))
    }

    fn decode_input(
        &mut self,
        job: &Job,
        cx: &mut InputCtx,
        progress: &Progress,
    ) -> Result<(), RouteError> {
        let failed = std::cell::Cell::new(false);
        let local = match &job.input.location {
            Location::File(p) => Some(p.as_path()),
            _ => None,
        };
        let raw: Box<dyn Read + Send> = match (local, &job.fetch) {
            (Some(path), _) => Box::new(File::open(path).map_err(RouteError::Read)?),
            (None, Some(f)) => f.open(&job.input),
            (None, None) => {
                return Err(RouteError::Read(std::io::Error::other(
                    "no client for this input",
                )))
            }
        };
        let mut reader = Counting {
            inner: raw,
            counter: &progress.bytes_read,
            counted: 0,
            failed: &failed,
        };
        let stream = matches!(job.input.location, Location::Stream { .. });
        let res = route::decode(
            route::Input {
                reader: &mut reader,
                declared: job.content,
                stream,
                format: &job.format,
                local,
            },
            &mut |ev| self.on_event(cx, ev),
        );
        // A local Parquet file is read in place, past the counting reader.
        if local.is_some() {
            let rest = job.input.size.saturating_sub(reader.counted);
            progress.bytes_read.fetch_add(rest, Ordering::Relaxed);
        }
        // A decoder may turn a read error into a quarantine entry and return Ok; what counts
        // is whether the bytes could be fetched to the end.
        match (res, failed.get()) {
            (_, true) => Err(RouteError::Read(std::io::Error::other(
                "the input could not be read to the end (see the quarantine entry before this one)",
            ))),
            (Ok(_), false) => Ok(()),
            (Err(e), false) => Err(e),
        }
    }

    fn bad(&mut self, cx: &mut InputCtx, bad: BadInput) {
        cx.tally.records_in += bad.records;
        cx.tally.quarantined += bad.records;
        cx.tally.quarantine_rows += 1;
        if cx.samples.len() < SAMPLES {
            cx.samples.push(QuarantineSample {
                uri: cx.lineage.source_uri.clone(),
                bad: bad.clone(),
            });
        }
        self.quarantine.append(bad, &cx.lineage);
        self.buffered += 1;
    }

    fn on_event(&mut self, cx: &mut InputCtx, mut ev: Event<'_, '_>) {
        if let Some(map) = &cx.line_offsets {
            match &mut ev {
                Event::Bad(b) => b.position.offset = map.offset_of(b.position.line),
                Event::Record(_, pos) | Event::Metric(_, pos) => {
                    pos.offset = map.offset_of(pos.line)
                }
                Event::Ignored(_) => {}
            }
        }
        match ev {
            Event::Bad(b) => self.bad(cx, b),
            Event::Record(rec, pos) if rec.is_coverage() => {
                cx.tally.records_in += 1;
                cx.tally.coverage += 1;
                let date = time::day(rec.start.unwrap_or(0));
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
        // A large input is written in parts; the segment stays uncommitted until its end.
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
            .entry(time::day(m.time_ms.div_euclid(1000)))
            .or_default()
            .append(m, pos, self.ix, &cx.lineage);
        self.buffered += 1;
    }

    fn unmeterable(
        &mut self,
        cx: &mut InputCtx,
        rec: &FlowRecord<'_>,
        pos: Position,
        reason: String,
    ) {
        self.bad(
            cx,
            BadInput {
                position: pos,
                reason,
                raw: crate::decode::cut_raw(format!("{rec:?}").as_bytes()),
                records: 1,
            },
        );
    }

    fn record(&mut self, cx: &mut InputCtx, rec: &FlowRecord<'_>, pos: Position) {
        let (Some(bytes), Some(start), Some(end)) = (rec.bytes, rec.start, rec.end) else {
            let why = "record has no value (`-`) for bytes, start or end, so it cannot be metered";
            return self.unmeterable(cx, rec, pos, why.into());
        };
        if bytes > MAX_COUNT || rec.packets.unwrap_or(0) > MAX_COUNT {
            let why = format!("record claims {bytes} bytes or {} packets, more than the warehouse's counts hold (2^63 - 1); not a real flow", rec.packets.unwrap_or(0));
            return self.unmeterable(cx, rec, pos, why);
        }
        let t = &mut cx.tally;
        t.records_in += 1;
        t.bytes_in += bytes;
        let a = match attribute(rec, cx.account.as_deref(), self.ix) {
            Outcome::Filtered => {
                t.filtered += 1;
                t.bytes_filtered += bytes;
                return;
            }
            Outcome::Relevant(a) => a,
        };
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
