//! End to end against a real Kafka-protocol broker (Tansu, started by `.ci/test`; its address
//! is in `KAFKA_BOOTSTRAP`): a 4-partition topic filled with generated flow-log lines (one to
//! three per message) and poison messages, consumed in batch mode by the real binary, and
//! compared with the same lines ingested from local files; reruns, appended messages, and runs
//! killed with SIGKILL at random points.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use linkmeter_test_support::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

pub(super) const PARTITIONS: i32 = 4;

pub(super) fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP").expect(
        "KAFKA_BOOTSTRAP is not set: run the tests with .ci/test, which starts a Kafka-protocol broker",
    )
}

pub(super) fn unique(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("lm-{tag}-{}-{}", std::process::id(), n % 1_000_000_000)
}

/// Extra client options (TLS) for the test's own producer and admin client.
pub(super) type Opts<'a> = &'a [(&'a str, String)];

pub(super) fn client(bootstrap: &str, opts: Opts) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    for (k, v) in opts {
        c.set(*k, v);
    }
    c
}

pub(super) fn create_topic(bootstrap: &str, opts: Opts, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = client(bootstrap, opts).create().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let res = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap();
    for r in res {
        r.unwrap();
    }
}

/// Sends messages (partition, payload) in order and waits until all are acknowledged.
pub(super) fn produce(topic: &str, msgs: &[(i32, Vec<u8>)]) {
    produce_to(&bootstrap(), &[], topic, msgs)
}

pub(super) fn produce_to(bootstrap: &str, opts: Opts, topic: &str, msgs: &[(i32, Vec<u8>)]) {
    let p: BaseProducer = client(bootstrap, opts)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for (part, payload) in msgs {
        loop {
            match p.send(
                BaseRecord::<(), _>::to(topic)
                    .partition(*part)
                    .payload(payload),
            ) {
                Ok(()) => break,
                Err((e, _)) => {
                    assert!(
                        matches!(
                            e,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ),
                        "{e}"
                    );
                    p.poll(Duration::from_millis(50));
                }
            }
        }
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// Default-format (v2) data lines of a generated estate.
pub(super) fn v2_lines(estate: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for f in walk(&estate.join("flowlogs")) {
        let text = gunzip(&f);
        if text.starts_with("version account-id interface-id") {
            out.extend(text.lines().skip(1).map(str::to_string));
        }
    }
    out
}

/// Groups lines into messages of 1–3 lines spread over the partitions.
pub(super) fn messages(lines: &[String]) -> Vec<(i32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut k = 0usize;
    while i < lines.len() {
        let n = 1 + k % 3;
        let body = lines[i..(i + n).min(lines.len())].join("\n");
        out.push(((k % PARTITIONS as usize) as i32, body.into_bytes()));
        i += n;
        k += 1;
    }
    out
}

pub(super) struct Setup {
    pub(super) _tmp: tempfile::TempDir,
    pub(super) dir: PathBuf,
    pub(super) topic: String,
    pub(super) lines: Vec<String>,
    pub(super) bootstrap: String,
}

pub(super) const POISON: [&[u8]; 3] = [
    b"\xff\xfe\x00 not text at all",
    b"2 123456789012 eni-0badbadbadbadbad0 10.1.1.1",
    b"{\"metric_name\":\"BytesInPerSec\"}",
];

pub(super) fn setup(tag: &str) -> Setup {
    setup_on(tag, &bootstrap(), &[])
}

pub(super) fn setup_on(tag: &str, bootstrap: &str, opts: Opts) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "estate", "--days 1 --accounts 6 --instances 1 --noise 1");
    let dir = d.join("estate");
    let lines = v2_lines(&dir);
    assert!(lines.len() > 5000, "{}", lines.len());
    let topic = unique(tag);
    create_topic(bootstrap, opts, &topic);
    // Poison first, at offsets 0, 1, 2 of partition 0.
    let mut msgs: Vec<(i32, Vec<u8>)> = POISON.iter().map(|p| (0, p.to_vec())).collect();
    msgs.extend(messages(&lines));
    produce_to(bootstrap, opts, &topic, &msgs);
    // The same lines as local files (no header): the reference ingest.
    let files = dir.join("as-files");
    std::fs::create_dir_all(&files).unwrap();
    // (Poison goes last: a file whose first line is binary is rejected whole, rightly, while
    // a Kafka message is judged alone.)
    let mut ordered = msgs[POISON.len()..].to_vec();
    ordered.extend(msgs[..POISON.len()].iter().cloned());
    for (p, chunk) in ordered.chunks(ordered.len() / 3 + 1).enumerate() {
        let mut body = Vec::new();
        for (_, m) in chunk {
            body.extend_from_slice(m);
            body.push(b'\n');
        }
        std::fs::write(files.join(format!("part-{p}.log")), body).unwrap();
    }
    Setup {
        _tmp: tmp,
        dir,
        topic,
        lines,
        bootstrap: bootstrap.to_string(),
    }
}

pub(super) fn config(s: &Setup, name: &str, uri: &str, extra: &str) -> PathBuf {
    let p = s.dir.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "warehouse = \"{name}-wh\"\ninventory = \"inventory.toml\"\n\n\
             [[sources]]\nname = \"stream\"\nuri = \"{uri}\"\naccount = \"210001010101\"\n{extra}"
        ),
    )
    .unwrap();
    p
}

