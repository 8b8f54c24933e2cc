//! `linkmeter ingest`: every configured source into the warehouse, with a conservation
//! balance at the end.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use chrono::Utc;
use linkmeter_ingest::fields::{Format, DEFAULT_FORMAT};
use linkmeter_ingest::inventory::Inventory;
use linkmeter_ingest::pipeline::{self, Job, Options, Progress, Report};
use linkmeter_ingest::source::file::FileSource;
use linkmeter_ingest::source::kafka::{KafkaReader, KafkaSettings};
use linkmeter_ingest::source::layout;
use linkmeter_ingest::source::s3::S3Source;
use linkmeter_ingest::source::s3_read::{S3Fetch, S3Store};
use linkmeter_ingest::source::{Fetch, Source};
use linkmeter_ingest::warehouse::tables::{read_segments, SegmentStatus};
use linkmeter_ingest::warehouse::tables::{write_inventory, write_run, RunRecord};

use crate::config::{Config, SourceKind};

/// Marks errors in the user's configuration (exit code 2).
#[derive(Debug)]
pub struct ConfigProblem;

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("configuration problem")
    }
}

impl std::error::Error for ConfigProblem {}

/// Arguments of `ingest`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  linkmeter ingest --config linkmeter.toml\n  linkmeter ingest --config linkmeter.toml --source flowlogs --strict\n  linkmeter ingest --since 2026-10-01 --until 2026-11-01\n  linkmeter ingest --shard 0/4        # one of four tasks sharing the sources\n  linkmeter ingest --follow --flush-secs 10   # keep consuming Kafka sources until SIGTERM\n  LINKMETER_WAREHOUSE=/data/wh linkmeter ingest\n\nInputs already ingested with the same content and inventory are skipped; a changed input replaces\nits previous rows. Bad lines are quarantined (table `quarantine`) and never stop good data."
)]
pub struct Args {
    /// Configuration file.
    #[arg(
        long,
        short,
        env = "LINKMETER_CONFIG",
        default_value = "linkmeter.toml"
    )]
    pub config: PathBuf,
    /// Only this source (by name); repeat for several.
    #[arg(long)]
    pub source: Vec<String>,
    /// Re-ingest inputs even when unchanged.
    #[arg(long)]
    pub force: bool,
    /// Exit with code 3 when any input was quarantined.
    #[arg(long)]
    pub strict: bool,
    /// Worker threads (default: config, else the number of cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Only inputs whose key time (AWS file-name stamp or date directories) is at or after
    /// this (YYYY-MM-DD or RFC 3339, UTC).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<i64>,
    /// Only inputs whose key time is before this (YYYY-MM-DD or RFC 3339, UTC).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<i64>,
    /// Only shard I of N (I/N, counted from 0): inputs split by a hash of their key (Kafka: the
    /// partitions p with p mod N = I), so N tasks with the same config cover every input once.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,
    /// Keep reading Kafka sources after their end, writing what arrived every FLUSH_SECS
    /// (or sooner when a round is full), until SIGTERM or Ctrl-C; then finish the round and exit.
    #[arg(long)]
    pub follow: bool,
    /// How often follow mode writes what arrived.
    #[arg(long, default_value_t = 10, requires = "follow")]
    pub flush_secs: u64,
}

/// Which inputs a run takes.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only these sources (all when empty).
    pub only: Vec<String>,
    /// Re-read unchanged inputs.
    pub force: bool,
    /// Worker threads.
    pub workers: Option<usize>,
    /// Key-time range `[since, until)`.
    pub since: Option<i64>,
    /// See `since`.
    pub until: Option<i64>,
    /// Shard `i` of `n`.
    pub shard: Option<(u32, u32)>,
    /// Follow Kafka sources, flushing at this interval, until `stop` is raised.
    pub follow: Option<(Duration, Arc<std::sync::atomic::AtomicBool>)>,
    /// Raised to stop a batch run between inputs (SIGTERM in `run`).
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// The caller holds the warehouse lock already (`run` holds it across ingest and invoice).
    pub lock_held: bool,
}

fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp());
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"))
}

