//! The month close: rollups, both invoice views priced from the price book, the invoice lines
//! written, and what the reports need (data quality, the previous month's totals, hourly bytes
//! per cluster).

use std::collections::BTreeMap;

use linkmeter_sql::Catalog;
use linkmeter_warehouse::{Month, Warehouse};
use rust_decimal::Decimal;

use crate::invoice::{aws_view, chargeback_view, Invoice};
use crate::load::{load_accounts, load_month, strings, wide};
use crate::price_book::{PriceBook, PriceError};
use crate::quality::{quality, Quality};
use crate::rollup::{rollup, RollupError, RollupReport};

/// Errors of the month close.
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    /// The rollups or the warehouse failed.
    #[error(transparent)]
    Rollup(#[from] RollupError),
    /// The price book cannot price the month (a rate missing for a region or date).
    #[error(transparent)]
    Prices(#[from] PriceError),
}

impl From<linkmeter_sql::SqlError> for CloseError {
    fn from(e: linkmeter_sql::SqlError) -> Self {
        CloseError::Rollup(e.into())
    }
}

impl From<linkmeter_warehouse::Error> for CloseError {
    fn from(e: linkmeter_warehouse::Error) -> Self {
        CloseError::Rollup(e.into())
    }
}

/// A closed month: both views, the accounts' names, and the figures the reports show.
#[derive(Debug)]
pub struct MonthClose {
    /// The month.
    pub month: Month,
    /// What AWS bills each account.
    pub invoice: Invoice,
    /// Owner-billed meters re-allocated to clients by the price book's policies.
    pub chargeback: Invoice,
    /// Account id → (name, cost center).
    pub accounts: BTreeMap<String, (String, String)>,
    /// Data quality of the month.
    pub quality: Quality,
    /// Per account, the previous month's `aws` total (when it was invoiced).
    pub previous: BTreeMap<String, Decimal>,
    /// (hour, cluster, billable bytes) for charts.
    pub hourly: Vec<(String, String, u128)>,
    /// Rows per rollup table.
    pub rollups: RollupReport,
}

/// Settings of the month close.
#[derive(Debug, Clone)]
pub struct CloseOptions {
    /// How far an hour's flow/broker ratio may stray from the month's median before it is
    /// flagged.
    pub reconcile_tolerance: f64,
    /// The query engine's settings (its memory budget).
    pub engine: linkmeter_sql::EngineOptions,
}

/// Closes `month`: rollups, pricing, `invoice_lines` for both views. Rerunning restates it.
pub async fn close_month(
    wh: &Warehouse,
    book: &PriceBook,
    month: Month,
    opts: CloseOptions,
) -> Result<MonthClose, CloseError> {
    // The close reads the hourly summaries: bring them level with their tables first (a
    // warehouse from before them, or a commit cut short). No read when they agree.
    let summaries = linkmeter_warehouse::summaries::repair(wh).await?;
    let mut rollups = rollup(wh, month, &opts.engine).await?;
    rollups.summaries = summaries;
    let cat = Catalog::open_with(wh, &opts.engine).await?;
    let (usage, eh, ch) = load_month(&cat, month).await?;
    let accounts = load_accounts(&cat).await?;
    let invoice = aws_view(book, &usage, &eh, &ch)?;
    let chargeback = chargeback_view(book, &usage, &eh, &ch)?;
    let quality = quality(&cat, month, opts.reconcile_tolerance).await?;
    let previous = previous_totals(&cat, month).await?;
    let hourly = hourly_by_cluster(&cat, month).await?;
    for (view, v) in [("aws", &invoice), ("chargeback", &chargeback)] {
        let batch = crate::lines_table::batch(v, &book.currency, &accounts);
        crate::lines_table::write(wh, month, view, batch).await?;
    }
    rollups.memory_peak = rollups.memory_peak.max(cat.memory_peak());
    Ok(MonthClose {
        month,
        invoice,
        chargeback,
        accounts,
        quality,
        previous,
        hourly,
        rollups,
    })
}

/// The previous month's `aws` total per account, if it was invoiced.
async fn previous_totals(
    cat: &Catalog,
    month: Month,
) -> Result<BTreeMap<String, Decimal>, CloseError> {
    let mut previous = BTreeMap::new();
    if !cat.tables.contains(&"invoice_lines") {
        return Ok(previous);
    }
    let sql = format!(
        "SELECT account_id, CAST(SUM(amount) AS VARCHAR) FROM invoice_lines WHERE month = '{}' AND invoice_view = 'aws' GROUP BY 1",
        month.prev().label()
    );
    for b in cat.query(&sql).await? {
        let (acct, total) = (strings(&b, 0)?, strings(&b, 1)?);
        for k in 0..b.num_rows() {
            if let Ok(d) = total[k].parse::<Decimal>() {
                previous.insert(acct[k].clone(), d);
            }
        }
    }
    Ok(previous)
}

/// Billable bytes per hour and cluster, for the report's chart.
async fn hourly_by_cluster(
    cat: &Catalog,
    month: Month,
) -> Result<Vec<(String, String, u128)>, CloseError> {
    let mut hourly = Vec::new();
    if !cat.tables.contains(&"usage_hourly") {
        return Ok(hourly);
    }
    let sql = format!(
        "SELECT CAST(usage_hour AS VARCHAR), COALESCE(cluster_name, cluster_arn), SUM(bytes) \
         FROM usage_hourly WHERE month = '{}' GROUP BY 1, 2 ORDER BY 1, 2",
        month.label()
    );
    for b in cat.query(&sql).await? {
        let (h, c, by) = (strings(&b, 0)?, strings(&b, 1)?, wide(&b, 2)?);
        for k in 0..b.num_rows() {
            hourly.push((h[k].clone(), c[k].clone(), by[k].max(0) as u128));
        }
    }
    Ok(hourly)
}