pub(super) fn kafka_config(s: &Setup, name: &str, extra: &str) -> PathBuf {
    let uri = format!("kafka://{}/{}", s.bootstrap, s.topic);
    config(
        s,
        name,
        &uri,
        &format!(
            "[sources.kafka]\ngroup = \"{}\"\nchunk_bytes = 20000\nround_bytes = 200000\n{extra}",
            unique("g")
        ),
    )
}

/// The offsets committed to the consumer group named in a config, per partition.
pub(super) fn committed(s: &Setup, cfg: &Path) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let text = std::fs::read_to_string(cfg).unwrap();
    let group = text
        .lines()
        .find_map(|l| l.strip_prefix("group = "))
        .expect("the config names its group")
        .trim_matches('"');
    let c: BaseConsumer = client(&s.bootstrap, &[])
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(&s.topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(30)).unwrap();
    (0..PARTITIONS)
        .map(
            |p| match got.find_partition(&s.topic, p).unwrap().offset() {
                rdkafka::Offset::Offset(o) => o,
                other => panic!("partition {p}: no committed offset ({other:?})"),
            },
        )
        .collect()
}

/// What the warehouse says, independent of how inputs were cut: per hour, status, reason,
/// connection and direction, rows and bytes.
pub(super) fn totals(wh: &Path) -> BTreeMap<String, (u64, u64)> {
    let b = query(
        wh,
        "SELECT CAST(usage_hour AS VARCHAR) || '|' || status || '|' || COALESCE(reason, '') || '|' || \
         COALESCE(connection_arn, '') || '|' || direction, CAST(COUNT(*) AS BIGINT), CAST(SUM(bytes) AS BIGINT) \
         FROM flows GROUP BY 1",
    );
    let (k, n, v) = (strings(&b, 0), u64s(&b, 1), u64s(&b, 2));
    (0..k.len()).map(|i| (k[i].clone(), (n[i], v[i]))).collect()
}

/// Bytes of the lines, without the generator's malformed ones (they name eni-0badbad…).
pub(super) fn line_bytes(lines: &[String]) -> u64 {
    lines
        .iter()
        .filter(|l| !l.contains("badbad"))
        .filter_map(|l| l.split(' ').nth(9).and_then(|b| b.parse::<u64>().ok()))
        .sum()
}