fn parse_shard(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?} is not a shard I/N with 0 <= I < N, e.g. 0/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// What an ingest run produced.
pub struct Outcome {
    pub report: Report,
    pub warehouse: String,
    pub run_id: String,
    pub elapsed: Duration,
    /// The S3 client of the run, when a source was on S3 (its counters go in the summary).
    pub s3: Option<Arc<S3Store>>,
}

fn run_id(shard: Option<(u32, u32)>) -> String {
    format!(
        "{}-{:04x}{}",
        Utc::now().format("%Y%m%dT%H%M%SZ"),
        std::process::id() & 0xffff,
        shard.map(pipeline::shard_tag).unwrap_or_default()
    )
}

/// Ingests everything the config names.
pub fn ingest(cfg: &Config, sel: &Selection) -> Result<Outcome> {
    let only = &sel.only;
    let started = Utc::now();
    let t0 = Instant::now();
    let inv_path = cfg.inventory_path().map_err(|e| e.context(ConfigProblem))?;
    let ix = Inventory::load(&inv_path).map_err(|e| anyhow!(e).context(ConfigProblem))?;
    let wh = crate::warehouse::Warehouse::open(cfg)?;
    let warehouse = wh.display();
    let sink = wh.sink;
    let _lock = match sel.lock_held {
        true => None,
        false => Some(sink.lock("ingest", sel.shard)?),
    };
    for name in only {
        if !cfg.sources.iter().any(|s| &s.name == name) {
            return Err(anyhow!("no source named {name:?} in the config").context(ConfigProblem));
        }
    }
    let range = match (sel.since, sel.until) {
        (None, None) => None,
        (a, b) => Some((a.unwrap_or(i64::MIN), b.unwrap_or(i64::MAX))),
    };
    let mut s3: Option<Arc<S3Store>> = None;
    let mut jobs = Vec::new();
    let mut streams: Vec<(KafkaSettings, StreamJobs)> = Vec::new();
    for s in cfg
        .sources
        .iter()
        .filter(|s| only.is_empty() || only.contains(&s.name))
    {
        let format = Format::parse(s.format.as_deref().unwrap_or(DEFAULT_FORMAT))
            .map_err(|e| anyhow!("source {:?}: format: {e}", s.name).context(ConfigProblem))?;
        let kind = s.kind(cfg).map_err(|e| e.context(ConfigProblem))?;
        if let SourceKind::Kafka { bootstrap, topic } = &kind {
            let k = &s.kafka;
            // Certificate paths are relative to the config file, like every other path.
            let mut security = k.security.clone();
            for f in [
                &mut security.ca_file,
                &mut security.cert_file,
                &mut security.key_file,
            ] {
                if let Some(p) = f.as_mut() {
                    *p = cfg.resolve(&p.to_string_lossy());
                }
            }
            // Settings that cannot work (a missing file or variable) are a config error,
            // found before anything is read.
            security
                .options(|v| std::env::var(v).ok())
                .map_err(|e| anyhow!("source {:?}: {e}", s.name).context(ConfigProblem))?;
            streams.push((
                KafkaSettings {
                    name: s.name.clone(),
                    bootstrap: bootstrap.clone(),
                    topic: topic.clone(),
                    group: k
                        .group
                        .clone()
                        .unwrap_or_else(|| format!("linkmeter-{}", s.name)),
                    options: k.options.clone(),
                    security,
                    chunk_bytes: k.chunk_bytes.unwrap_or(8 << 20).max(1),
                    round_bytes: k.round_bytes.unwrap_or(256 << 20).max(1),
                    idle_timeout: Duration::from_secs(k.idle_timeout_secs.unwrap_or(30)),
                    shard: sel.shard,
                },
                StreamJobs {
                    format,
                    account: s.account.clone(),
                    content: s.content,
                },
            ));
            continue;
        }
        let (inputs, fetch): (_, Option<Arc<dyn Fetch>>) = match kind {
            SourceKind::Local(path) => {
                let mut l = FileSource::new(&s.name, &path).list()?;
                if let Some(w) = range {
                    l.retain(|i| layout::key_in(&i.key, w));
                }
                (l, None)
            }
            SourceKind::S3 { bucket, prefix } => {
                let store = match &s3 {
                    Some(st) => st.clone(),
                    None => {
                        let st = S3Store::connect(cfg.s3.settings())?;
                        s3 = Some(st.clone());
                        st
                    }
                };
                let l = S3Source::new(&s.name, &bucket, &prefix, store.clone(), range)
                    .list()
                    .context("listing the source failed; the run stopped before writing")?;
                (l, Some(Arc::new(S3Fetch(store)) as Arc<dyn Fetch>))
            }
            SourceKind::Kafka { .. } => unreachable!("handled above"),
        };
        let listed = inputs.len();
        let inputs: Vec<_> = match sel.shard {
            Some((i, n)) => inputs
                .into_iter()
                .filter(|x| layout::shard_of(&x.key, n) == i)
                .collect(),
            None => inputs,
        };
        tracing::info!(message = "source listed", source = %s.name, inputs = listed, this_shard = inputs.len());
        for input in inputs {
            jobs.push(Job {
                input,
                fetch: fetch.clone(),
                line_offsets: None,
                format: format.clone(),
                account: s.account.clone(),
                content: s.content,
            });
        }
    }
    if sel.follow.is_some() && streams.is_empty() {
        return Err(anyhow!(
            "--follow keeps reading kafka:// sources, and this run has none; run without --follow"
        )
        .context(ConfigProblem));
    }
    if cfg.sources.is_empty() {
        return Err(
            anyhow!("the config names no [[sources]]; add one with a name and a uri")
                .context(ConfigProblem),
        );
    }
    let run_id = run_id(sel.shard);
    write_inventory(sink.as_ref(), &ix).context("writing the inventory tables")?;
    let opts = Options {
        run_id: run_id.clone(),
        force: sel.force,
        shard: sel.shard,
        workers: sel.workers.or(cfg.ingest.workers).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }),
        flush_rows: cfg.ingest.flush_rows,
        stop: sel.stop.clone(),
        ..Options::default()
    };
    let total: u64 = jobs.iter().map(|j| j.input.size).sum();
    let progress = Arc::new(Progress::default());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = spawn_progress(progress.clone(), done.clone(), total, jobs.len() as u64);
    let result = pipeline::ingest(&jobs, &ix, sink.as_ref(), &opts, &progress)
        .context("ingest stopped")
        .and_then(|mut report| {
            // Rounds of every stream get segment names of their own.
            let mut kopts = opts.clone();
            if let Some((flush, stop)) = &sel.follow {
                return follow(
                    streams,
                    *flush,
                    stop,
                    &ix,
                    sink.as_ref(),
                    &mut kopts,
                    &progress,
                    report,
                );
            }
            for (ks, jobs) in streams {
                consume(
                    ks,
                    &jobs,
                    &ix,
                    sink.as_ref(),
                    &mut kopts,
                    &progress,
                    &mut report,
                )?;
            }
            Ok(report)
        });
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    let report = result?;
    write_run(
        sink.as_ref(),
        &RunRecord {
            run_id: run_id.clone(),
            command: "ingest".into(),
            started_micros: started.timestamp_micros(),
            finished_micros: Utc::now().timestamp_micros(),
            tally: report.tally.clone(),
        },
    )
    .context("writing the run record")?;
    tracing::info!(
        message = "ingest finished",
        run_id = %run_id,
        records_in = report.tally.records_in,
        attributed = report.tally.attributed,
        unattributed = report.tally.unattributed,
        filtered = report.tally.filtered,
        coverage = report.tally.coverage,
        quarantined = report.tally.quarantined,
        bytes_in = report.tally.bytes_in,
        balanced = report.tally.balanced()
    );
    Ok(Outcome {
        report,
        warehouse,
        run_id,
        elapsed: t0.elapsed(),
        s3,
    })
}

