//! The pipeline end to end over local files and a local Delta warehouse: the balance for any
//! input, routing by content, and the commit protocol's replace, recovery and refusal rules.

use super::*;
use crate::fields::DEFAULT_FORMAT;
use crate::inventory::Inventory;
use crate::source::file::FileSource;
use crate::source::Location;
use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use linkmeter_warehouse::inputs::InputRow;
use linkmeter_warehouse::registry;
use linkmeter_warehouse::table::Change;
use proptest::prelude::*;
use std::io::Write;
use std::path::Path;

mod carry;
mod reattribute;

/// A local warehouse and the runtime its I/O runs on.
struct Wh {
    rt: tokio::runtime::Runtime,
    wh: Warehouse,
}

impl Wh {
    fn new(dir: &Path) -> Wh {
        Wh {
            rt: tokio::runtime::Runtime::new().unwrap(),
            wh: Warehouse::local(dir).unwrap(),
        }
    }

    /// One run (a run id of its own, as every real run has).
    fn ingest(&self, jobs: &[Job], ix: &Index, opts: &Options) -> Result<Report, IngestError> {
        let opts = Options {
            run_id: crate::run::run_id(None),
            ..opts.clone()
        };
        ingest(
            jobs,
            ix,
            &self.wh,
            self.rt.handle(),
            &opts,
            &Progress::default(),
        )
    }

    /// (rows, sum of an integer column) over the table's current version.
    fn sum(&self, table: &str, col: &str) -> (u64, u64) {
        let def = registry::by_name(table).unwrap();
        let Some(t) = self.rt.block_on(self.wh.read_table(def)).unwrap() else {
            return (0, 0);
        };
        let (mut rows, mut sum) = (0, 0);
        for b in self.rt.block_on(t.read_all()).unwrap() {
            rows += b.num_rows() as u64;
            let c = b.column_by_name(col).unwrap().as_primitive::<Int64Type>();
            // A null slot's value is unspecified once read back from Parquet.
            sum += (0..c.len())
                .filter(|&i| c.is_valid(i))
                .map(|i| c.value(i) as u64)
                .sum::<u64>();
        }
        (rows, sum)
    }

    fn files(&self, table: &str) -> Vec<linkmeter_warehouse::table::DataFile> {
        let def = registry::by_name(table).unwrap();
        match self.rt.block_on(self.wh.read_table(def)).unwrap() {
            Some(t) => t.files().unwrap(),
            None => Vec::new(),
        }
    }

    /// Rewrites the checkpoint rows (as an earlier linkmeter would have left them).
    fn edit_inputs(&self, f: impl Fn(&mut InputRow)) {
        self.rt.block_on(async {
            let t = self.wh.table(&registry::INPUTS).await.unwrap();
            let mut t = t.lock().await;
            let files = t.files().unwrap();
            let mut adds = Vec::new();
            for file in &files {
                let mut rows = Vec::new();
                for b in t.read(std::slice::from_ref(file)).await.unwrap() {
                    rows.extend(linkmeter_warehouse::inputs::rows(&b, "t").unwrap());
                }
                rows.iter_mut().for_each(&f);
                let seg = linkmeter_warehouse::segment::segment_of(file.name()).to_string();
                // A new name each time: a path removed and added in one commit is ambiguous.
                let v = t.version().unwrap_or_default();
                let name = format!("{seg}.{:05}.parquet", 90_000 + v * 100 + adds.len() as u64);
                adds.push(
                    t.write(&[], &name, &[linkmeter_warehouse::inputs::batch(&rows)])
                        .await
                        .unwrap(),
                );
            }
            t.commit(Change {
                adds,
                removes: files,
                ..Default::default()
            })
            .await
            .unwrap();
        });
    }
}

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
            fetch: None,
            line_offsets: None,
            format: Format::parse(DEFAULT_FORMAT).unwrap(),
            account: Some("111111111111".into()),
            content: Content::Auto,
        })
        .collect()
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
        let h = Wh::new(&wh);
        let opts = Options { flush_rows, ..Default::default() };
        let r = h.ingest(&jobs(&src), &ix(), &opts).unwrap();
        let t = &r.tally;
        prop_assert!(t.balanced(), "{t}");
        prop_assert_eq!(t.records_in, lines_total, "{}", t);
        let (rows, bytes) = h.sum("flows", "bytes");
        prop_assert_eq!(rows, t.flow_rows);
        prop_assert_eq!(u128::from(bytes), t.bytes_attributed + t.bytes_unattributed);
        let (_, quarantined) = h.sum("quarantine", "records");
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
    let h = Wh::new(&wh);
    let r = h.ingest(&jobs(&src), &ix(), &Options::default()).unwrap();
    assert_eq!(
        (r.tally.attributed, r.tally.filtered, r.tally.quarantined),
        (1, 1, 0),
        "{}",
        r.tally
    );
    // 3600 seconds starting at :50 → 600 s in one hour, 3000 in the next.
    assert_eq!(h.sum("flows", "bytes"), (2, 7200));
}

