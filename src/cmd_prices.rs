//! `linkmeter prices`: price books from the AWS bill.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use linkmeter_aggregate::bill_prices::{billed_rates, check, price_book_text};
use linkmeter_sql::Catalog;
use linkmeter_warehouse::Month;

use crate::config::ConfigArg;
use crate::{ConfigContext, Exit};

/// Arguments of `prices`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: PricesCommand,
}

/// What `prices` does.
#[derive(clap::Subcommand)]
pub enum PricesCommand {
    /// Write a price book from the unblended rates the AWS bill charged in a month.
    #[command(
        after_help = "Examples:\n  linkmeter prices from-bill --month 2026-10 --out prices.toml\n  linkmeter prices from-bill --config estate/linkmeter.toml --month 2026-10     # to stdout\n\nReads bill_lines (loaded by ingest from a source with content = \"cur2\" or \"focus\") and writes one\nrate per meter and region from the period's start: the billed unblended rate, tiers for endpoint_gb\nwhen the bill shows several (breaks where the month's usage crossed them), and for a meter billed at\nseveral rates the rate of most of its quantity (the others are listed). The result is checked by\nloading it as linkmeter does; bytes_per_gb is kept from the config's price book when there is one."
    )]
    FromBill(FromBillArgs),
}

/// Arguments of `prices from-bill`.
#[derive(clap::Args)]
pub struct FromBillArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The billing period, YYYY-MM.
    #[arg(long)]
    pub month: Month,
    /// Write the price book here (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `prices`.
pub fn run(a: Args, rt: &tokio::runtime::Handle) -> Result<Exit> {
    let PricesCommand::FromBill(a) = a.command;
    let cfg = a.config.load()?;
    let bytes_per_gb = crate::cmd_invoice::price_book(&cfg, rt)
        .map(|b| b.bytes_per_gb)
        .unwrap_or(1 << 30);
    let wh = crate::warehouse::open(&cfg, rt)?;
    let cat = rt
        .block_on(Catalog::open_with(&wh, &cfg.engine.options()))
        .context("opening the warehouse")?;
    let (billed, notes, currency) = rt
        .block_on(billed_rates(&cat, a.month))
        .context("reading bill_lines")?;
    if billed.is_empty() {
        return Err(anyhow!(
            "no billed rates for {} in bill_lines: add a source with content = \"cur2\" or \"focus\" to the config and run `linkmeter ingest`",
            a.month
        ))
        .config();
    }
    let out = price_book_text(a.month, &billed, &currency, bytes_per_gb, notes);
    check(&out.toml).context(
        "the price book written from the bill does not load; this is a bug in linkmeter",
    )?;
    match &a.out {
        Some(p) => {
            std::fs::write(p, &out.toml).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("wrote {} ({} rates)", p.display(), billed.len());
        }
        None => print!("{}", out.toml),
    }
    for n in &out.notes {
        eprintln!("note: {n}");
    }
    Ok(Exit::Ok)
}