/// The keys of every input the warehouse holds (committed), which stream readers skip.
fn held_keys(sink: &dyn linkmeter_ingest::warehouse::Sink) -> Result<Vec<String>> {
    Ok(read_segments(sink)?
        .into_iter()
        .filter(|m| m.status == SegmentStatus::Committed)
        .flat_map(|m| m.inputs.into_iter().map(|r| r.input_key))
        .collect())
}

/// The job settings every input of a stream source shares.
struct StreamJobs {
    format: Format,
    account: Option<String>,
    content: linkmeter_ingest::decode::Content,
}

/// Reads a Kafka source in rounds; each round is written (and its segments committed) before
/// its offsets are committed to the consumer group.
#[allow(clippy::too_many_arguments)]
fn consume(
    ks: KafkaSettings,
    jobs: &StreamJobs,
    ix: &linkmeter_ingest::inventory::Index,
    sink: &dyn linkmeter_ingest::warehouse::Sink,
    opts: &mut Options,
    progress: &Progress,
    report: &mut Report,
) -> Result<()> {
    let name = ks.name.clone();
    let held = held_keys(sink)?;
    let mut reader = KafkaReader::open(ks, held.iter().map(String::as_str))
        .with_context(|| format!("source {name}"))?;
    loop {
        if opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            report.interrupted = true;
            break;
        }
        let Some(round) = reader.next_round().with_context(|| {
            format!("source {name}: reading stopped; what was written so far is kept")
        })?
        else {
            break;
        };
        let next = round.next.clone();
        write_round(round, jobs, ix, sink, opts, progress, report)?;
        reader.commit(&next);
    }
    Ok(())
}

