//! `linkmeter generate`: a synthetic estate for demos, tests and benchmarks.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use linkmeter_generate::{generate, GenOptions, GenSummary};

/// Arguments of `generate`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  linkmeter generate --out estate\n  linkmeter generate --out big --days 30 --accounts 40 --instances 4 --noise 4\n\nWrites OUT/inventory.toml, OUT/prices.toml, OUT/linkmeter.toml, OUT/flowlogs/AWSLogs/... (gzip text, one file per account and hour),\nOUT/ground_truth.csv (bytes per connection, hour and direction), OUT/bill/ (the month's AWS bill as CUR 2.0 and
FOCUS exports, with three planted differences for `reconcile`) and OUT/generated.toml (counts, what was planted)."
)]
pub struct Args {
    /// Directory to write into (created if missing).
    #[arg(long, default_value = "estate")]
    pub out: PathBuf,
    /// Days of traffic.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=62))]
    pub days: u32,
    /// First day (UTC), YYYY-MM-DD.
    #[arg(long, default_value = "2026-10-01")]
    pub start: NaiveDate,
    /// Client accounts (tenants).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(2..=120))]
    pub accounts: u64,
    /// Client instances per connection (scales MSK traffic).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub instances: u64,
    /// Noise records per MSK record, roughly (scales non-MSK traffic).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub noise: u32,
    /// Random seed; the same seed writes the same files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// The shipped example price book (published us-east-1 rates, with their sources).
pub const PRICES_EXAMPLE: &str = include_str!("../aggregate/prices.example.toml");

/// Generates with the given arguments.
pub fn make(a: &Args) -> Result<GenSummary> {
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let opts = GenOptions {
        seed: a.seed,
        start: a
            .start
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp(),
        days: a.days,
        accounts: a.accounts as usize,
        instances: a.instances as usize,
        noise: a.noise,
        ..Default::default()
    };
    let s = generate(&a.out, &opts)
        .with_context(|| format!("writing the estate into {}", a.out.display()))?;
    std::fs::write(a.out.join("prices.toml"), PRICES_EXAMPLE)
        .with_context(|| format!("writing {}", a.out.join("prices.toml").display()))?;
    Ok(s)
}

/// Runs `generate`.
pub fn run(a: Args) -> Result<crate::Exit> {
    let s = make(&a)?;
    let text = format!(
        "wrote {} files, {} lines ({} MSK records, {} noise, {} to stay unattributed, {} coverage rows, {} malformed) for {} connections into {}\nnext: linkmeter ingest --config {}\n",
        s.files, s.lines, s.msk_records, s.noise_records, s.unattributed_records, s.coverage_rows, s.malformed_lines, s.connections, a.out.display(),
        a.out.join("linkmeter.toml").display()
    );
    // Often piped into `head`: a closed pipe ends the output, it is not an error.
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).context("writing the summary")
        }
        _ => {}
    }
    Ok(crate::Exit::Ok)
}
