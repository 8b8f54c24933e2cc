//! `linkmeter invoice`: closes a month (rollups, both views priced, invoice lines) and writes
//! its reports.

use anyhow::{anyhow, Context, Result};
use linkmeter_aggregate::close::{close_month, CloseError, CloseOptions, MonthClose};
use linkmeter_aggregate::price_book::PriceBook;
use linkmeter_reports::write::{write_month, Written};
use linkmeter_warehouse::{Month, Warehouse};

use crate::config::{Config, ConfigArg};
use crate::{ConfigContext, Exit};

/// Arguments of `invoice`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  linkmeter invoice --month 2026-10\n  linkmeter invoice --config estate/linkmeter.toml --month 2026-10\n\nRuns the month's rollups (replacing that month's earlier output), prices them with the price book\n(`prices` in the config) and writes invoice_lines/month=M/invoice_view={aws,chargeback}/ and\nWAREHOUSE/reports/month=M/finance-{aws,chargeback}.csv and focus-{aws,chargeback}.csv (FOCUS 1.2 column\nnames), and report.html (charts of the month, a static file). Rerunning after late data restates the month. The summary shows totals per meter, top movers against\nthe previous month (when it was invoiced), data-quality lines and the query engine's peak memory\n([engine] memory_limit in the config, or LINKMETER_MEMORY_LIMIT, caps it; default 512MiB, \"unlimited\" for none).\nThe close reads the hourly sums flow_hours and broker_hours, not the flow rows; a warehouse written\nbefore them has them built first (the summary says so).\nWith an AWS bill loaded (a source with content = \"cur2\" or \"focus\"), every line gets its status against it (invoice_lines.reconciled, a CSV column; `linkmeter reconcile` says why). A month closed with `linkmeter close` is refused; changes to it since appear here as adjustment lines when this is the first open month after it."
)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The month, YYYY-MM.
    #[arg(long)]
    pub month: Month,
}

/// The config's price book.
pub fn price_book(cfg: &Config, rt: &tokio::runtime::Handle) -> Result<PriceBook> {
    let prices = cfg
        .prices
        .as_deref()
        .ok_or_else(|| anyhow!("the config names no price book; add prices = \"prices.toml\" (an example ships as aggregate/prices.example.toml)"))
        .config()?;
    PriceBook::load(&cfg.file(prices, rt).config()?).config()
}

/// Closes `month` in `wh` (whose lock the caller holds) and writes its reports.
pub fn invoice(
    cfg: &Config,
    wh: &Warehouse,
    rt: &tokio::runtime::Handle,
    book: &PriceBook,
    month: Month,
) -> Result<(MonthClose, Written)> {
    let opts = CloseOptions {
        reconcile_tolerance: cfg.reconcile_tolerance,
        engine: cfg.engine.options(),
    };
    let close = rt
        .block_on(close_month(wh, book, month, opts))
        .map_err(|e| match e {
            // A rate the price book lacks is the user's to add; a closed month is not to invoice.
            CloseError::Prices(p) => anyhow!(p).context(crate::ConfigProblem),
            e @ CloseError::Closed { .. } => anyhow!(e).context(crate::ConfigProblem),
            e => anyhow!(e),
        })
        .with_context(|| format!("closing {month}"))?;
    let written = rt
        .block_on(write_month(wh, &close, book))
        .context("writing the reports")?;
    Ok((close, written))
}

/// Prints the invoice summary.
pub fn print_summary(close: &MonthClose, written: &Written, book: &PriceBook) {
    print!(
        "{}",
        linkmeter_reports::summary::summary(close, written, &book.currency)
    );
}

/// Runs `invoice`.
pub fn run(a: Args, rt: &tokio::runtime::Handle) -> Result<Exit> {
    let cfg = a.config.load()?;
    let book = price_book(&cfg, rt)?;
    let wh = crate::warehouse::open(&cfg, rt)?;
    let _lock = rt.block_on(wh.lock("invoice", None))?;
    let (close, written) = invoice(&cfg, &wh, rt, &book, a.month)?;
    print_summary(&close, &written, &book);
    Ok(Exit::Ok)
}