/// Follow mode: every Kafka source, round after round, until `stop`.
#[allow(clippy::too_many_arguments)]
fn follow(
    streams: Vec<(KafkaSettings, StreamJobs)>,
    flush: Duration,
    stop: &std::sync::atomic::AtomicBool,
    ix: &linkmeter_ingest::inventory::Index,
    sink: &dyn linkmeter_ingest::warehouse::Sink,
    opts: &mut Options,
    progress: &Progress,
    mut report: Report,
) -> Result<Report> {
    let held = held_keys(sink)?;
    let mut readers = Vec::new();
    for (ks, jobs) in streams {
        let name = ks.name.clone();
        let r = KafkaReader::open(ks, held.iter().map(String::as_str))
            .with_context(|| format!("source {name}"))?;
        readers.push((r, jobs, name));
    }
    tracing::info!(
        message = "following",
        sources = readers.len(),
        flush_secs = flush.as_secs()
    );
    let share = flush / readers.len().max(1) as u32;
    while !stop.load(Ordering::Relaxed) {
        for (reader, jobs, name) in readers.iter_mut() {
            let Some(round) = reader.follow_round(share, stop).with_context(|| {
                format!("source {name}: reading stopped; what was written so far is kept")
            })?
            else {
                continue;
            };
            let next = round.next.clone();
            write_round(round, jobs, ix, sink, opts, progress, &mut report)?;
            reader.commit(&next);
        }
    }
    Ok(report)
}

/// Writes one round of stream inputs (its own segments) and merges what it did into `report`.
#[allow(clippy::too_many_arguments)]
fn write_round(
    round: linkmeter_ingest::source::kafka::Round,
    template: &StreamJobs,
    ix: &linkmeter_ingest::inventory::Index,
    sink: &dyn linkmeter_ingest::warehouse::Sink,
    opts: &mut Options,
    progress: &Progress,
    report: &mut Report,
) -> Result<()> {
    let jobs: Vec<Job> = round
        .inputs
        .into_iter()
        .map(|(input, lines)| Job {
            input,
            fetch: Some(round.fetch.clone()),
            line_offsets: Some(lines),
            format: template.format.clone(),
            account: template.account.clone(),
            content: template.content,
        })
        .collect();
    // Every round writes segments of its own (the file pass was round 0).
    opts.round += 1;
    let r = pipeline::ingest(&jobs, ix, sink, opts, progress).context("ingest stopped")?;
    report.tally.merge(&r.tally);
    report.rolled_back += r.rolled_back;
    report.superseded += r.superseded;
    report.interrupted |= r.interrupted;
    let room = 20usize.saturating_sub(report.samples.len());
    report.samples.extend(r.samples.into_iter().take(room));
    Ok(())
}

