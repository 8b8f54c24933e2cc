//! `linkmeter run`: the scheduled job. Every source until caught up, then the rollups,
//! invoices and reports of the previous month and the current one (late files restate the
//! previous month), all under one warehouse lock, with exit codes a scheduler can act on.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::{anyhow, Context, Result};
use chrono::{Datelike, Utc};
use linkmeter_ingest::warehouse::WarehouseError;

use crate::cmd_ingest::{ConfigProblem, Selection};
use crate::config::Config;

/// Exit code: another run holds the warehouse lock (nothing was done; try later).
pub const EXIT_BUSY: u8 = 5;

/// Arguments of `run`.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  linkmeter run --config linkmeter.toml
  linkmeter run --month 2026-10             # treat October as the current month
  LINKMETER_CONFIG=/etc/linkmeter.toml linkmeter run   # the ECS task's command

Ingests every source until caught up (Kafka sources to their end), then runs the rollups and
invoices of the previous and the current month (UTC), writing invoice_lines and the finance and
FOCUS CSVs under WAREHOUSE/reports/month=YYYY-MM/. Running it twice changes nothing. The whole
run holds the warehouse lock, so overlapping runs never write together: the second exits 5.

Exit codes:
  0  success
  1  fatal error (see the message; nothing partial is visible, the next run recovers)
  2  configuration error (config, inventory or price book)
  3  done, but more input was quarantined than --max-quarantined allows
  4  stopped by SIGTERM/SIGINT; what was read is committed, the next run continues
  5  another run holds the warehouse lock; nothing was done")]
pub struct Args {
    /// Configuration file.
    #[arg(
        long,
        short,
        env = "LINKMETER_CONFIG",
        default_value = "linkmeter.toml"
    )]
    pub config: PathBuf,
    /// The month to treat as current (YYYY-MM; default: this month, UTC).
    #[arg(long)]
    pub month: Option<String>,
    /// Largest share of this run's records that may be quarantined before it exits 3.
    #[arg(long, env = "LINKMETER_MAX_QUARANTINED", default_value_t = 0.01)]
    pub max_quarantined: f64,
    /// Worker threads for ingest (default: config, else the number of cores).
    #[arg(long)]
    pub workers: Option<usize>,
}

/// The month before `YYYY-MM`.
fn previous(month: &str) -> Result<String> {
    let d = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .map_err(|_| anyhow!("--month {month:?} is not YYYY-MM").context(ConfigProblem))?;
    let p = d - chrono::Months::new(1);
    Ok(format!("{:04}-{:02}", p.year(), p.month()))
}

/// Runs `run`.
pub fn run(a: Args) -> Result<ExitCode> {
    let cfg = Config::load(&a.config).map_err(|e| e.context(ConfigProblem))?;
    if !(0.0..=1.0).contains(&a.max_quarantined) {
        return Err(anyhow!(
            "--max-quarantined {} is not a fraction between 0 and 1",
            a.max_quarantined
        )
        .context(ConfigProblem));
    }
    let current = a
        .month
        .clone()
        .unwrap_or_else(|| Utc::now().format("%Y-%m").to_string());
    let months = [previous(&current)?, current];
    if cfg.prices.is_none() {
        return Err(anyhow!(
            "the config names no price book; `run` invoices, so add prices = \"prices.toml\""
        )
        .context(ConfigProblem));
    }
    let stop = crate::cmd_ingest::stop_on_signals();
    let wh = crate::warehouse::Warehouse::open(&cfg)?;
    let _lock = match wh.sink.lock("run", None) {
        Ok(l) => l,
        Err(WarehouseError::Locked { path, holder }) => {
            eprintln!("another run holds the warehouse lock {path} ({holder}); nothing was done, try again later");
            tracing::warn!(message = "warehouse busy", lock = %path, holder = %holder);
            return Ok(ExitCode::from(EXIT_BUSY));
        }
        Err(e) => return Err(e).context("taking the warehouse lock"),
    };
    tracing::info!(message = "run started", months = ?months);
    let o = crate::cmd_ingest::ingest(
        &cfg,
        &Selection {
            workers: a.workers,
            stop: Some(stop.clone()),
            lock_held: true,
            ..Selection::default()
        },
    )?;
    crate::cmd_ingest::print_summary(&o);
    if !o.report.tally.balanced() {
        return Err(anyhow!("the conservation balance does not hold; this is a bug in linkmeter, please report it with the run id {}", o.run_id));
    }
    let interrupted = || {
        eprintln!("stopped by a signal: every input read so far is committed and no invoice is half written; the next run continues");
        tracing::warn!(message = "run interrupted");
        Ok(ExitCode::from(crate::EXIT_INTERRUPTED))
    };
    if o.report.interrupted {
        return interrupted();
    }
    for month in &months {
        if stop.load(Ordering::Relaxed) {
            return interrupted();
        }
        let inv = crate::cmd_invoice::invoice_with(&cfg, month, true)
            .with_context(|| format!("invoicing {month}"))?;
        crate::cmd_invoice::print_summary(&inv, month);
        tracing::info!(message = "month invoiced", month = %month, lines = inv.invoice.lines.len());
    }
    let t = &o.report.tally;
    let share = if t.records_in == 0 {
        0.0
    } else {
        t.quarantined as f64 / t.records_in as f64
    };
    if share > a.max_quarantined {
        eprintln!(
            "{} of {} records ({:.3} %) were quarantined, more than --max-quarantined {} allows; see the table `quarantine`",
            t.quarantined,
            t.records_in,
            share * 100.0,
            a.max_quarantined
        );
        return Ok(ExitCode::from(crate::EXIT_QUARANTINED));
    }
    tracing::info!(message = "run finished", run_id = %o.run_id);
    Ok(ExitCode::SUCCESS)
}
