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
    /// The month is closed: it is never rewritten.
    #[error("{month} was closed by {by} at {at}: a closed month is never rewritten; what changed since goes into the first open month after it as adjustment lines (invoice that month)")]
    Closed {
        /// The month.
        month: String,
        /// Who closed it.
        by: String,
        /// When (RFC 3339).
        at: String,
    },
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
    /// The month held against the AWS bill (`bill_lines`); `billed` is false without one.
    pub reconciliation: crate::reconcile::Reconciliation,
    /// Closed months this month's adjustment lines correct, with the change of their `aws`
    /// total.
    pub adjustments: Vec<(String, Decimal)>,
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
    let closed = linkmeter_warehouse::closed::read(wh).await?;
    if let Some(c) = closed.get(&month.label()) {
        return Err(CloseError::Closed {
            month: month.label(),
            by: c.closed_by.clone(),
            at: chrono::DateTime::from_timestamp_micros(c.closed_at_micros)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
        });
    }
    let closed_set: std::collections::BTreeSet<String> = closed.keys().cloned().collect();
    let adjusted = crate::adjust::adjusted_by(month, &closed_set);
    // The close reads the hourly summaries: bring them level with their tables first (a
    // warehouse from before them, or a commit cut short). No read when they agree.
    let summaries = linkmeter_warehouse::summaries::repair(wh).await?;
    let mut rollups = rollup(wh, month, &opts.engine).await?;
    // The closed months this one adjusts are priced again from the warehouse as it is now (their
    // rollup tables are restated; their invoice lines and reports stay as closed).
    for c in &adjusted {
        rollup(wh, *c, &opts.engine).await?;
    }
    rollups.summaries = summaries;
    let cat = Catalog::open_with(wh, &opts.engine).await?;
    let (usage, eh, ch) = load_month(&cat, month).await?;
    let accounts = load_accounts(&cat).await?;
    let mut invoice = aws_view(book, &usage, &eh, &ch)?;
    let mut chargeback = chargeback_view(book, &usage, &eh, &ch)?;
    // Against the AWS bill, when one is loaded: every line gets its status.
    let (arn_of, owner_of) = crate::reconcile::clusters(&cat).await?;
    let amounts = crate::reconcile::amounts_of(&invoice, &arn_of);
    let reconciliation = crate::reconcile::reconcile(
        &cat,
        month,
        book.bytes_per_gb,
        crate::reconcile::DEFAULT_TOLERANCE,
        &amounts,
    )
    .await?;
    let statuses = reconciliation.by_key();
    mark(
        &mut invoice,
        &statuses,
        &arn_of,
        None,
        reconciliation.billed,
    );
    mark(
        &mut chargeback,
        &statuses,
        &arn_of,
        Some(&owner_of),
        reconciliation.billed,
    );
    let mut adjustments = Vec::new();
    for c in &adjusted {
        let (u, e, h) = load_month(&cat, *c).await?;
        let after: Vec<String> = closed_set
            .iter()
            .filter(|m| **m > c.label())
            .cloned()
            .collect();
        let now = aws_view(book, &u, &e, &h)?;
        let change = crate::adjust::add_adjustments(
            &cat,
            &mut invoice,
            "aws",
            *c,
            &now,
            &after,
            book.bytes_per_gb,
        )
        .await?;
        let now = chargeback_view(book, &u, &e, &h)?;
        crate::adjust::add_adjustments(
            &cat,
            &mut chargeback,
            "chargeback",
            *c,
            &now,
            &after,
            book.bytes_per_gb,
        )
        .await?;
        adjustments.push((c.label(), change));
    }
    let quality = quality(&cat, month, opts.reconcile_tolerance).await?;
    let previous = previous_totals(&cat, month).await?;
    let hourly = hourly_by_cluster(&cat, month).await?;
    for (view, v) in [("aws", &invoice), ("chargeback", &chargeback)] {
        let batch =
            crate::lines_table::batch(v, &book.currency, &accounts, reconciliation.provisional());
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
        reconciliation,
        adjustments,
    })
}

/// Sets each line's status against the bill. Chargeback lines of MSK meters were moved from
/// the cluster owner, whom the bill charges: they take the owner's status (`owner_of`).
fn mark(
    inv: &mut Invoice,
    statuses: &BTreeMap<(String, String, String), crate::reconcile::Status>,
    arn_of: &BTreeMap<String, String>,
    owner_of: Option<&BTreeMap<String, String>>,
    billed: bool,
) {
    use crate::reconcile::{resource_of, Status};
    for l in inv.lines.iter_mut().filter(|l| l.adjusts.is_none()) {
        let resource = resource_of(l, arn_of);
        let account = match owner_of {
            Some(o) if l.endpoint_id.is_empty() => o
                .get(&resource)
                .cloned()
                .unwrap_or_else(|| l.account.clone()),
            _ => l.account.clone(),
        };
        let key = (account, l.meter.as_str().to_string(), resource);
        l.reconciled = match statuses.get(&key) {
            Some(s) => Some(s.as_str()),
            None if !billed => Some(Status::NoBillYet.as_str()),
            None => None,
        };
    }
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
