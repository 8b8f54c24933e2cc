//! Kafka sources (`kafka://host:port/topic`), batch mode: read every partition from the first
//! offset the warehouse does not hold to the end seen while reading (partition EOF), in steps
//! of bounded size, each handed over at once as inputs of one partition's offset range (with
//! `--follow`, in rounds written one at a time).
//!
//! Delivery: the warehouse is the checkpoint. An input's key names its topic, partition and
//! offset range, and the `inputs` commit log records it only once its rows are durable, so a
//! restart reads from the first offset not covered by a committed input and skips ranges that
//! are (a crash can leave a gap before a committed range). Offsets are also committed to the
//! consumer group afterwards, for lag monitoring only; auto-commit and the automatic offset
//! store are forced off after any raw options, so nothing can turn them back on.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::kafka_auth::{configure, KafkaContext, KafkaSecurity};
use super::kafka_keys::{covered, input_key, parse_key, start_offset, Unheld};
pub use super::kafka_keys::{parse_uri, LineOffsets};
use super::{Batch, Fetch, InputRef, Location, Source, SourceError};

/// Settings of one Kafka source.
#[derive(Clone)]
pub struct KafkaSettings {
    /// Source name (part of every input key).
    pub name: String,
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// Topic.
    pub topic: String,
    /// Consumer group (offsets are committed there for monitoring).
    pub group: String,
    /// Raw librdkafka options (tuning, or security the typed settings lack), applied first.
    pub options: BTreeMap<String, String>,
    /// TLS and SASL, applied after the raw options.
    pub security: KafkaSecurity,
    /// Bytes of messages per input (one partition's offset range).
    pub chunk_bytes: usize,
    /// Bytes of messages read before they are written (bounds memory).
    pub round_bytes: usize,
    /// Longest wait for anything from the broker before the run gives up.
    pub idle_timeout: Duration,
    /// Only the partitions `p` with `p % n == i` (for `--shard i/n`).
    pub shard: Option<(u32, u32)>,
    /// The runtime that signs MSK IAM tokens (the AWS credential chain is async).
    pub rt: tokio::runtime::Handle,
}

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Option values are never shown: they hold passwords and keys.
        f.debug_struct("KafkaSettings")
            .field("name", &self.name)
            .field("bootstrap", &self.bootstrap)
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// librdkafka settings linkmeter changes, which a source's `options` may still override.
/// `fetch.queue.backoff.ms`: once the prefetch queue of a partition is full (100,000
/// messages), librdkafka waits this long before fetching again (1 s by default); any consumer
/// slower than the fetcher fills it often, and those waits were over half of a batch run
/// (benches/kafka.sh: 6.7 s at 1000 ms, 3.0 s at 10 ms).
const DEFAULTS: &[(&str, &str)] = &[("fetch.queue.backoff.ms", "10")];

/// How long a poll waits for a message.
const POLL: Duration = Duration::from_millis(200);
/// How long a batch round with data waits for more before it is handed over.
const QUIET: Duration = Duration::from_millis(50);

/// Options linkmeter sets last, whatever the raw options say: offsets move only with the
/// warehouse.
const FORCED: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("enable.partition.eof", "true"),
];

/// One input's bytes and the Kafka offset of each of its lines.
#[derive(Debug, Default)]
struct Chunk {
    first: i64,
    last: i64,
    text: Vec<u8>,
    lines: u64,
    /// (first line of a message, its offset), for lineage.
    line_offsets: Vec<(u64, i64)>,
}

/// Serves the inputs of a round from memory.
#[derive(Debug, Default)]
struct MemoryFetch(Mutex<HashMap<String, Bytes>>);

impl Fetch for MemoryFetch {
    fn open(&self, input: &InputRef) -> Box<dyn Read + Send> {
        let b = self
            .0
            .lock()
            .expect("no panics while holding it")
            .remove(&input.key)
            .unwrap_or_default();
        Box::new(std::io::Cursor::new(b))
    }
}

