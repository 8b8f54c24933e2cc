//! `linkmeter close`: freezes a month for finance. The month is invoiced one last time, then
//! recorded in `closed_months` with who and when, every table's version and a checksum of each
//! report file; from then on it is never rewritten, and later changes to it become adjustment
//! lines of the first open month after it.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use linkmeter_warehouse::closed::{self, ClosedMonth};
use linkmeter_warehouse::registry::TABLES;
use linkmeter_warehouse::{Month, Warehouse};

use crate::config::ConfigArg;
use crate::Exit;

/// Arguments of `close`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  linkmeter close --month 2026-10\n  linkmeter close --config estate/linkmeter.toml --month 2026-10 --by \"finance: J. Doe\"\n\nInvoices the month one last time (as `linkmeter invoice` does), then records it in the table\nclosed_months: who (--by, else $USER) and when, the version of every warehouse table it was computed\nfrom (Delta time travel recomputes it from that snapshot) and an xxh3 checksum of each file under\nWAREHOUSE/reports/month=M/. A closed month is never rewritten: `invoice` refuses it, `run` skips it,\nand late data or inventory changes that touch it appear as adjustment lines (allocation_basis\nadjustment, adjusts_month M) in the first open month after it, in both views and all CSVs.\nClosing a closed month again changes nothing."
)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The month, YYYY-MM.
    #[arg(long)]
    pub month: Month,
    /// Who closes it (recorded; default: the USER environment variable).
    #[arg(long)]
    pub by: Option<String>,
}

/// Every table's current version, as JSON.
fn versions(wh: &Warehouse, rt: &tokio::runtime::Handle) -> Result<String> {
    let mut v = BTreeMap::new();
    for def in TABLES {
        if let Some(t) = rt.block_on(wh.read_table(def))? {
            v.insert(def.name, t.version());
        }
    }
    Ok(serde_json::to_string(&v)?)
}

/// An xxh3-64 checksum of each report file of the month, as JSON.
fn checksums(wh: &Warehouse, rt: &tokio::runtime::Handle, month: Month) -> Result<String> {
    let dir = format!("reports/month={}", month.label());
    let mut v = BTreeMap::new();
    // reconcile.csv is refreshed by every `reconcile` (a bill turns final after the close);
    // the invoice's own files are what the checksums pin.
    for f in rt
        .block_on(wh.list_files(&dir))?
        .into_iter()
        .filter(|f| !f.ends_with("reconcile.csv"))
    {
        if let Some(bytes) = rt.block_on(wh.get_file(&f))? {
            let name = f.rsplit('/').next().unwrap_or(&f).to_string();
            v.insert(name, format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)));
        }
    }
    Ok(serde_json::to_string(&v)?)
}

/// Runs `close`.
pub fn run(a: Args, rt: &tokio::runtime::Handle) -> Result<Exit> {
    let cfg = a.config.load()?;
    let book = crate::cmd_invoice::price_book(&cfg, rt)?;
    let wh = crate::warehouse::open(&cfg, rt)?;
    let _lock = rt.block_on(wh.lock("close", None))?;
    if let Some(c) = rt.block_on(closed::read(&wh))?.get(&a.month.label()) {
        println!(
            "{} is already closed (by {} at {}); nothing changed",
            a.month,
            c.closed_by,
            chrono::DateTime::from_timestamp_micros(c.closed_at_micros)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        );
        return Ok(Exit::Ok);
    }
    let (close, written) = crate::cmd_invoice::invoice(&cfg, &wh, rt, &book, a.month)?;
    crate::cmd_invoice::print_summary(&close, &written, &book);
    let by =
        a.by.or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "unknown".into());
    let row = ClosedMonth {
        month: a.month.label(),
        closed_at_micros: chrono::Utc::now().timestamp_micros(),
        closed_by: by.clone(),
        table_versions: versions(&wh, rt)?,
        checksums: checksums(&wh, rt, a.month)?,
        aws_total: close.invoice.total.to_string(),
        chargeback_total: close.chargeback.total.to_string(),
    };
    rt.block_on(closed::append(&wh, &row))
        .context("recording the closed month")?;
    println!(
        "closed {} (by {by}): aws total {} {cur}, chargeback total {} {cur}; report checksums {}\nfrom now on {} is never rewritten; later changes to it become adjustment lines of the first open month after it",
        a.month, close.invoice.total, close.chargeback.total, row.checksums, a.month,
        cur = book.currency
    );
    Ok(Exit::Ok)
}
