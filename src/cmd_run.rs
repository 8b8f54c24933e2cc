//! `linkmeter run`: the scheduled job. Every source until caught up, then the rollups,
//! invoices and reports of the previous month and the current one (late files restate the
//! previous month), all under one warehouse lock, with exit codes a scheduler can act on.

use std::sync::atomic::Ordering;

use anyhow::{anyhow, Context, Result};
use linkmeter_warehouse::Month;

use crate::cmd_ingest::Selection;
use crate::config::ConfigArg;
use crate::{ConfigProblem, Exit};

/// Arguments of `run`.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  linkmeter run --config linkmeter.toml
  linkmeter run --month 2026-10             # treat October as the current month
  linkmeter run --all                       # backfill: read inputs of any age
  LINKMETER_CONFIG=/etc/linkmeter.toml linkmeter run   # the ECS task's command

Ingests every source until caught up (Kafka sources to their end; file and S3 inputs stamped
from a day before the previous month on, or every input with --all), then runs the rollups and
invoices of the previous and the current month (UTC), writing invoice_lines and the finance and
FOCUS CSVs under WAREHOUSE/reports/month=YYYY-MM/. After an inventory edit it first re-attributes
the stored rows the edit can change, reading no raw input again. Running it twice changes nothing. The whole
run holds the warehouse lock, so overlapping runs never write together: the second exits 5.

Exit codes:
  0  success
  1  fatal error (see the message; nothing partial is visible, the next run recovers)
  2  configuration error (config, inventory or price book)
  3  done, but more input was quarantined than --max-quarantined allows
  4  stopped by SIGTERM/SIGINT; what was read is committed, the next run continues
  5  another run holds the warehouse lock; nothing was done")]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The month to treat as current (YYYY-MM; default: this month, UTC).
    #[arg(long)]
    pub month: Option<Month>,
    /// Largest share of this run's records that may be quarantined before it exits 3.
    #[arg(long, env = "LINKMETER_MAX_QUARANTINED", default_value_t = 0.01)]
    pub max_quarantined: f64,
    /// Worker threads for ingest (default: config, else the number of cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Read inputs of any age (a backfill), not only those that can still change an invoice
    /// this run writes.
    #[arg(long)]
    pub all: bool,
    /// How long before the previous month starts an input may be stamped and still hold its
    /// records (a flow record spans at most an hour across the boundary; delivery is later,
    /// never earlier, than the records).
    #[arg(long, default_value_t = 24, value_name = "HOURS")]
    pub lateness_hours: u32,
}

/// Runs `run`.
pub fn run(a: Args, rt: &tokio::runtime::Handle) -> Result<Exit> {
    let cfg = a.config.load()?;
    if !(0.0..=1.0).contains(&a.max_quarantined) {
        return Err(anyhow!(
            "--max-quarantined {} is not a fraction between 0 and 1",
            a.max_quarantined
        )
        .context(ConfigProblem));
    }
    let current = a.month.unwrap_or_else(Month::now);
    let months = [current.prev(), current];
    let book = crate::cmd_invoice::price_book(&cfg, rt)
        .context("`run` invoices, so it needs the price book")?;
    let stop = crate::cmd_ingest::stop_on_signals();
    let wh = crate::warehouse::open(&cfg, rt)?;
    let _lock = match rt.block_on(wh.lock("run", None)) {
        Ok(l) => l,
        Err(linkmeter_warehouse::Error::Locked { path, holder }) => {
            eprintln!("another run holds the warehouse lock {path} ({holder}); nothing was done, try again later");
            tracing::warn!(message = "warehouse busy", lock = %path, holder = %holder);
            return Ok(Exit::Busy);
        }
        Err(e) => return Err(e).context("taking the warehouse lock"),
    };
    tracing::info!(message = "run started", months = ?months.map(|m| m.label()));
    // Only what can still change an invoice this run writes: inputs stamped from the previous
    // month on (S3 listing skips older date prefixes), unless --all.
    let since = (!a.all).then(|| months[0].start_secs() - i64::from(a.lateness_hours) * 3600);
    match since {
        Some(t) => {
            let (d, h) = linkmeter_warehouse::time::day_hour(t);
            println!(
                "look-back: inputs stamped from {d} {h}:00 UTC on (the previous month and {} h of lateness; --all reads every input)",
                a.lateness_hours
            )
        }
        None => println!("look-back: every input (--all)"),
    }
    let sel = Selection {
        workers: a.workers,
        since,
        ..Selection::default()
    };
    let o = crate::cmd_ingest::ingest(&cfg, &wh, rt, &sel, stop.clone(), "run")?;
    crate::cmd_ingest::print_summary(&o, &wh.display());
    if !o.report.tally.balanced() {
        return Err(anyhow!("the conservation balance does not hold; this is a bug in linkmeter, please report it with the run id {}", o.run_id));
    }
    let interrupted = || {
        eprintln!("stopped by a signal: every input read so far is committed and no invoice is half written; the next run continues");
        tracing::warn!(message = "run interrupted");
        Ok(Exit::Interrupted)
    };
    if o.report.interrupted {
        return interrupted();
    }
    let closed = rt
        .block_on(linkmeter_warehouse::closed::read(&wh))
        .context("reading closed_months")?;
    for month in months {
        if stop.load(Ordering::Relaxed) {
            return interrupted();
        }
        if closed.contains_key(&month.label()) {
            // A closed month is never rewritten: what changed goes into the next open month.
            println!("{month} is closed; not invoiced again (its changes become adjustment lines of the first open month after it)");
            continue;
        }
        let (close, written) = crate::cmd_invoice::invoice(&cfg, &wh, rt, &book, month)?;
        crate::cmd_invoice::print_summary(&close, &written, &book);
        tracing::info!(message = "month invoiced", month = %month, lines = close.invoice.lines.len());
    }
    let t = &o.report.tally;
    let share = match t.records_in {
        0 => 0.0,
        n => t.quarantined as f64 / n as f64,
    };
    if share > a.max_quarantined {
        eprintln!(
            "{} of {} records ({:.3} %) were quarantined, more than --max-quarantined {} allows; see the table `quarantine`",
            t.quarantined,
            t.records_in,
            share * 100.0,
            a.max_quarantined
        );
        return Ok(Exit::Quarantined);
    }
    tracing::info!(message = "run finished", run_id = %o.run_id);
    Ok(Exit::Ok)
}