/// A batch reader of one topic.
pub struct KafkaReader {
    s: KafkaSettings,
    cluster: String,
    consumer: BaseConsumer<KafkaContext>,
    covered: BTreeMap<i32, Vec<(i64, i64)>>,
    open: BTreeMap<i32, Chunk>,
    eof: BTreeMap<i32, bool>,
    next: BTreeMap<i32, i64>,
    /// Rounds read so far.
    rounds: u32,
    /// The inputs handed over whose rows the warehouse is not yet known to hold.
    unheld: Unheld,
}

impl std::fmt::Debug for KafkaReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KafkaReader({}/{})", self.s.bootstrap, self.s.topic)
    }
}

fn err(s: &KafkaSettings, what: &str) -> impl Fn(KafkaError) -> SourceError {
    let (name, what, topic, b) = (
        s.name.clone(),
        what.to_string(),
        s.topic.clone(),
        s.bootstrap.clone(),
    );
    move |e| {
        // A config error carries the option's value, which may be a password.
        let e = match e {
            KafkaError::ClientConfig(_, desc, key, _) => format!("option {key}: {desc}"),
            e => e.to_string(),
        };
        SourceError::Remote {
            name: name.clone(),
            message: format!("{what} (topic {topic} at {b}): {e}; check the broker address, the topic and the security options"),
        }
    }
}

/// A consumer with the source's raw options, then its security settings, then the forced
/// delivery settings; with MSK IAM, polled until its first token exists.
fn consumer(s: &KafkaSettings) -> Result<BaseConsumer<KafkaContext>, SourceError> {
    let mut cfg = ClientConfig::new();
    for (k, v) in DEFAULTS {
        cfg.set(*k, *v);
    }
    for (k, v) in &s.options {
        cfg.set(k, v);
    }
    let context = configure(&s.security, &mut cfg, &s.rt).map_err(|e| SourceError::Remote {
        name: s.name.clone(),
        message: e.to_string(),
    })?;
    cfg.set("bootstrap.servers", &s.bootstrap)
        .set("group.id", &s.group)
        .set("auto.offset.reset", "earliest");
    for (k, v) in FORCED {
        cfg.set(*k, *v);
    }
    let consumer: BaseConsumer<KafkaContext> = cfg
        .create_with_context(context)
        .map_err(err(s, "cannot create a consumer"))?;
    if s.security.iam() {
        // librdkafka asks for the OAUTHBEARER token through an event that only polling
        // serves: without a first poll, every request waits for a token that never comes.
        let t0 = Instant::now();
        while !consumer
            .context()
            .token_set
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            if t0.elapsed() > s.idle_timeout {
                return Err(SourceError::Remote {
                    name: s.name.clone(),
                    message: "no MSK IAM token could be made (see the warnings before this); check the AWS credentials and region".into(),
                });
            }
            let _ = consumer.poll(Duration::from_millis(100));
        }
    }
    Ok(consumer)
}

/// Assigns each partition from the end of the ranges the warehouse holds without a gap from
/// its low watermark; ranges before that start are dropped from `covered`.
fn assign(
    s: &KafkaSettings,
    consumer: &BaseConsumer<KafkaContext>,
    parts: &[i32],
    covered: &mut BTreeMap<i32, Vec<(i64, i64)>>,
) -> Result<(), SourceError> {
    let mut tpl = TopicPartitionList::new();
    for &p in parts {
        let start = match covered.get(&p) {
            None => Offset::Beginning,
            Some(r) => match consumer.fetch_watermarks(&s.topic, p, s.idle_timeout) {
                Ok((low, _)) => Offset::Offset(start_offset(r, low)),
                // Reading from the start is always right, only slower: held ranges are skipped.
                Err(_) => Offset::Beginning,
            },
        };
        // Ranges before the start are behind us; only those after a gap are checked
        // against each message.
        if let (Offset::Offset(o), Some(r)) = (start, covered.get_mut(&p)) {
            r.retain(|(_, b)| *b >= o);
        }
        tpl.add_partition_offset(&s.topic, p, start)
            .map_err(err(s, "cannot assign a partition"))?;
    }
    consumer
        .assign(&tpl)
        .map_err(err(s, "cannot assign the partitions"))
}