fn two_inputs(src: &Path) {
    std::fs::create_dir_all(src).unwrap();
    for (name, b) in [("a.log", 500), ("b.log", 700)] {
        std::fs::write(src.join(name), format!("{HEADER}\n2 unknown eni-1a 10.0.9.9 10.0.1.10 40000 14001 6 1 {b} {T0} {} ACCEPT OK\n", T0 + 5)).unwrap();
    }
}

#[test]
fn a_metric_stream_among_flow_logs_goes_to_broker_metrics_and_old_quarantines_are_reread() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in");
    two_inputs(&src);
    let metric = r#"{"metric_stream_name":"msk","account_id":"111111111111","region":"us-east-1","namespace":"AWS/Kafka","metric_name":"BytesInPerSec","dimensions":{"Cluster Name":"c1","Broker ID":"1"},"timestamp":1611929698000,"value":{"count":1.0,"sum":20.0,"max":20.0,"min":20.0},"unit":"Bytes/Second"}"#;
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(src.join("metrics.json.gz")).unwrap(),
        flate2::Compression::default(),
    );
    for _ in 0..3 {
        writeln!(gz, "{metric}").unwrap();
    }
    gz.finish().unwrap();
    let wh = dir.path().join("wh");
    let h = Wh::new(&wh);
    let run = || h.ingest(&jobs(&src), &ix(), &Options::default()).unwrap();
    let r = run();
    assert!(r.tally.balanced());
    assert_eq!(r.tally.inputs_read, 3);
    assert_eq!((r.tally.metrics, r.tally.quarantine_rows), (3, 0));
    // 20 bytes/s over a minute, three times.
    assert_eq!(h.sum("broker_metrics", "bytes"), (3, 3 * 1200));
    assert_eq!(
        h.sum("flows", "bytes").1,
        1200,
        "the flow logs beside it are ingested"
    );
    // What a generation-1 run left: the JSON input quarantined whole. It is read again
    // (once), the flow logs' rows are not doubled, and the run after reads nothing.
    h.edit_inputs(|r| {
        if r.source_uri.ends_with("metrics.json.gz") {
            (r.decoders, r.quarantined, r.flow_rows) = (1, r.records, 0);
        }
    });
    assert!(run().tally.inputs_read >= 1);
    assert_eq!(h.sum("broker_metrics", "bytes"), (3, 3 * 1200));
    assert_eq!(h.sum("flows", "bytes").1, 1200);
    assert_eq!(run().tally.inputs_read, 0);
    // An input that was partly good is not re-read for a new generation.
    h.edit_inputs(|r| r.decoders = 1);
    assert_eq!(run().tally.inputs_read, 0);
}

