//! Ingest: source → decode → attribute → warehouse, one input at a time per worker.
//!
//! Per input, in this order: hash the content; skip when the `inputs` checkpoint shows the same
//! content attributed with the same inventory; otherwise decode, attribute and buffer rows;
//! on the first write remove what the input produced last time; write partitions; write the
//! checkpoint last. A crash at any point leaves no half file, and a rerun converges.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::attribute::{attribute, Outcome};
use crate::decode::flow_parquet::{ParquetDecoder, PARQUET_MAGIC};
use crate::decode::flow_text::TextDecoder;
use crate::decode::{BadInput, Decoder, Event, Position};
use crate::fields::Format;
use crate::hours::split_hours;
use crate::inventory::Index;
use crate::source::InputRef;
use crate::summary::Tally;
use crate::warehouse::builders::{CoverageBuilder, FlowsBuilder, Lineage, QuarantineBuilder};
use crate::warehouse::tables::{read_manifest, write_manifest, InputManifest};
use crate::warehouse::{Sink, WarehouseError};

/// Errors that stop a run (bad input never does: it is quarantined).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The warehouse could not be written or read.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
}

/// One input with the settings of the source it came from.
#[derive(Debug, Clone)]
pub struct Job {
    /// The input.
    pub input: InputRef,
    /// Format for text files without a header line.
    pub format: Format,
    /// Account to assume when neither the record nor the path names one.
    pub account: Option<String>,
}

/// Run-wide settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Identifies this run in lineage columns and the `runs` table.
    pub run_id: String,
    /// Re-ingest inputs even when their checkpoint says they are unchanged.
    pub force: bool,
    /// Worker threads (inputs are processed in parallel, one per worker).
    pub workers: usize,
    /// Buffered rows per input before a part file is written (bounds memory).
    pub flush_rows: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            run_id: "run".into(),
            force: false,
            workers: 2,
            flush_rows: 500_000,
        }
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
}

/// A quarantine entry with the input it came from, for the run summary.
#[derive(Debug, Clone)]
pub struct QuarantineSample {
    /// The input's URI.
    pub uri: String,
    /// The entry.
    pub bad: BadInput,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// The conservation balance.
    pub tally: Tally,
    /// The first quarantine entries (up to 20), to show the user.
    pub samples: Vec<QuarantineSample>,
}

/// Ingests every job into the warehouse.
pub fn ingest(
    jobs: &[Job],
    ix: &Index,
    sink: &dyn Sink,
    opts: &Options,
    progress: &Progress,
) -> Result<Report, IngestError> {
    let next = AtomicUsize::new(0);
    let report = Mutex::new(Report::default());
    let failure: Mutex<Option<IngestError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..opts.workers.max(1) {
            scope.spawn(|| loop {
                if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { return };
                match ingest_one(job, ix, sink, opts, progress) {
                    Ok((tally, samples)) => {
                        let mut r = report.lock().expect("no worker panics while holding it");
                        r.tally.merge(&tally);
                        let room = 20usize.saturating_sub(r.samples.len());
                        r.samples.extend(samples.into_iter().take(room));
                    }
                    Err(e) => {
                        *failure.lock().expect("no worker panics while holding it") = Some(e);
                        return;
                    }
                }
                progress.inputs_done.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("workers finished") {
        return Err(e);
    }
    Ok(report.into_inner().expect("workers finished"))
}

/// Stable id of an input: names its output files.
pub fn input_id(key: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(key.as_bytes()))
}

fn hash_file(path: &std::path::Path) -> std::io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((format!("{:032x}", h.digest128()), size))
}

struct Counting<'a, R> {
    inner: R,
    counter: &'a AtomicU64,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

fn date_of(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}

/// Everything buffered for one input, and what it has written so far.
struct InputState<'a> {
    ix: &'a Index,
    sink: &'a dyn Sink,
    lineage: Lineage,
    account: Option<String>,
    flows: BTreeMap<i64, FlowsBuilder>,
    coverage: BTreeMap<String, CoverageBuilder>,
    quarantine: QuarantineBuilder,
    buffered: usize,
    flush_rows: usize,
    seq: u32,
    files: Vec<String>,
    old_files: Option<Vec<String>>,
    tally: Tally,
    samples: Vec<QuarantineSample>,
    error: Option<WarehouseError>,
}