#[test]
fn kafka_batch_reads_to_the_end_exactly_and_reruns_add_nothing() {
    let s = setup("batch");
    let files = config(&s, "files", "as-files", "");
    ok(&s.dir, &["ingest", "--config", files.to_str().unwrap()]);
    let cfg = kafka_config(&s, "kafka", "");
    let run = linkmeter(&s.dir, &["ingest", "--config", cfg.to_str().unwrap()]);
    let (out, err) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(
        run.status.success() && out.contains("[balanced]"),
        "{out}\n{err}"
    );
    // Reaching the end of each partition is how the run ends, not an error to print.
    assert!(!err.contains("PartitionEOF"), "{err}");
    // Nor is a commit that met another worker's first commit to a new table and was retried.
    assert!(!err.contains(r#""level":"ERROR""#), "{err}");
    let (kwh, fwh) = (s.dir.join("kafka-wh"), s.dir.join("files-wh"));
    assert_eq!(
        totals(&kwh),
        totals(&fwh),
        "Kafka and file ingest of the same lines"
    );
    // Every line in, every byte accounted for.
    let runs = query(
        &kwh,
        "SELECT records_in, bytes_in, records_quarantined FROM runs",
    );
    let r: Vec<u64> = (0..3).map(|c| u64s(&runs, c)[0]).collect();
    assert_eq!(r[0], s.lines.len() as u64 + POISON.len() as u64);
    assert_eq!(r[1], line_bytes(&s.lines));
    // The poison messages and the generator's malformed lines, as from files.
    let from_files = scalar(&fwh, "SELECT CAST(records_quarantined AS BIGINT) FROM runs");
    assert_eq!(r[2], from_files);
    assert!(r[2] >= POISON.len() as u64);
    // Poison is quarantined with its partition and offset.
    let q = query(
        &kwh,
        &format!(
            "SELECT \"offset\" FROM quarantine WHERE source_uri LIKE '%/{}/0/%' ORDER BY 1 LIMIT 3",
            s.topic
        ),
    );
    assert_eq!(
        u64s(&q, 0),
        vec![0, 1, 2],
        "the poison messages' offsets in partition 0"
    );
    // Several inputs per partition (offset ranges), none overlapping.
    let ranges = strings(&query(&kwh, "SELECT input_key FROM inputs ORDER BY 1"), 0);
    assert!(ranges.len() > PARTITIONS as usize, "{ranges:?}");

    // The consumer group holds each partition's end: offsets are committed as the inputs'
    // rows reach the warehouse, for lag monitoring (the warehouse is the checkpoint).
    let mut ends = vec![0i64; PARTITIONS as usize];
    ends[0] += POISON.len() as i64;
    for (p, _) in messages(&s.lines) {
        ends[p as usize] += 1;
    }
    assert_eq!(committed(&s, &cfg), ends, "the group's committed offsets");

    // A rerun finds nothing new.
    let out = ok(&s.dir, &["ingest", "--config", cfg.to_str().unwrap()]);
    assert_eq!(inputs_read(&out), 0, "{out}");
    assert_eq!(totals(&kwh), totals(&fwh));

    // Appended messages: only they are read.
    let extra: Vec<String> = s.lines[..500].to_vec();
    produce(&s.topic, &messages(&extra));
    let out = ok(&s.dir, &["ingest", "--config", cfg.to_str().unwrap()]);
    assert!(inputs_read(&out) > 0, "{out}");
    let bytes = scalar(&kwh, "SELECT CAST(SUM(bytes_in) AS BIGINT) FROM runs");
    assert_eq!(bytes, line_bytes(&s.lines) + line_bytes(&extra));
}

/// Chunks and a bound on what waits for the workers smaller than one message (a quarter of
/// the first chunk is zero bytes): every message is still read, one input at a time, and no
/// read ends the run by coming back empty.
#[test]
fn kafka_chunks_smaller_than_a_message_still_read_every_message() {
    let s = setup("tiny");
    let topic = unique("tiny");
    create_topic(&s.bootstrap, &[], &topic);
    let lines: Vec<String> = s.lines[..12].to_vec();
    produce(&topic, &messages(&lines));
    let uri = format!("kafka://{}/{topic}", s.bootstrap);
    let extra = format!(
        "[sources.kafka]\ngroup = \"{}\"\nchunk_bytes = 4\nround_bytes = 4\n",
        unique("g")
    );
    let cfg = config(&s, "tiny", &uri, &extra);
    let out = ok(&s.dir, &["ingest", "--config", cfg.to_str().unwrap()]);
    let runs = query(
        &s.dir.join("tiny-wh"),
        "SELECT records_in, bytes_in FROM runs",
    );
    assert_eq!(u64s(&runs, 0), vec![lines.len() as u64], "{out}");
    assert_eq!(u64s(&runs, 1), vec![line_bytes(&lines)], "{out}");
}

#[test]
fn kafka_runs_killed_at_random_points_end_with_the_same_totals() {
    let s = setup("kill");
    let files = config(&s, "files", "as-files", "");
    ok(&s.dir, &["ingest", "--config", files.to_str().unwrap()]);
    let cfg = kafka_config(&s, "killed", "");
    // Kill runs after varying delays; each restart resumes where the warehouse says.
    let mut rng = 0x2545F4914F6CDD1Du64 ^ std::process::id() as u64;
    for _ in 0..5 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = 100 + rng % 500;
        let mut child = std::process::Command::new(bin())
            .args(["ingest", "--config", cfg.to_str().unwrap()])
            .current_dir(&s.dir)
            .env("LINKMETER_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    // A finished run leaves a row in `runs`: fewer rows than runs means some were cut short.
    let kwh = s.dir.join("killed-wh");
    let finished = if kwh.join("runs").is_dir() {
        scalar(&kwh, "SELECT CAST(COUNT(*) AS BIGINT) FROM runs")
    } else {
        0
    };
    assert!(
        finished < 5,
        "every killed run had finished; nothing was tested"
    );
    let out = ok(&s.dir, &["ingest", "--config", cfg.to_str().unwrap()]);
    assert!(out.contains("[balanced]"), "{out}");
    assert_eq!(totals(&kwh), totals(&s.dir.join("files-wh")));
    let q = scalar(&kwh, "SELECT CAST(COUNT(*) AS BIGINT) FROM quarantine");
    let from_files = scalar(
        &s.dir.join("files-wh"),
        "SELECT CAST(COUNT(*) AS BIGINT) FROM quarantine",
    );
    assert_eq!(q, from_files, "each bad message quarantined once");
    // Offsets covered exactly once: the committed ranges of each partition do not overlap.
    let keys = strings(&query(&kwh, "SELECT input_key FROM inputs"), 0);
    let mut by_part: BTreeMap<i32, Vec<(i64, i64)>> = BTreeMap::new();
    for k in &keys {
        let (_, rest) = k.split_once(&format!("{}/", s.topic)).unwrap();
        let v: Vec<&str> = rest.split(['/', '-']).collect();
        by_part
            .entry(v[0].parse().unwrap())
            .or_default()
            .push((v[1].parse().unwrap(), v[2].parse().unwrap()));
    }
    for (p, mut r) in by_part {
        r.sort();
        for w in r.windows(2) {
            assert!(
                w[0].1 < w[1].0,
                "partition {p}: {:?} overlaps {:?}",
                w[0],
                w[1]
            );
        }
    }
}

/// Bytes in `flows`, read while another process may be writing: a reader sees the latest
/// committed version of the table and never fails for a commit in progress.
pub(super) fn flow_bytes(wh: &Path) -> Option<u64> {
    // The table exists once its first version does: the log directory appears before that
    // version's file (seen in CI: "table 'flows' not found" in that window).
    let first = std::fs::read_dir(wh.join("flows").join("_delta_log"))
        .map(|d| {
            d.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(|c: char| c.is_ascii_digit()) && n.ends_with(".json")
            })
        })
        .unwrap_or(false);
    if !first {
        return Some(0);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let w = linkmeter_warehouse::Warehouse::local(wh).unwrap();
    rt.block_on(async {
        let cat = linkmeter_sql::Catalog::open(&w)
            .await
            .expect("a reader opens the warehouse during a write");
        let b = cat
            .query("SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM flows")
            .await
            .expect("a reader queries the warehouse during a write");
        u64s(&b, 0).first().copied()
    })
}

#[test]
fn kafka_follow_writes_as_messages_arrive_and_stops_cleanly_on_sigterm() {
    let s = setup("follow");
    let files = config(&s, "files", "as-files", "");
    ok(&s.dir, &["ingest", "--config", files.to_str().unwrap()]);
    let (fwh, kwh) = (s.dir.join("files-wh"), s.dir.join("follow-wh"));
    let cfg = kafka_config(&s, "follow", "");
    let child = std::process::Command::new(bin())
        .args([
            "ingest",
            "--config",
            cfg.to_str().unwrap(),
            "--follow",
            "--flush-secs",
            "1",
        ])
        .current_dir(&s.dir)
        .env("LINKMETER_LOG", "warn")
        // Files, not pipes: a long-running child must never block on a full pipe.
        .stdout(std::fs::File::create(s.dir.join("follow.out")).unwrap())
        .stderr(std::fs::File::create(s.dir.join("follow.err")).unwrap())
        .spawn()
        .unwrap();
    let wait_for = |want: u64| {
        let t0 = std::time::Instant::now();
        while flow_bytes(&kwh) != Some(want) {
            assert!(
                t0.elapsed() < Duration::from_secs(90),
                "follow mode never caught up"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    wait_for(flow_bytes(&fwh).unwrap());
    // New messages while it follows: written within a flush or two.
    let extra: Vec<String> = s.lines[..400].to_vec();
    produce(&s.topic, &messages(&extra));
    std::fs::write(
        s.dir.join("as-files/part-extra.log"),
        extra.join("\n") + "\n",
    )
    .unwrap();
    ok(&s.dir, &["ingest", "--config", files.to_str().unwrap()]);
    wait_for(flow_bytes(&fwh).unwrap());
    // SIGTERM: the round in hand is finished, the run recorded, exit 0.
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let mut child = child;
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(s.dir.join("follow.out")).unwrap();
    let stderr = std::fs::read_to_string(s.dir.join("follow.err")).unwrap();
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("[balanced]"), "{stdout}");
    assert_eq!(totals(&kwh), totals(&fwh));
    // And nothing is left for a batch run.
    let out = ok(&s.dir, &["ingest", "--config", cfg.to_str().unwrap()]);
    assert_eq!(inputs_read(&out), 0, "{out}");
}

#[test]
fn kafka_metric_stream_topic_gives_the_same_broker_metrics_as_files() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "estate", "--days 1 --accounts 6 --instances 1 --noise 1");
    let dir = d.join("estate");
    // The generated CloudWatch metric-stream lines, one to three per message, and a poison
    // message (bad JSON) last in partition 1.
    let mut lines = Vec::new();
    for f in walk(&dir.join("metrics")) {
        lines.extend(gunzip(&f).lines().map(str::to_string));
    }
    assert!(lines.len() > 10_000, "{}", lines.len());
    let topic = unique("metrics");
    create_topic(&bootstrap(), &[], &topic);
    let mut msgs = messages(&lines);
    msgs.push((1, b"{\"metric_name\": broken".to_vec()));
    produce(&topic, &msgs);
    let write = |name: &str, source: &str| {
        let p = dir.join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!("warehouse = \"{name}-wh\"\ninventory = \"inventory.toml\"\n\n[[sources]]\n{source}"),
        )
        .unwrap();
        p
    };
    let files = write("files", "name = \"metrics\"\nuri = \"metrics\"\n");
    ok(&dir, &["ingest", "--config", files.to_str().unwrap()]);
    let kafka = write(
        "kafka",
        &format!(
            "name = \"ms\"\nuri = \"kafka://{}/{topic}\"\ncontent = \"metric-stream\"\n\n[sources.kafka]\ngroup = \"{}\"\nchunk_bytes = 200000\n",
            bootstrap(),
            unique("g")
        ),
    );
    let out = ok(&dir, &["ingest", "--config", kafka.to_str().unwrap()]);
    assert!(out.contains("[balanced]"), "{out}");
    let summary = |wh: &str| {
        let b = query(
            &dir.join(wh),
            "SELECT metric || '|' || cluster_name || '|' || CAST(broker_id AS VARCHAR) || '|' || COALESCE(topic, '') || '|' || CAST(usage_hour AS VARCHAR), \
             CAST(COUNT(*) AS BIGINT), CAST(SUM(bytes) AS BIGINT) FROM broker_metrics GROUP BY 1",
        );
        let (k, n, v) = (strings(&b, 0), u64s(&b, 1), u64s(&b, 2));
        (0..k.len())
            .map(|i| (k[i].clone(), (n[i], v[i])))
            .collect::<BTreeMap<_, _>>()
    };
    let from_files = summary("files-wh");
    assert!(!from_files.is_empty());
    assert_eq!(summary("kafka-wh"), from_files);
    let kwh = dir.join("kafka-wh");
    assert_eq!(
        scalar(
            &kwh,
            "SELECT CAST(SUM(records_metrics) AS BIGINT) FROM runs"
        ),
        lines.len() as u64
    );
    // The poison message is quarantined at its partition and offset; the partition moved on.
    let last_in_p1 = msgs.iter().filter(|(p, _)| *p == 1).count() as u64 - 1;
    let q = query(
        &kwh,
        &format!("SELECT \"offset\" FROM quarantine WHERE source_uri LIKE '%/{topic}/1/%'"),
    );
    assert_eq!(u64s(&q, 0), vec![last_in_p1]);
}