#[test]
fn opentelemetry_and_prometheus_inputs_are_told_by_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in");
    two_inputs(&src);
    // Names say nothing: the bytes decide.
    std::fs::write(
        src.join("stream-1"),
        include_bytes!("../decode/testdata/otel_stream.bin"),
    )
    .unwrap();
    std::fs::write(
        src.join("scrape-1"),
        "# TYPE kafka_server_BrokerTopicMetrics_Count untyped\nkafka_server_BrokerTopicMetrics_Count{name=\"BytesInPerSec\",cluster=\"c1\",broker_id=\"1\",} 5 1790812800000\nkafka_server_BrokerTopicMetrics_Count{name=\"MessagesInPerSec\",} 5 1790812800000\n",
    )
    .unwrap();
    let wh = dir.path().join("wh");
    let h = Wh::new(&wh);
    let r = h.ingest(&jobs(&src), &ix(), &Options::default()).unwrap();
    assert!(r.tally.balanced());
    // Two MSK points from OpenTelemetry and one counter from Prometheus; the DynamoDB
    // point and the MessagesInPerSec sample are read and filtered.
    assert_eq!((r.tally.metrics, r.tally.quarantine_rows), (3, 0));
    assert_eq!(h.sum("broker_metrics", "bytes"), (3, 90_000 + 180_000));
    assert_eq!(h.sum("flows", "bytes").1, 1200);
}

#[test]
fn changing_one_input_rereads_only_it_and_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in");
    two_inputs(&src);
    let wh = dir.path().join("wh");
    let h = Wh::new(&wh);
    let opts = Options {
        workers: 1,
        ..Default::default()
    };
    let run = || h.ingest(&jobs(&src), &ix(), &opts).unwrap();
    assert_eq!(run().tally.inputs_read, 2);
    assert_eq!(h.sum("flows", "bytes"), (2, 1200));
    assert_eq!(h.files("flows").len(), 1, "one segment, one file");
    std::fs::write(
        src.join("b.log"),
        format!(
            "{HEADER}\n2 unknown eni-1a 10.0.9.9 10.0.1.10 40000 14001 6 1 70 {T0} {} ACCEPT OK\n",
            T0 + 5
        ),
    )
    .unwrap();
    let r = run();
    assert_eq!(
        (
            r.tally.inputs_read,
            r.tally.inputs_skipped,
            r.superseded,
            r.carried
        ),
        (1, 1, 1, 1),
        "a.log shared b.log's segment: its rows are carried, only b.log is read"
    );
    assert_eq!(h.sum("flows", "bytes").1, 570);
    let r = run();
    assert_eq!((r.tally.inputs_read, r.tally.inputs_skipped), (0, 2));
    assert_eq!(h.sum("flows", "bytes").1, 570);
}

#[test]
fn a_segment_an_earlier_run_did_not_checkpoint_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in");
    two_inputs(&src);
    let wh = dir.path().join("wh");
    let h = Wh::new(&wh);
    // One worker: one segment, one file holds all rows.
    let opts = Options {
        workers: 1,
        ..Default::default()
    };
    let run = || h.ingest(&jobs(&src), &ix(), &opts).unwrap();
    run();
    let before = h.sum("flows", "bytes");
    // A run that died after committing a segment's rows to `flows` but before its
    // checkpoint: its rows are in the table, its segment is in no `inputs` row.
    let f = h.files("flows").remove(0);
    h.rt.block_on(async {
        let t = h.wh.read_table(&registry::FLOWS).await.unwrap().unwrap();
        let rows = t.read(std::slice::from_ref(&f)).await.unwrap();
        let mut seg = linkmeter_warehouse::segment::Segment::new("crashed-w0-00000".into());
        let part: Vec<(&str, String)> = f
            .partition
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone().unwrap()))
            .collect();
        seg.write(&h.wh, &registry::FLOWS, &part, &rows)
            .await
            .unwrap();
        seg.commit(&h.wh, &[]).await.unwrap();
    });
    assert_eq!(
        h.sum("flows", "bytes").1,
        before.1 * 2,
        "the crash left its rows visible"
    );
    let r = run();
    assert_eq!((r.rolled_back, r.tally.inputs_skipped), (1, 2));
    assert_eq!(h.sum("flows", "bytes"), before);
    assert!(h
        .files("flows")
        .iter()
        .all(|f| !f.name().starts_with("crashed")));
}