fn spawn_progress(
    p: Arc<Progress>,
    done: Arc<std::sync::atomic::AtomicBool>,
    total: u64,
    inputs: u64,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let t0 = Instant::now();
        if crate::logging::interactive() {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} ({binary_bytes_per_sec}) {msg}",
                )
                .expect("valid template"),
            );
            while !done.load(Ordering::Relaxed) {
                let recs = p.records.load(Ordering::Relaxed);
                let done = p.inputs_done.load(Ordering::Relaxed);
                let secs = t0.elapsed().as_secs_f64().max(0.001);
                bar.set_position(p.bytes_read.load(Ordering::Relaxed));
                bar.set_message(format!(
                    "{done}/{inputs} inputs ({:.0}/s), {:.0} records/s",
                    done as f64 / secs,
                    recs as f64 / secs
                ));
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        } else {
            let mut last = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() >= Duration::from_secs(10) {
                    last = Instant::now();
                    tracing::info!(
                        message = "progress",
                        bytes_read = p.bytes_read.load(Ordering::Relaxed),
                        bytes_total = total,
                        inputs_done = p.inputs_done.load(Ordering::Relaxed),
                        inputs_total = inputs,
                        records = p.records.load(Ordering::Relaxed)
                    );
                }
            }
        }
    })
}

/// Prints the run summary: the balance, then what was quarantined and where.
pub fn print_summary(o: &Outcome) {
    let t = &o.report.tally;
    println!(
        "run {} finished in {:.1}s; warehouse {}",
        o.run_id,
        o.elapsed.as_secs_f64(),
        o.warehouse
    );
    print!("{t}");
    if let Some(s3) = &o.s3 {
        let st = s3.stats();
        println!(
            "S3: {} requests, {} retried ({} cut-off bodies resumed), {} objects unreadable after retries, {:.1} MiB downloaded",
            st.requests.load(Ordering::Relaxed),
            st.retries.load(Ordering::Relaxed),
            st.resumed.load(Ordering::Relaxed),
            st.failed_objects.load(Ordering::Relaxed),
            st.bytes.load(Ordering::Relaxed) as f64 / 1048576.0
        );
    }
    if o.report.superseded + o.report.rolled_back > 0 {
        println!(
            "segments {} replaced because an input changed, {} rolled back after an interrupted run",
            o.report.superseded, o.report.rolled_back
        );
    }
    if t.quarantined > 0 || t.quarantine_rows > 0 {
        println!(
            "quarantined input ({} entries; all in table `quarantine`):",
            t.quarantine_rows
        );
        for s in o.report.samples.iter().take(10) {
            println!(
                "  {}:{} (offset {}): {}",
                s.uri, s.bad.position.line, s.bad.position.offset, s.bad.reason
            );
        }
        if t.quarantine_rows > 10 {
            println!("  … see: linkmeter sql --warehouse {} \"SELECT source_uri, line, reason FROM quarantine\"", o.warehouse);
        }
    }
}

/// A flag raised by SIGTERM (what ECS sends before SIGKILL) or Ctrl-C.
pub fn stop_on_signals() -> Arc<std::sync::atomic::AtomicBool> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal ends the process at once (a stuck run can still be stopped); the
        // first only raises the flag. The order of these two registrations is what does it.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone());
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    stop
}

/// Runs `ingest`.
pub fn run(a: Args) -> Result<ExitCode> {
    let cfg = Config::load(&a.config).map_err(|e| e.context(ConfigProblem))?;
    let strict = a.strict || cfg.ingest.strict;
    let stop = stop_on_signals();
    let o = ingest(
        &cfg,
        &Selection {
            only: a.source.clone(),
            force: a.force,
            workers: a.workers,
            since: a.since,
            until: a.until,
            shard: a.shard,
            follow: a
                .follow
                .then(|| (Duration::from_secs(a.flush_secs.max(1)), stop.clone())),
            stop: (!a.follow).then_some(stop),
            lock_held: false,
        },
    )?;
    print_summary(&o);
    if o.report.interrupted {
        eprintln!("stopped by a signal: every input read so far is committed; run ingest again to read the rest");
        return Ok(ExitCode::from(crate::EXIT_INTERRUPTED));
    }
    if !o.report.tally.balanced() {
        return Err(anyhow!("the conservation balance does not hold; this is a bug in linkmeter, please report it with the run id {}", o.run_id));
    }
    if strict && o.report.tally.quarantined + o.report.tally.quarantine_rows > 0 {
        eprintln!(
            "--strict: {} records were quarantined; failing the run",
            o.report.tally.quarantined
        );
        return Ok(ExitCode::from(crate::EXIT_QUARANTINED));
    }
    Ok(ExitCode::SUCCESS)
}