impl KafkaReader {
    /// Connects, finds the partitions and positions each after what the warehouse holds
    /// (`held`: the input keys committed in the warehouse).
    pub fn open<'a>(
        s: KafkaSettings,
        held: impl Iterator<Item = &'a str>,
    ) -> Result<KafkaReader, SourceError> {
        let consumer = consumer(&s)?;
        let md = consumer
            .fetch_metadata(Some(&s.topic), s.idle_timeout)
            .map_err(err(&s, "cannot read the topic's metadata"))?;
        // Falling back to a placeholder when the id is not returned would make keys change
        // between runs and re-read everything: better to stop.
        let cluster: String = consumer
            .client()
            .fetch_cluster_id(s.idle_timeout)
            .ok_or_else(|| SourceError::Remote {
                name: s.name.clone(),
                message: format!(
                    "{} did not say its cluster id; linkmeter keys offsets by cluster, try again",
                    s.bootstrap
                ),
            })?
            .chars()
            .map(|c| if c == '/' || c == ':' { '_' } else { c })
            .collect();
        let parts: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == s.topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .filter(|p| s.shard.is_none_or(|(i, n)| (*p as u32) % n == i))
            .collect();
        if parts.is_empty() && s.shard.is_none() {
            return Err(SourceError::Remote {
                name: s.name.clone(),
                message: format!(
                    "topic {} has no partitions at {} (does it exist?)",
                    s.topic, s.bootstrap
                ),
            });
        }
        let mut covered: BTreeMap<i32, Vec<(i64, i64)>> = BTreeMap::new();
        for k in held {
            if let Some((p, a, b)) = parse_key(k, &s.name, &cluster, &s.topic) {
                covered.entry(p).or_default().push((a, b));
            }
        }
        assign(&s, &consumer, &parts, &mut covered)?;
        Ok(KafkaReader {
            cluster,
            eof: parts.iter().map(|p| (*p, false)).collect(),
            s,
            consumer,
            covered,
            open: BTreeMap::new(),
            next: BTreeMap::new(),
            rounds: 0,
            unheld: Unheld::default(),
        })
    }

    /// Whether every partition has been read to its end.
    pub fn done(&self) -> bool {
        self.eof.values().all(|e| *e)
    }

    fn close(&mut self, p: i32, out: &mut Vec<(InputRef, Arc<LineOffsets>)>, mem: &MemoryFetch) {
        let Some(c) = self.open.remove(&p) else {
            return;
        };
        if c.text.is_empty() && c.lines == 0 {
            return;
        }
        let s = &self.s;
        let key = input_key(&s.name, &self.cluster, &s.topic, p, c.first, c.last);
        let size = c.text.len() as u64;
        self.unheld.push(p, c.first, c.last);
        mem.0
            .lock()
            .expect("no panics while holding it")
            .insert(key.clone(), Bytes::from(c.text));
        out.push((
            InputRef {
                uri: format!(
                    "kafka://{}/{}/{p}/{}-{}",
                    s.bootstrap, s.topic, c.first, c.last
                ),
                location: Location::Stream {
                    topic: s.topic.clone(),
                    partition: p,
                    first: c.first,
                    last: c.last,
                },
                version: Some(format!(
                    "kafka:{}/{}/{p}/{}-{}",
                    self.cluster, s.topic, c.first, c.last
                )),
                key,
                size,
                account_hint: None,
            },
            Arc::new(LineOffsets::new(c.line_offsets)),
        ));
    }

    /// Reads the next round: up to `round_bytes` of messages, or to the end of every
    /// partition. `None` once every partition is at its end and nothing is left.
    pub fn next_round(&mut self) -> Result<Option<Batch>, SourceError> {
        self.read_round(None, None, &[])
    }

    /// Streaming batch mode: reads up to `bytes` of messages (less when the consumer goes
    /// quiet with some in hand, or once any of `stops` is raised) and closes every open
    /// input, so that workers can start on them at once. `None` once every partition is at
    /// its end and nothing is left.
    pub fn next_step_until(
        &mut self,
        bytes: usize,
        stops: &[&std::sync::atomic::AtomicBool],
    ) -> Result<Option<Batch>, SourceError> {
        self.read_round(None, Some(bytes), stops)
    }

    /// Follow mode: the next round of up to `round_bytes`, or whatever arrived within
    /// `flush` (`None` if nothing did), or less when `stop` is raised. The end of a partition
    /// is not the end of the run here, and a quiet topic is not an error.
    pub fn follow_round(
        &mut self,
        flush: Duration,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<Option<Batch>, SourceError> {
        self.read_round(Some(flush), None, &[stop])
    }

    fn read_round(
        &mut self,
        follow: Option<Duration>,
        step: Option<usize>,
        stops: &[&std::sync::atomic::AtomicBool],
    ) -> Result<Option<Batch>, SourceError> {
        let stopped = || {
            stops
                .iter()
                .any(|s| s.load(std::sync::atomic::Ordering::Relaxed))
        };
        let mem = Arc::new(MemoryFetch::default());
        let mut inputs = Vec::new();
        let mut bytes = 0usize;
        let mut last_heard = Instant::now();
        // Set by each message or partition end; the clock is read only when a poll brings
        // nothing or an error (reading it for every message measured at 2% of a Kafka run).
        // `last_heard` can only be late by one poll, so the idle error never comes early.
        let mut heard = false;
        let started = Instant::now();
        let more = |me: &Self| {
            !stopped()
                && match follow {
                    None => !me.done(),
                    Some(flush) => started.elapsed() < flush,
                }
        };
        // The first round is a quarter of the others: nothing is written until it is read.
        let target = match (step, self.rounds) {
            (Some(b), _) => b.max(1),
            (None, 0) => (self.s.round_bytes / 4).max(1),
            (None, _) => self.s.round_bytes,
        };
        self.rounds += 1;
        while more(self) && bytes < target {
            // With a quarter of a round (or any of a step) in hand, a batch run hands it over
            // as soon as the consumer has nothing for QUIET instead of waiting for every
            // partition's end: the broker holds the fetch that finds an end
            // (`fetch.wait.max.ms`, 500 ms by default), and those rows would otherwise be
            // written only after it.
            let handover = follow.is_none() && bytes > 0 && (step.is_some() || bytes >= target / 4);
            let wait = if handover { QUIET } else { POLL };
            let Some(m) = self.consumer.poll(wait) else {
                if handover {
                    break;
                }
                if std::mem::take(&mut heard) {
                    last_heard = Instant::now();
                }
                if follow.is_none() && last_heard.elapsed() > self.s.idle_timeout {
                    return Err(SourceError::Remote {
                        name: self.s.name.clone(),
                        message: format!(
                            "nothing from {} for {:?} while reading topic {}; is the broker up?",
                            self.s.bootstrap, self.s.idle_timeout, self.s.topic
                        ),
                    });
                }
                continue;
            };
            let m = match m {
                Ok(m) => m,
                Err(KafkaError::PartitionEOF(p)) => {
                    heard = true;
                    self.eof.insert(p, true);
                    continue;
                }
                Err(e @ KafkaError::MessageConsumptionFatal(_)) => {
                    return Err(err(&self.s, "the consumer failed")(e));
                }
                // librdkafka retries transport errors itself; they are reported, not fatal,
                // unless nothing but errors arrives for the idle timeout (a broker gone for
                // good must end a batch run, not hang it).
                Err(e) => {
                    tracing::warn!(message = "kafka consumer error", source = %self.s.name, error = %e);
                    if std::mem::take(&mut heard) {
                        last_heard = Instant::now();
                    }
                    if follow.is_none() && last_heard.elapsed() > self.s.idle_timeout {
                        return Err(SourceError::Remote {
                            name: self.s.name.clone(),
                            message: format!(
                                "only errors from {} for {:?} while reading topic {} (last: {e}); is the broker up?",
                                self.s.bootstrap, self.s.idle_timeout, self.s.topic
                            ),
                        });
                    }
                    continue;
                }
            };
            // Only data (or an end of partition) counts as hearing from the broker.
            heard = true;
            let (p, off) = (m.partition(), m.offset());
            if follow.is_none() && self.eof.get(&p) == Some(&true) {
                // A batch run ends each partition at its first end: what arrives later is
                // left for the next run (never marked as read), so a busy topic cannot keep
                // a scheduled run going.
                continue;
            }
            self.eof.insert(p, false);
            self.next.insert(p, off + 1);
            if self.covered.get(&p).is_some_and(|r| covered(r, off)) {
                // Already in the warehouse (a gap before it was re-read): close the open
                // input so that no input overlaps a committed one.
                self.close(p, &mut inputs, &mem);
                continue;
            }
            let c = self.open.entry(p).or_insert_with(|| Chunk {
                first: off,
                last: off,
                ..Default::default()
            });
            c.last = off;
            c.line_offsets.push((c.lines + 1, off));
            let payload = m.payload().unwrap_or_default();
            c.text.extend_from_slice(payload);
            if !payload.ends_with(b"\n") {
                c.text.push(b'\n');
            }
            let added = payload.iter().filter(|b| **b == b'\n').count() as u64
                + u64::from(!payload.ends_with(b"\n"));
            c.lines += added.max(1);
            bytes += payload.len();
            if c.text.len() >= self.s.chunk_bytes {
                self.close(p, &mut inputs, &mem);
            }
        }
        let parts: Vec<i32> = self.open.keys().copied().collect();
        for p in parts {
            self.close(p, &mut inputs, &mem);
        }
        if inputs.is_empty() {
            return Ok(None);
        }
        Ok(Some(Batch {
            inputs: inputs.into_iter().map(|(i, l)| (i, Some(l))).collect(),
            fetch: Some(mem),
            next: self.next.clone(),
        }))
    }

    /// Commits `next` offsets to the consumer group (after the warehouse has their rows).
    pub fn commit(&mut self, next: &BTreeMap<i32, i64>) {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in next {
            let _ = tpl.add_partition_offset(&self.s.topic, *p, Offset::Offset(*o));
        }
        self.unheld.clear();
        self.commit_offsets(&tpl, CommitMode::Sync);
    }

    /// Where every partition read so far continues.
    pub fn next_offsets(&self) -> BTreeMap<i32, i64> {
        self.next.clone()
    }

    /// Records that the warehouse holds the inputs with these keys, and commits to the
    /// consumer group, per partition, the offset after the last input held with none of this
    /// reader's before it still unheld (inputs are written by several workers, so they commit
    /// out of order). `sync` waits for the broker's answer (before the consumer is closed).
    pub fn held(&mut self, keys: &[String], sync: bool) {
        let (s, cluster) = (&self.s, &self.cluster);
        let inputs = keys
            .iter()
            .filter_map(|k| parse_key(k, &s.name, cluster, &s.topic))
            .map(|(p, first, _)| (p, first));
        let mut tpl = TopicPartitionList::new();
        for (p, o) in self.unheld.held(inputs) {
            let _ = tpl.add_partition_offset(&self.s.topic, p, Offset::Offset(o));
        }
        if tpl.count() > 0 {
            let mode = if sync {
                CommitMode::Sync
            } else {
                CommitMode::Async
            };
            self.commit_offsets(&tpl, mode);
        }
    }

    fn commit_offsets(&self, tpl: &TopicPartitionList, mode: CommitMode) {
        if let Err(e) = self.consumer.commit(tpl, mode) {
            tracing::warn!(message = "could not commit offsets to the consumer group (the warehouse checkpoint is what counts)", error = %e);
        }
    }
}

impl Source for KafkaReader {
    fn name(&self) -> &str {
        &self.s.name
    }

    fn is_stream(&self) -> bool {
        true
    }

    fn next_batch(&mut self) -> Result<Option<Batch>, SourceError> {
        self.next_round()
    }

    fn follow(
        &mut self,
        wait: Duration,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<Option<Batch>, SourceError> {
        self.follow_round(wait, stop)
    }

    fn committed(&mut self, batch: &Batch) {
        self.commit(&batch.next);
    }
}