#[test]
fn a_renamed_source_does_not_count_twice_and_unreadable_inputs_keep_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in");
    two_inputs(&src);
    let wh = dir.path().join("wh");
    let h = Wh::new(&wh);
    let opts = Options {
        workers: 1,
        ..Default::default()
    };
    h.ingest(&jobs(&src), &ix(), &opts).unwrap();
    let renamed: Vec<Job> = FileSource::new("renamed", &src)
        .list()
        .unwrap()
        .into_iter()
        .map(|input| Job {
            input,
            fetch: None,
            line_offsets: None,
            format: Format::parse(DEFAULT_FORMAT).unwrap(),
            account: None,
            content: Content::Auto,
        })
        .collect();
    let r = h.ingest(&renamed, &ix(), &opts).unwrap();
    assert_eq!((r.tally.inputs_read, r.tally.inputs_skipped), (0, 2));
    assert_eq!(h.sum("flows", "bytes").1, 1200);
    // b.log becomes unreadable (a dangling path): its earlier rows stay.
    let mut js = jobs(&src);
    for j in js.iter_mut() {
        if j.input.key.ends_with("b.log") {
            j.input.location = Location::File(src.join("gone.log"));
        }
    }
    let r = h.ingest(&js, &ix(), &opts).unwrap();
    assert_eq!(r.tally.quarantined, 0);
    assert_eq!(h.sum("flows", "bytes").1, 1200);
}

/// Inputs handed over while the workers run give the rows and the balance that the same
/// inputs planned up front give; once the source is quiet, the workers commit what they hold
/// while the feed is still open, and the feed learns the key of every committed input.
#[test]
fn a_feed_gives_what_a_plan_gives_and_commits_when_the_source_goes_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in");
    two_inputs(&src);
    let ix = ix();
    let planned = Wh::new(&dir.path().join("planned"));
    let p = planned
        .ingest(&jobs(&src), &ix, &Options::default())
        .unwrap();
    let fed = Wh::new(&dir.path().join("fed"));
    let feed = Feed::new(1 << 20);
    let opts = Options {
        round: 1,
        ..Options::default()
    };
    let (f, mut keys) = std::thread::scope(|s| {
        let run = s.spawn(|| {
            ingest_feed(
                &feed,
                &ix,
                &fed.wh,
                fed.rt.handle(),
                &opts,
                &Progress::default(),
            )
        });
        for j in jobs(&src) {
            assert!(feed.push(j));
        }
        feed.set_quiet(true);
        let t0 = std::time::Instant::now();
        let mut keys = Vec::new();
        while keys.len() < 2 {
            // Not a speed limit: without the quiet commit this never ends.
            assert!(t0.elapsed().as_secs() < 60, "nothing committed while quiet");
            std::thread::sleep(std::time::Duration::from_millis(10));
            keys.extend(feed.take_committed());
        }
        feed.close();
        (run.join().unwrap().unwrap(), keys)
    });
    assert!(f.tally.balanced(), "{}", f.tally);
    assert_eq!(f.tally.inputs_read, p.tally.inputs_read);
    assert_eq!(f.tally.flow_rows, p.tally.flow_rows);
    assert_eq!(fed.sum("flows", "bytes"), planned.sum("flows", "bytes"));
    keys.sort();
    let mut want: Vec<String> = jobs(&src).into_iter().map(|j| j.input.key).collect();
    want.sort();
    assert_eq!(keys, want);
    assert!(!f.interrupted);
}
