//! One input into a worker's segment: open it, decode it (`decode::route`), attribute every
//! record (`attribute`), split traffic across clock hours and append the rows, keeping the
//! input's share of the balance.

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use linkmeter_warehouse::inputs::InputRow;
use linkmeter_warehouse::{time, Error};

use super::plan::Listed;
use super::writer::SegmentWriter;
use super::{Job, Progress, QuarantineSample, DECODERS, SAMPLES};
use crate::attribute::{attribute, Outcome};
use crate::decode::route::{self, RouteError};
use crate::decode::{BadInput, Event, FlowRecord, MetricPoint, Position};
use crate::hours::{split_hours, HOUR};
use crate::limits::cut_text;
use crate::rows::Lineage;
use crate::source::kafka::LineOffsets;
use crate::source::Location;
use crate::summary::Tally;

/// Counts bytes read for the progress display, remembers whether reading itself failed (as
/// opposed to the bytes failing to decode), and ends the input when a stop is requested.
struct Counting<'a, R> {
    inner: R,
    counter: &'a AtomicU64,
    counted: u64,
    failed: &'a std::cell::Cell<bool>,
    stop: Option<&'a AtomicBool>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            self.failed.set(true);
            return Err(std::io::Error::other("stop requested"));
        }
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
    tally: Tally,
    samples: Vec<QuarantineSample>,
    error: Option<Error>,
    /// Partitions this input writes to: (table, hour or day number).
    partitions: rustc_hash::FxHashSet<(u8, i64)>,
    /// Quarantine entries past `max_quarantine_rows`, written as one row at the end.
    overflow: Overflow,
}

/// Quarantine entries beyond the per-input limit: counted, not stored one by one.
#[derive(Default)]
struct Overflow {
    entries: u64,
    records: u64,
    first: Option<Position>,
}

/// Partition kinds in [`InputCtx::partitions`].
const FLOW_HOUR: u8 = 0;
const COVERAGE_DAY: u8 = 1;
const METRIC_DAY: u8 = 2;

/// Bytes a fresh set of column builders reserves (about 1,024 rows of every column).
const BUILDER_BYTES: usize = 256 << 10;

/// Why an input was not read to its end.
pub(super) enum Unfinished {
    /// The warehouse failed: the run fails.
    Failed(Error),
    /// A stop was requested while it was read: its segment is abandoned.
    Stopped,
}

impl From<Error> for Unfinished {
    fn from(e: Error) -> Self {
        Unfinished::Failed(e)
    }
}

