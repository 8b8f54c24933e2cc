//! `linkmeter reconcile`: holds a closed month against the AWS bill (`bill_lines`).

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use linkmeter_aggregate::reconcile::{invoiced_amounts, reconcile, Reconciliation};
use linkmeter_sql::Catalog;
use linkmeter_warehouse::{Month, Warehouse};
use rust_decimal::Decimal;

use crate::config::ConfigArg;
use crate::{ConfigContext, Exit};

/// Arguments of `reconcile`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  linkmeter reconcile --month 2026-10\n  linkmeter reconcile --config estate/linkmeter.toml --month 2026-10 --tolerance 0.02\n\nCompares the month linkmeter invoiced (run `linkmeter invoice --month M` first) with the AWS bill\nloaded by ingest from a source with content = \"cur2\" (CUR 2.0 export) or \"focus\" (FOCUS export):\nper day and (account, meter, endpoint or cluster) the quantities (endpoint AZ-hours, GB,\nconnectivity hours), per month the cost and the rate. Each comparison is matched, within_tolerance,\ndiffers or no_bill_yet, with the likeliest reason when it differs (an endpoint missing from the\ninventory, a day without flow logs, SKIPDATA, a rate unlike the price book's). Writes\nWAREHOUSE/reports/month=M/reconcile.csv. Exit 0 whatever it finds; --strict exits 3 when something differs."
)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The month, YYYY-MM.
    #[arg(long)]
    pub month: Month,
    /// How far apart (relative, 0.01 = 1 %) a figure may be from the bill and still be
    /// `within_tolerance` rather than `differs`.
    #[arg(long, default_value = "0.01")]
    pub tolerance: Decimal,
    /// Exit 3 when any comparison differs.
    #[arg(long)]
    pub strict: bool,
}

/// Reconciles `month` in `wh` and writes its CSV; returns the result and the CSV's path.
pub fn reconcile_month(
    wh: &Warehouse,
    rt: &tokio::runtime::Handle,
    engine: &linkmeter_sql::EngineOptions,
    bytes_per_gb: u64,
    month: Month,
    tolerance: Decimal,
) -> Result<(Reconciliation, String)> {
    let cat = rt
        .block_on(Catalog::open_with(wh, engine))
        .context("opening the warehouse")?;
    let amounts = rt
        .block_on(invoiced_amounts(&cat, month))
        .context("reading the invoice lines")?;
    if amounts.is_empty() {
        return Err(anyhow!(
            "{month} has not been invoiced: run `linkmeter invoice --month {month}` first"
        ))
        .config();
    }
    let r = rt
        .block_on(reconcile(&cat, month, bytes_per_gb, tolerance, &amounts))
        .with_context(|| format!("reconciling {month}"))?;
    let rel = format!("reports/month={}/reconcile.csv", month.label());
    rt.block_on(wh.put_file(&rel, Bytes::from(linkmeter_reports::reconcile::csv(&r))))
        .context("writing reconcile.csv")?;
    Ok((r, wh.join(&rel)))
}

/// Runs `reconcile`.
pub fn run(a: Args, rt: &tokio::runtime::Handle) -> Result<Exit> {
    let cfg = a.config.load()?;
    let book = crate::cmd_invoice::price_book(&cfg, rt)?;
    let wh = crate::warehouse::open(&cfg, rt)?;
    let (r, path) = reconcile_month(
        &wh,
        rt,
        &cfg.engine.options(),
        book.bytes_per_gb,
        a.month,
        a.tolerance,
    )?;
    print!(
        "{}",
        linkmeter_reports::reconcile::summary(&r, &a.month.label(), &path)
    );
    let differs = r
        .rows
        .iter()
        .any(|x| x.status == linkmeter_aggregate::reconcile::Status::Differs);
    Ok(if a.strict && differs {
        Exit::Quarantined
    } else {
        Exit::Ok
    })
}
