//! `linkmeter ingest`: every configured source into the warehouse, with a conservation
//! balance at the end.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use linkmeter_ingest::inventory::Inventory;
use linkmeter_ingest::run::{Outcome, RunError, RunOptions};
use linkmeter_warehouse::time::parse_instant;
use linkmeter_warehouse::Warehouse;

use crate::config::{Config, ConfigArg};
use crate::{ConfigContext, Exit};

/// Arguments of `ingest`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  linkmeter ingest --config linkmeter.toml\n  linkmeter ingest --config linkmeter.toml --source flowlogs --strict\n  linkmeter ingest --since 2026-10-01 --until 2026-11-01\n  linkmeter ingest --shard 0/4        # one of four tasks sharing the sources\n  linkmeter ingest --follow --flush-secs 10   # keep consuming Kafka sources until SIGTERM\n  LINKMETER_WAREHOUSE=/data/wh linkmeter ingest\n\nInputs already ingested with the same content are skipped; a changed input replaces its previous\nrows. An inventory change never reads an input again: a run without --shard first re-attributes the\nstored rows whose clusters or connections changed and says what moved (README \"Inventory edits\";\naccount names and cost centers change no row). Bad lines are quarantined (table `quarantine`) and never stop good data.\nEvery input is held to the limits in [ingest.limits] (line length, decompressed size, record span,\nquarantine rows, partitions, protobuf size and nesting; README \"Limits\"): a breach is a quarantine\nrow naming the input and the limit, never a crash."
)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
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
    #[arg(long, value_parser = parse_instant)]
    pub since: Option<i64>,
    /// Only inputs whose key time is before this (YYYY-MM-DD or RFC 3339, UTC).
    #[arg(long, value_parser = parse_instant)]
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

fn parse_shard(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?} is not a shard I/N with 0 <= I < N, e.g. 0/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// Which inputs a run takes and how.
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
    /// Follow Kafka sources at this flush interval until stopped.
    pub follow: Option<Duration>,
}

/// Ingests everything the config names into `wh` (whose lock the caller holds).
pub fn ingest(
    cfg: &Config,
    wh: &Warehouse,
    rt: &tokio::runtime::Handle,
    sel: &Selection,
    stop: Arc<AtomicBool>,
    command: &'static str,
) -> Result<Outcome> {
    let inv = cfg.file(&cfg.inventory, rt).config()?;
    let ix = Inventory::load(&inv).config()?;
    let specs = cfg.sources(&sel.only, sel.shard, rt).config()?;
    let range = match (sel.since, sel.until) {
        (None, None) => None,
        (a, b) => Some((a.unwrap_or(i64::MIN), b.unwrap_or(i64::MAX))),
    };
    let o = RunOptions {
        command,
        force: sel.force,
        workers: cfg.ingest.workers(sel.workers),
        flush_rows: cfg.ingest.flush_rows,
        range,
        shard: sel.shard,
        follow: sel.follow,
        stop: Some(stop),
        s3: cfg.s3.settings(),
        limits: cfg.ingest.limits,
        follow_symlinks: cfg.ingest.follow_symlinks,
    };
    let progress = crate::progress::Display::start();
    let r = linkmeter_ingest::run::run(&specs, &ix, wh, rt, &o, progress.counters());
    progress.finish();
    r.map_err(|e| match e {
        RunError::Config(m) => anyhow!(m).context(crate::ConfigProblem),
        e => anyhow!(e),
    })
}

/// Prints the run summary: the balance, then what was quarantined and where.
pub fn print_summary(o: &Outcome, warehouse: &str) {
    print!("{}", o.summary(warehouse));
}

/// A flag raised by SIGTERM (what ECS sends before SIGKILL) or Ctrl-C.
pub fn stop_on_signals() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // A second signal ends the process at once (a stuck run can still be stopped); the
        // first only raises the flag. The order of these two registrations is what does it.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone());
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    stop
}

/// How an ingest run ends: interrupted, unbalanced (a bug) or too much quarantined.
pub fn verdict(o: &Outcome, strict: bool) -> Result<Exit> {
    if o.report.interrupted {
        eprintln!("stopped by a signal: every input read so far is committed; run ingest again to read the rest");
        return Ok(Exit::Interrupted);
    }
    if !o.report.tally.balanced() {
        return Err(anyhow!("the conservation balance does not hold; this is a bug in linkmeter, please report it with the run id {}", o.run_id));
    }
    let t = &o.report.tally;
    let bills = o.bills.as_ref().map_or(0, |b| b.failed.len());
    if strict && bills > 0 {
        eprintln!("--strict: {bills} bill export files could not be used (table `quarantine`); failing the run");
        return Ok(Exit::Quarantined);
    }
    if strict && t.quarantined + t.quarantine_rows > 0 {
        eprintln!(
            "--strict: {} records were quarantined; failing the run",
            t.quarantined
        );
        return Ok(Exit::Quarantined);
    }
    Ok(Exit::Ok)
}

/// Runs `ingest`.
pub fn run(a: Args, rt: &tokio::runtime::Handle) -> Result<Exit> {
    let cfg = a.config.load()?;
    let strict = a.strict || cfg.ingest.strict;
    let stop = stop_on_signals();
    let wh = crate::warehouse::open(&cfg, rt)?;
    let _lock = rt.block_on(wh.lock("ingest", a.shard))?;
    let o = ingest(
        &cfg,
        &wh,
        rt,
        &Selection {
            only: a.source.clone(),
            force: a.force,
            workers: a.workers,
            since: a.since,
            until: a.until,
            shard: a.shard,
            follow: a.follow.then(|| Duration::from_secs(a.flush_secs.max(1))),
        },
        stop.clone(),
        "ingest",
    )?;
    print_summary(&o, &wh.display());
    verdict(&o, strict)
}