impl SegmentWriter<'_> {
    /// Reads one input into the segment; returns its share of the balance and its first
    /// quarantine entries.
    pub(super) fn ingest_input(
        &mut self,
        job: &Job,
        listed: &Listed,
        inventory_hash: &str,
        progress: &Progress,
    ) -> Result<(Tally, Vec<QuarantineSample>), Unfinished> {
        let input = &job.input;
        let mut cx = InputCtx {
            line_offsets: job.line_offsets.clone(),
            lineage: Lineage {
                source_uri: input.uri.clone(),
                input_id: listed.id.clone(),
                run_id: self.run_id.clone(),
                context_account: input.account_hint.clone().or_else(|| job.account.clone()),
            },
            tally: Tally {
                inputs_read: 1,
                ..Default::default()
            },
            samples: Vec::new(),
            error: None,
            partitions: Default::default(),
            overflow: Overflow::default(),
        };
        let (mut content_hash, size) = match &listed.content {
            Some((h, s)) => (h.clone(), *s),
            None => (String::from("unreadable"), 0),
        };
        let failure = match &listed.content {
            None => Some("cannot read the file".to_string()),
            Some(_) => match self.decode_input(job, &mut cx, progress) {
                Ok(()) => None,
                Err(_) if self.stopped() => return Err(Unfinished::Stopped),
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
        self.close_overflow(&mut cx);
        if let Some(e) = cx.error.take() {
            return Err(e.into());
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
        let stop = self.stop.clone();
        let local = match &job.input.location {
            Location::File(p) => Some(p.as_path()),
            _ => None,
        };
        // A local file is read only up to its listed (and hashed) size: one that grows while it
        // is read is read again, whole, by the next run, as its content changed.
        let raw: Box<dyn Read + Send> = match (local, &job.fetch) {
            (Some(path), _) => Box::new(
                File::open(path)
                    .map_err(RouteError::Read)?
                    .take(job.input.size),
            ),
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
            stop: stop.as_deref(),
        };
        let stream = matches!(job.input.location, Location::Stream { .. });
        let bounds = self.limits.bounds(job.input.size);
        // A panic inside a decoder's libraries (the parquet crate asserts on some malformed
        // metadata) fails this input, not the run; one inside our own row handling may have
        // left a row half-built, so that one still ends the process.
        let in_sink = std::cell::Cell::new(false);
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            route::decode(
                route::Input {
                    reader: &mut reader,
                    declared: job.content,
                    stream,
                    format: &job.format,
                    local,
                    bounds,
                },
                &mut |ev| {
                    in_sink.set(true);
                    self.on_event(cx, ev);
                    in_sink.set(false);
                },
            )
        }));
        let res = match res {
            Ok(r) => r,
            Err(p) if in_sink.get() => std::panic::resume_unwind(p),
            // Recorded as unread, like a read error: once the bug is fixed, the next run
            // reads the input whole.
            Err(p) => Err(RouteError::Read(std::io::Error::other(format!(
                "the decoder failed on this input ({}); this is a linkmeter bug: please report it with the file",
                crate::decode::panic_text(p.as_ref())
            )))),
        };
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

    fn bad(&mut self, cx: &mut InputCtx, mut bad: BadInput) {
        cx.tally.records_in += bad.records;
        cx.tally.quarantined += bad.records;
        if cx.tally.quarantine_rows >= self.limits.max_quarantine_rows {
            let o = &mut cx.overflow;
            o.entries += 1;
            o.records += bad.records;
            o.first.get_or_insert(bad.position);
            return;
        }
        let max = self.limits.max_text_bytes;
        if bad.reason.len() > max {
            bad.reason = cut_text(&bad.reason, max).into_owned();
        }
        if bad.raw.len() > max {
            bad.raw = cut_text(&bad.raw, max).into_owned();
        }
        cx.tally.quarantine_rows += 1;
        self.buffered_bytes += 128 + bad.reason.len() + bad.raw.len() + cx.lineage.source_uri.len();
        if cx.samples.len() < SAMPLES {
            cx.samples.push(QuarantineSample {
                uri: cx.lineage.source_uri.clone(),
                bad: bad.clone(),
            });
        }
        self.quarantine.append(bad, &cx.lineage);
        self.buffered += 1;
    }

    /// Writes the one row that stands for the entries past the quarantine limit.
    fn close_overflow(&mut self, cx: &mut InputCtx) {
        let o = std::mem::take(&mut cx.overflow);
        let Some(first) = o.first else { return };
        let bad = BadInput {
            position: first,
            reason: format!(
                "{} more bad entries ({} records) after the first {} of this input (max_quarantine_rows); the first of them is here",
                o.entries, o.records, self.limits.max_quarantine_rows
            ),
            raw: String::new(),
            records: o.records,
        };
        cx.tally.quarantine_rows += 1;
        self.quarantine.append(bad, &cx.lineage);
        self.buffered += 1;
    }

    /// Whether the input may write to `n` partitions `keys` (of `kind`) besides those it has;
    /// records past the limit are quarantined by the caller.
    fn admit(&self, cx: &mut InputCtx, kind: u8, keys: impl Iterator<Item = i64> + Clone) -> bool {
        let new = keys
            .clone()
            .filter(|k| !cx.partitions.contains(&(kind, *k)))
            .count();
        if new == 0 {
            return true;
        }
        if cx.partitions.len() + new > self.limits.max_partitions_per_input {
            return false;
        }
        cx.partitions.extend(keys.map(|k| (kind, k)));
        true
    }

    fn too_many_partitions(&mut self, cx: &mut InputCtx, rec: &FlowRecord<'_>, pos: Position) {
        let why = format!(
            "the input already writes {} hours and days (max_partitions_per_input); this record would add more",
            cx.partitions.len()
        );
        self.unmeterable(cx, rec, pos, why);
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
                let start = rec.start.unwrap_or(0);
                if !self.admit(cx, COVERAGE_DAY, std::iter::once(start.div_euclid(86_400))) {
                    return self.too_many_partitions(cx, rec, pos);
                }
                cx.tally.records_in += 1;
                cx.tally.coverage += 1;
                let date = time::day(start);
                if !self.coverage.contains_key(&date) {
                    self.buffered_bytes += BUILDER_BYTES;
                }
                let b = self.coverage.entry(date).or_default();
                b.append(rec, pos, self.ix, &cx.lineage);
                self.buffered += 1;
                self.buffered_bytes += 256 + text_bytes(rec);
            }
            Event::Record(rec, pos) => self.record(cx, rec, pos),
            Event::Metric(m, pos) => self.metric(cx, m, pos),
            Event::Ignored(_) => {
                cx.tally.records_in += 1;
                cx.tally.filtered += 1;
            }
        }
        // A large input is written in parts; the segment stays uncommitted until its end.
        if (self.buffered >= self.flush_rows || self.buffered_bytes >= self.limits.buffer_bytes)
            && cx.error.is_none()
        {
            if let Err(e) = self.flush() {
                cx.error = Some(e);
            }
        }
    }

    /// A datapoint of another namespace (a stream carrying EC2 metrics too) is read and
    /// filtered; MSK's are kept whole.
    fn metric(&mut self, cx: &mut InputCtx, m: &MetricPoint, pos: Position) {
        if m.namespace != "AWS/Kafka" {
            cx.tally.records_in += 1;
            cx.tally.filtered += 1;
            return;
        }
        let secs = m.time_ms.div_euclid(1000);
        if !self.admit(cx, METRIC_DAY, std::iter::once(secs.div_euclid(86_400))) {
            let reason = format!(
                "the input already writes {} hours and days (max_partitions_per_input); this datapoint would add more",
                cx.partitions.len()
            );
            let raw = format!("{} {} at {} ms", m.namespace, m.metric, m.time_ms);
            return self.bad(
                cx,
                BadInput {
                    position: pos,
                    reason,
                    raw,
                    records: 1,
                },
            );
        }
        cx.tally.records_in += 1;
        cx.tally.metrics += 1;
        let date = time::day(secs);
        if !self.metrics.contains_key(&date) {
            self.buffered_bytes += BUILDER_BYTES;
        }
        let b = self.metrics.entry(date).or_default();
        b.append(m, pos, self.ix, &cx.lineage);
        self.buffered += 1;
        self.buffered_bytes += 512 + m.dimensions.len() + m.metric.len();
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
        // The decoders refuse counts over 2^48 (`decode::check_record`), so every count and
        // every sum of a run's shares fits the warehouse's columns.
        let span = end.saturating_sub(start);
        if span > self.limits.max_record_span_secs {
            let why = format!(
                "record spans {span} s (start {start}, end {end}), longer than the {} s limit (max_record_span_secs); AWS records cover at most minutes",
                self.limits.max_record_span_secs
            );
            return self.unmeterable(cx, rec, pos, why);
        }
        let (h0, h1) = (start.div_euclid(HOUR), end.div_euclid(HOUR));
        if !self.admit(cx, FLOW_HOUR, h0..=h1) {
            return self.too_many_partitions(cx, rec, pos);
        }
        let t = &mut cx.tally;
        t.records_in += 1;
        t.bytes_in += u128::from(bytes);
        let a = match attribute(rec, cx.lineage.context_account.as_deref(), self.ix) {
            Outcome::Filtered => {
                t.filtered += 1;
                t.bytes_filtered += u128::from(bytes);
                return;
            }
            Outcome::Relevant(a) => a,
        };
        match a.reason {
            None => t.attributed += 1,
            Some(r) => {
                t.unattributed += 1;
                // Looked up before inserting: a String per record measured in the profile.
                let e = match t.by_reason.get_mut(r.as_str()) {
                    Some(e) => e,
                    None => t.by_reason.entry(r.as_str().to_string()).or_default(),
                };
                e.0 += 1;
                e.1 += u128::from(bytes);
            }
        }
        let (ix, lineage, flows) = (self.ix, &cx.lineage, &mut self.flows);
        let (mut rows, mut fresh) = (0usize, 0usize);
        split_hours(start, end, bytes, rec.packets.unwrap_or(0), |share| {
            flows
                .entry(share.hour)
                .or_insert_with(|| {
                    fresh += 1;
                    Default::default()
                })
                .append(rec, &a, &share, pos, ix, lineage);
            if a.reason.is_none() {
                t.bytes_attributed += u128::from(share.bytes);
            } else {
                t.bytes_unattributed += u128::from(share.bytes);
            }
            rows += 1;
        });
        t.flow_rows += rows as u64;
        self.buffered += rows;
        self.buffered_bytes += fresh * BUILDER_BYTES + rows * (400 + text_bytes(rec));
    }
}

/// Bytes of text a record brings into a row (the rest of a row is fixed-size).
fn text_bytes(rec: &FlowRecord<'_>) -> usize {
    [
        rec.account_id,
        rec.interface_id,
        rec.action,
        rec.log_status,
        rec.vpc_id,
        rec.subnet_id,
        rec.region,
        rec.az_id,
    ]
    .iter()
    .map(|s| s.map_or(0, str::len))
    .sum::<usize>()
        + rec.extra.len()
}