impl InputState<'_> {
    fn bad(&mut self, bad: BadInput) {
        self.tally.records_in += bad.records;
        self.tally.quarantined += bad.records;
        self.tally.quarantine_rows += 1;
        if self.samples.len() < 20 {
            self.samples.push(QuarantineSample {
                uri: self.lineage.source_uri.clone(),
                bad: bad.clone(),
            });
        }
        self.quarantine.append(bad);
        self.buffered += 1;
    }

    fn on_event(&mut self, ev: Event<'_, '_>) {
        match ev {
            Event::Bad(b) => self.bad(b),
            Event::Record(rec, pos) => {
                if rec.is_coverage() {
                    self.tally.records_in += 1;
                    self.tally.coverage += 1;
                    let date = date_of(rec.start.unwrap_or(0));
                    self.coverage
                        .entry(date)
                        .or_default()
                        .append(rec, pos, self.ix, &self.lineage);
                    self.buffered += 1;
                } else {
                    self.record(rec, pos);
                }
            }
        }
        if self.buffered >= self.flush_rows {
            self.flush();
        }
    }

    fn record(&mut self, rec: &crate::decode::FlowRecord<'_>, pos: Position) {
        let (Some(bytes), Some(start), Some(end)) = (rec.bytes, rec.start, rec.end) else {
            self.bad(BadInput {
                position: pos,
                reason:
                    "record has no value (`-`) for bytes, start or end, so it cannot be metered"
                        .into(),
                raw: crate::decode::cut_raw(format!("{rec:?}").as_bytes()),
                records: 1,
            });
            return;
        };
        let t = &mut self.tally;
        t.records_in += 1;
        t.bytes_in += bytes;
        match attribute(rec, self.account.as_deref(), self.ix) {
            Outcome::Filtered => {
                t.filtered += 1;
                t.bytes_filtered += bytes;
            }
            Outcome::Relevant(a) => {
                match a.reason {
                    None => t.attributed += 1,
                    Some(r) => {
                        t.unattributed += 1;
                        let e = t.by_reason.entry(r.as_str().to_string()).or_default();
                        e.0 += 1;
                        e.1 += bytes;
                    }
                }
                let (ix, lineage, flows) = (self.ix, &self.lineage, &mut self.flows);
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
    }

    fn put(&mut self, path: String, batch: arrow::array::RecordBatch) {
        if self.error.is_some() {
            return;
        }
        // Old output goes before the first new file lands: briefly missing beats counted twice.
        if let Some(old) = self.old_files.take() {
            for f in old {
                if let Err(e) = self.sink.delete(&f) {
                    self.error = Some(e);
                    return;
                }
            }
        }
        match self.sink.put(&path, &[batch]) {
            Ok(_) => self.files.push(path),
            Err(e) => self.error = Some(e),
        }
    }

    fn flush(&mut self) {
        let seq = self.seq;
        self.seq += 1;
        let id = self.lineage.input_id.clone();
        let flows = std::mem::take(&mut self.flows);
        for (hour, mut b) in flows {
            if b.is_empty() {
                continue;
            }
            let t = DateTime::<Utc>::from_timestamp(hour, 0).unwrap_or_default();
            let path = format!(
                "flows/date={}/hour={}/{id}-{seq:04}.parquet",
                t.format("%Y-%m-%d"),
                t.format("%H")
            );
            self.put(path, b.finish());
        }
        let coverage = std::mem::take(&mut self.coverage);
        for (date, mut b) in coverage {
            if !b.is_empty() {
                self.put(
                    format!("coverage/date={date}/{id}-{seq:04}.parquet"),
                    b.finish(),
                );
            }
        }
        if !self.quarantine.is_empty() {
            let batch = self.quarantine.finish(&self.lineage, now_micros());
            self.put(format!("quarantine/{id}-{seq:04}.parquet"), batch);
        }
        self.buffered = 0;
    }
}

fn ingest_one(
    job: &Job,
    ix: &Index,
    sink: &dyn Sink,
    opts: &Options,
    progress: &Progress,
) -> Result<(Tally, Vec<QuarantineSample>), IngestError> {
    let input = &job.input;
    let id = input_id(&input.key);
    let old = read_manifest(sink, &id)?;
    let inventory_hash = format!("{:016x}", ix.hash);
    let hashed = hash_file(&input.path);
    if let (Ok((hash, _)), Some(m), false) = (&hashed, &old, opts.force) {
        if *hash == m.content_hash && m.inventory_hash == inventory_hash {
            progress.bytes_read.fetch_add(input.size, Ordering::Relaxed);
            return Ok((
                Tally {
                    inputs_skipped: 1,
                    ..Default::default()
                },
                Vec::new(),
            ));
        }
    }
    let mut st = InputState {
        ix,
        sink,
        lineage: Lineage {
            source_uri: input.uri.clone(),
            input_id: id.clone(),
            run_id: opts.run_id.clone(),
        },
        account: input.account_hint.clone().or_else(|| job.account.clone()),
        flows: BTreeMap::new(),
        coverage: BTreeMap::new(),
        quarantine: QuarantineBuilder::default(),
        buffered: 0,
        flush_rows: opts.flush_rows.max(1),
        seq: 0,
        files: Vec::new(),
        old_files: Some(old.map(|m| m.files).unwrap_or_default()),
        tally: Tally {
            inputs_read: 1,
            ..Default::default()
        },
        samples: Vec::new(),
        error: None,
    };
    let (content_hash, size) = match hashed {
        Ok(h) => h,
        Err(e) => {
            st.bad(BadInput {
                position: Position::default(),
                reason: format!("cannot read the file: {e}"),
                raw: String::new(),
                records: 1,
            });
            ("unreadable".to_string(), 0)
        }
    };
    if content_hash != "unreadable" {
        if let Err(e) = decode_file(job, &mut st, progress) {
            st.bad(BadInput {
                position: Position::default(),
                reason: e,
                raw: String::new(),
                records: 1,
            });
        }
    }
    st.flush();
    if let Some(e) = st.error.take() {
        return Err(e.into());
    }
    if let Some(old) = st.old_files.take() {
        // Nothing new was written (an empty input): still remove the previous output.
        for f in old {
            sink.delete(&f)?;
        }
    }
    progress
        .records
        .fetch_add(st.tally.records_in, Ordering::Relaxed);
    write_manifest(
        sink,
        &InputManifest {
            input_id: id,
            input_key: input.key.clone(),
            source_uri: input.uri.clone(),
            content_hash,
            inventory_hash,
            size,
            records: st.tally.records_in,
            flow_rows: st.tally.flow_rows,
            quarantined: st.tally.quarantined,
            files: st.files.clone(),
            run_id: opts.run_id.clone(),
            ingested_at_micros: now_micros(),
        },
    )?;
    Ok((st.tally, st.samples))
}

fn decode_file(job: &Job, st: &mut InputState<'_>, progress: &Progress) -> Result<(), String> {
    let path = &job.input.path;
    let mut f = File::open(path).map_err(|e| format!("cannot open the file: {e}"))?;
    let mut head = [0u8; 4];
    let n = f
        .read(&mut head)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    f.seek(SeekFrom::Start(0))
        .map_err(|e| format!("cannot read the file: {e}"))?;
    let mut sink = |ev: Event<'_, '_>| st.on_event(ev);
    let res = if n == 4 && &head == PARQUET_MAGIC {
        let r = ParquetDecoder::new(f).decode(&mut sink);
        progress
            .bytes_read
            .fetch_add(job.input.size, Ordering::Relaxed);
        r
    } else {
        TextDecoder::new(
            Counting {
                inner: f,
                counter: &progress.bytes_read,
            },
            job.format.clone(),
        )
        .decode(&mut sink)
    };
    res.map(|_| ()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::DEFAULT_FORMAT;
    use crate::inventory::Inventory;
    use crate::source::file::FileSource;
    use crate::source::Source;
    use crate::warehouse::LocalSink;
    use arrow::array::AsArray;
    use arrow::datatypes::UInt64Type;
    use proptest::prelude::*;
    use std::io::Write;
    use std::path::Path;

    fn ix() -> Index {
        Inventory::from_toml(crate::inventory::tests::SAMPLE, "t").unwrap()
    }

    fn jobs(dir: &Path) -> Vec<Job> {
        FileSource::new("t", dir)
            .list()
            .unwrap()
            .into_iter()
            .map(|input| Job {
                input,
                format: Format::parse(DEFAULT_FORMAT).unwrap(),
                account: Some("111111111111".into()),
            })
            .collect()
    }

    fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    out.extend(files_under(&e.path()));
                } else {
                    out.push(e.path());
                }
            }
        }
        out
    }

    /// Sums a u64 column over every Parquet file of a table.
    fn table_sum(wh: &Path, table: &str, col: &str) -> (u64, u64) {
        let sink = LocalSink::open(wh).unwrap();
        let (mut rows, mut sum) = (0, 0);
        for f in files_under(&wh.join(table)) {
            let rel = f.strip_prefix(wh).unwrap().to_string_lossy().to_string();
            for b in sink.get(&rel).unwrap().unwrap() {
                rows += b.num_rows() as u64;
                sum += b
                    .column_by_name(col)
                    .unwrap()
                    .as_primitive::<UInt64Type>()
                    .values()
                    .iter()
                    .sum::<u64>();
            }
        }
        (rows, sum)
    }

    const HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
    // 2026-10-01T09:50:00Z: records of up to 1.5 h cross one or two hour boundaries.
    const T0: i64 = 1_791_971_400 - 86_400 * 13 + 3000;

    fn line_strategy() -> impl Strategy<Value = String> {
        let t = T0..T0 + 7200;
        prop_oneof![
            // endpoint-side, both directions
            (t.clone(), 0i64..5400, 0u64..2_000_000_000_000, 14001u16..14100).prop_map(|(s, l, b, p)| format!("2 unknown eni-1a 10.0.9.9 10.0.1.10 40000 {p} 6 {} {b} {s} {} ACCEPT OK", b / 1000, s + l)),
            (t.clone(), 0i64..600, any::<u32>()).prop_map(|(s, l, b)| format!("2 unknown eni-1b 10.0.2.10 10.0.9.9 14002 40000 6 9 {b} {s} {} ACCEPT OK", s + l)),
            // client-side, matched by IP within the context account
            (t.clone(), 0i64..600, any::<u32>()).prop_map(|(s, l, b)| format!("2 111111111111 eni-c1 10.0.9.9 10.0.1.10 40000 14001 6 9 {b} {s} {} ACCEPT OK", s + l)),
            // rejected, wrong port, unknown endpoint
            (t.clone(), any::<u16>()).prop_map(|(s, b)| format!("2 111111111111 eni-c1 10.0.9.9 10.0.1.10 40000 14001 6 1 {b} {s} {} REJECT OK", s + 5)),
            (t.clone(), any::<u16>()).prop_map(|(s, b)| format!("2 unknown eni-1a 10.0.9.9 10.0.1.10 40000 9098 6 1 {b} {s} {} ACCEPT OK", s + 5)),
            (t.clone(), any::<u16>()).prop_map(|(s, b)| format!("2 111111111111 eni-c1 10.0.9.9 10.7.7.7 40000 14005 6 1 {b} {s} {} ACCEPT OK", s + 5)),
            // noise
            (t.clone(), any::<u32>()).prop_map(|(s, b)| format!("2 111111111111 eni-c1 10.0.9.9 10.9.9.9 40000 443 6 1 {b} {s} {} ACCEPT OK", s + 5)),
            // coverage
            t.clone().prop_map(|s| format!("2 unknown eni-1a - - - - - - - {s} {} - SKIPDATA", s + 600)),
            // traffic without bytes, bad numbers, garbage
            t.clone().prop_map(|s| format!("2 unknown eni-1a 10.0.9.9 10.0.1.10 40000 14001 6 - - {s} {} ACCEPT OK", s + 5)),
            Just("2 unknown eni-1a 10.0.9.9 10.0.1.10 40000 14001 6 1 18446744073709551616 1 2 ACCEPT OK".to_string()),
            "[ -~]{1,60}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// For any input: in = attributed + unattributed + filtered + coverage + quarantined,
        /// and the bytes written to `flows` are exactly the bytes counted as kept.
        #[test]
        fn run_equation_holds_for_any_input(
            files in proptest::collection::vec((proptest::collection::vec(line_strategy(), 0..40), any::<bool>()), 1..4),
            flush_rows in 1usize..50,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let src = dir.path().join("in");
            std::fs::create_dir_all(&src).unwrap();
            let mut lines_total = 0u64;
            for (i, (lines, gz)) in files.iter().enumerate() {
                let text = format!("{HEADER}\n{}\n", lines.join("\n"));
                lines_total += lines.iter().filter(|l| !l.trim().is_empty()).count() as u64;
                let p = src.join(format!("f{i}.log"));
                if *gz {
                    let mut e = flate2::write::GzEncoder::new(std::fs::File::create(&p).unwrap(), flate2::Compression::fast());
                    e.write_all(text.as_bytes()).unwrap();
                    e.finish().unwrap();
                } else {
                    std::fs::write(&p, text).unwrap();
                }
            }
            let wh = dir.path().join("wh");
            let sink = LocalSink::open(&wh).unwrap();
            let opts = Options { flush_rows, ..Default::default() };
            let r = ingest(&jobs(&src), &ix(), &sink, &opts, &Progress::default()).unwrap();
            let t = &r.tally;
            prop_assert!(t.balanced(), "{t}");
            prop_assert_eq!(t.records_in, lines_total, "{}", t);
            let (rows, bytes) = table_sum(&wh, "flows", "bytes");
            prop_assert_eq!(rows, t.flow_rows);
            prop_assert_eq!(bytes, t.bytes_attributed + t.bytes_unattributed);
            let (_, quarantined) = table_sum(&wh, "quarantine", "records");
            prop_assert_eq!(quarantined, t.quarantined);
        }
    }

    #[test]
    fn parquet_input_goes_through_the_same_path() {
        use arrow::array::{Int64Array, RecordBatch, StringArray};
        use arrow::datatypes::{DataType, Field, Schema};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in");
        std::fs::create_dir_all(&src).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("interface_id", DataType::Utf8, true),
            Field::new("srcaddr", DataType::Utf8, true),
            Field::new("dstaddr", DataType::Utf8, true),
            Field::new("srcport", DataType::Int64, true),
            Field::new("dstport", DataType::Int64, true),
            Field::new("bytes", DataType::Int64, true),
            Field::new("start", DataType::Int64, true),
            Field::new("end", DataType::Int64, true),
            Field::new("action", DataType::Utf8, true),
            Field::new("log_status", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["eni-1a", "eni-zz"])),
                Arc::new(StringArray::from(vec!["10.0.9.9", "10.5.5.5"])),
                Arc::new(StringArray::from(vec!["10.0.1.10", "10.6.6.6"])),
                Arc::new(Int64Array::from(vec![40000, 40000])),
                Arc::new(Int64Array::from(vec![14003, 443])),
                Arc::new(Int64Array::from(vec![7200, 99])),
                Arc::new(Int64Array::from(vec![T0, T0])),
                Arc::new(Int64Array::from(vec![T0 + 3599, T0 + 1])),
                Arc::new(StringArray::from(vec!["ACCEPT", "ACCEPT"])),
                Arc::new(StringArray::from(vec!["OK", "OK"])),
            ],
        )
        .unwrap();
        // Named like AWS's Parquet delivery; detected by content, not by the name.
        let f = std::fs::File::create(
            src.join("123_vpcflowlogs_us-east-1_fl-1_20261001T0950Z_ab.log.parquet"),
        )
        .unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let wh = dir.path().join("wh");
        let sink = LocalSink::open(&wh).unwrap();
        let r = ingest(
            &jobs(&src),
            &ix(),
            &sink,
            &Options::default(),
            &Progress::default(),
        )
        .unwrap();
        assert_eq!(
            (r.tally.attributed, r.tally.filtered, r.tally.quarantined),
            (1, 1, 0),
            "{}",
            r.tally
        );
        // 3600 seconds starting at :50 → 600 s in one hour, 3000 in the next.
        assert_eq!(table_sum(&wh, "flows", "bytes"), (2, 7200));
    }

    #[test]
    fn changed_inventory_reattributes_unchanged_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("a.log"), format!("{HEADER}\n2 unknown eni-1a 10.0.9.9 10.0.1.10 40000 14001 6 1 500 {T0} {} ACCEPT OK\n", T0 + 5)).unwrap();
        let wh = dir.path().join("wh");
        let sink = LocalSink::open(&wh).unwrap();
        let run = |ix: &Index| {
            ingest(
                &jobs(&src),
                ix,
                &sink,
                &Options::default(),
                &Progress::default(),
            )
            .unwrap()
            .tally
        };
        assert_eq!(run(&ix()).inputs_read, 1);
        assert_eq!(run(&ix()).inputs_skipped, 1);
        // eni-1a removed from the inventory: the same file must be re-read, now unattributed.
        let text = crate::inventory::tests::SAMPLE.replace(
            "{ id = \"eni-1a\", az_id = \"use1-az1\", ips = [\"10.0.1.10\"] },",
            "",
        );
        let ix2 = Inventory::from_toml(&text, "t2").unwrap();
        let t = run(&ix2);
        assert_eq!(
            (t.inputs_read, t.attributed, t.unattributed),
            (1, 0, 1),
            "{t}"
        );
        assert_eq!(
            table_sum(&wh, "flows", "bytes"),
            (1, 500),
            "replaced, not added"
        );
    }
}
