//! `linkmeter sql`: one-shot SQL over the warehouse.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use linkmeter_sql::Catalog;

use crate::config::Config;

/// Output formats.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OutFormat {
    /// Aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
}

/// Arguments of `sql`.
#[derive(clap::Args)]
#[command(
    after_help = "Tables: flows, coverage, broker_metrics, quarantine, runs, inputs, accounts, clusters,\ncluster_connectivity, connections, endpoint_enis, and after `invoice` usage_hourly, endpoint_hours,\nconnectivity_hours, invoice_lines; views: billable_flows (observation-point rule applied),\nreconciliation (flow logs against broker metrics per cluster-hour).\n\nExamples:\n  linkmeter sql --warehouse linkmeter-demo/warehouse \"SELECT * FROM runs\"\n  linkmeter sql -w wh \"SELECT client_account_id, SUM(bytes) FROM billable_flows GROUP BY 1 ORDER BY 2 DESC\"\n  linkmeter sql -w wh -f query.sql --format csv > out.csv\n  linkmeter sql -w s3://bucket/warehouse \"SELECT COUNT(*) FROM flows\"   # [s3] settings from linkmeter.toml or LINKMETER_S3_*"
)]
pub struct Args {
    /// The SQL to run (or use --file).
    pub query: Option<String>,
    /// Read the SQL from a file.
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// Warehouse directory or s3://bucket/prefix (default: from the config).
    #[arg(long, short, env = "LINKMETER_WAREHOUSE")]
    pub warehouse: Option<String>,
    /// Configuration file, used when --warehouse is not given.
    #[arg(
        long,
        short,
        env = "LINKMETER_CONFIG",
        default_value = "linkmeter.toml"
    )]
    pub config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutFormat,
}

/// Runs `sql`.
pub fn run(a: Args) -> Result<ExitCode> {
    let sql = match (&a.query, &a.file) {
        (Some(q), None) => q.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?
        }
        _ => bail!("give either a query or --file (not both); see `linkmeter sql --help`"),
    };
    let cfg = match &a.warehouse {
        // The config still supplies [s3] settings when there is one.
        Some(w) => match Config::load(&a.config) {
            Ok(mut c) if a.config.exists() => {
                c.warehouse = w.clone();
                c
            }
            _ => Config::bare(w),
        },
        None => {
            Config::load(&a.config).context("no --warehouse given, so the config was needed")?
        }
    };
    let wh = match cfg.warehouse.starts_with("s3://") {
        true => crate::warehouse::Warehouse::open(&cfg)?.location,
        // Reading never creates a local warehouse directory.
        false => linkmeter_sql::Location::Local(cfg.warehouse_path()),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let out = rt.block_on(async {
        let cat = Catalog::open_at(&wh).await?;
        let batches = cat.query(&sql).await?;
        Ok::<_, linkmeter_sql::SqlError>(batches)
    })?;
    let text = match a.format {
        OutFormat::Table => format!("{}\n", linkmeter_sql::pretty(&out)),
        OutFormat::Csv => linkmeter_sql::csv(&out)?,
    };
    // Output is often piped into `head`: a closed pipe ends the output, it is not an error.
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the result")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}
