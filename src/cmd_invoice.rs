//! `linkmeter invoice`: rollups for a month, priced into invoice lines, and the finance CSV.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use linkmeter_aggregate::invoice::{aws_view, chargeback_view, Invoice};
use linkmeter_aggregate::lines_table;
use linkmeter_aggregate::load::{load_accounts, load_month};
use linkmeter_aggregate::price_book::PriceBook;
use linkmeter_aggregate::rollup::{rollup, Month};
use linkmeter_sql::Catalog;
use rust_decimal::Decimal;

use crate::cmd_ingest::ConfigProblem;
use crate::config::Config;

/// Arguments of `invoice`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  linkmeter invoice --month 2026-10\n  linkmeter invoice --config estate/linkmeter.toml --month 2026-10\n\nRuns the month's rollups (replacing that month's earlier output), prices them with the price book\n(`prices` in the config) and writes invoice_lines/month=M/invoice_view={aws,chargeback}/ and\nWAREHOUSE/reports/month=M/finance-{aws,chargeback}.csv and focus-{aws,chargeback}.csv (FOCUS 1.2 column\nnames), and report.html (charts of the month, a static file). Rerunning after late data restates the month. The summary shows totals per meter, top movers against\nthe previous month (when it was invoiced) and data-quality lines."
)]
pub struct Args {
    /// Configuration file.
    #[arg(
        long,
        short,
        env = "LINKMETER_CONFIG",
        default_value = "linkmeter.toml"
    )]
    pub config: PathBuf,
    /// The month, YYYY-MM.
    #[arg(long)]
    pub month: String,
}

/// What an invoice run produced.
pub struct Outcome {
    pub quality: linkmeter_aggregate::quality::Quality,
    /// Per account: (previous month's aws total, if any).
    pub previous: BTreeMap<String, Decimal>,
    pub invoice: Invoice,
    pub chargeback: Invoice,
    pub csv: String,
    pub chargeback_csv: String,
    pub currency: String,
    pub accounts: BTreeMap<String, (String, String)>,
}

/// Rolls up, prices and exports one month.
pub fn invoice(cfg: &Config, month: &str) -> Result<Outcome> {
    invoice_with(cfg, month, false)
}

/// [`invoice`], when the caller may already hold the warehouse lock (`run` holds it across
/// ingest and invoices).
pub fn invoice_with(cfg: &Config, month: &str, lock_held: bool) -> Result<Outcome> {
    let month = Month::parse(month).map_err(|e| anyhow!(e).context(ConfigProblem))?;
    let prices = cfg
        .prices
        .as_deref()
        .ok_or_else(|| anyhow!("the config names no price book; add prices = \"prices.toml\" (an example ships as aggregate/prices.example.toml)").context(ConfigProblem))?;
    let book = PriceBook::load(&cfg.file(prices).map_err(|e| e.context(ConfigProblem))?)
        .map_err(|e| anyhow!(e).context(ConfigProblem))?;
    let wh = crate::warehouse::Warehouse::open(cfg)?;
    let sink = wh.sink.as_ref();
    let _lock = match lock_held {
        true => None,
        false => Some(sink.lock("invoice", None)?),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (inv, cb, accounts, quality, previous, hourly) = rt.block_on(async {
        rollup(&wh.location, sink, month)
            .await
            .context("running the rollups")?;
        let cat = Catalog::open_at(&wh.location).await?;
        let (usage, eh, ch) = load_month(&cat, month).await?;
        let accounts = load_accounts(&cat).await?;
        let inv =
            aws_view(&book, &usage, &eh, &ch).map_err(|e| anyhow!(e).context(ConfigProblem))?;
        let cb = chargeback_view(&book, &usage, &eh, &ch)
            .map_err(|e| anyhow!(e).context(ConfigProblem))?;
        let quality = linkmeter_aggregate::quality::quality(
            &cat,
            month,
            cfg.reconcile_tolerance.unwrap_or(0.25),
        )
        .await?;
        let mut previous = BTreeMap::new();
        if cat.tables.contains(&"invoice_lines") {
            let sql = format!(
                "SELECT account_id, CAST(SUM(amount) AS VARCHAR) FROM invoice_lines WHERE month = '{}' AND invoice_view = 'aws' GROUP BY 1",
                month.prev().label()
            );
            for b in cat.query(&sql).await? {
                for k in 0..b.num_rows() {
                    let v = |c: usize| arrow::util::display::array_value_to_string(b.column(c), k).unwrap_or_default();
                    if let Ok(d) = v(1).parse::<Decimal>() {
                        previous.insert(v(0), d);
                    }
                }
            }
        }
        let mut hourly = Vec::new();
        if cat.tables.contains(&"usage_hourly") {
            let sql = format!(
                "SELECT CAST(usage_hour AS VARCHAR), COALESCE(cluster_name, cluster_arn), CAST(SUM(bytes) AS BIGINT) \
                 FROM usage_hourly WHERE month = '{}' GROUP BY 1, 2 ORDER BY 1, 2",
                month.label()
            );
            for b in cat.query(&sql).await? {
                let (h, c, by) = (
                    linkmeter_aggregate::load::strings(&b, 0)?,
                    linkmeter_aggregate::load::strings(&b, 1)?,
                    linkmeter_aggregate::load::ints(&b, 2)?,
                );
                for k in 0..b.num_rows() {
                    hourly.push((h[k].clone(), c[k].clone(), by[k].max(0) as u64));
                }
            }
        }
        Ok::<_, anyhow::Error>((inv, cb, accounts, quality, previous, hourly))
    })?;
    let dir = format!("reports/month={}", month.label());
    let mut csvs = Vec::new();
    for (view, v) in [("aws", &inv), ("chargeback", &cb)] {
        let batch = lines_table::batch(v, &book.currency, &accounts);
        sink.put(
            &format!(
                "invoice_lines/month={}/invoice_view={view}/invoice_lines.parquet",
                month.label()
            ),
            &[batch],
        )?;
        let csv = linkmeter_reports::finance_csv::finance_csv(
            v,
            &month.label(),
            &book.currency,
            &accounts,
        );
        let rel = format!("{dir}/finance-{view}.csv");
        sink.put_bytes(&rel, csv.as_bytes())?;
        csvs.push(format!("{}/{rel}", wh.display()));
        let regions: std::collections::BTreeSet<&str> =
            book.rates.keys().map(|k| k.1.as_str()).collect();
        let region = if regions.len() == 1 {
            regions.iter().next().copied().unwrap_or("")
        } else {
            ""
        };
        let focus = linkmeter_reports::focus_csv::focus_csv(
            v,
            &month.start(),
            &month.end(),
            &book.currency,
            book.bytes_per_gb,
            &accounts,
            region,
        );
        sink.put_bytes(&format!("{dir}/focus-{view}.csv"), focus.as_bytes())?;
    }
    let page = linkmeter_reports::html::html(&linkmeter_reports::html::Report {
        month: &month.label(),
        currency: &book.currency,
        aws: &inv,
        chargeback: &cb,
        accounts: &accounts,
        hourly: &hourly,
        quality: &quality,
        bytes_per_gb: book.bytes_per_gb,
    });
    sink.put_bytes(&format!("{dir}/report.html"), page.as_bytes())?;
    let chargeback_csv = csvs.pop().expect("two views");
    let path = csvs.pop().expect("two views");
    Ok(Outcome {
        quality,
        previous,
        invoice: inv,
        chargeback: cb,
        csv: path,
        chargeback_csv,
        currency: book.currency,
        accounts,
    })
}

/// Prints totals per meter and the largest accounts.
pub fn print_summary(o: &Outcome, month: &str) {
    let inv = &o.invoice;
    println!(
        "invoice {month} (aws view): total {} {} over {} lines; CSV {}",
        inv.total,
        o.currency,
        inv.lines.len(),
        o.csv
    );
    let mut by_meter: BTreeMap<&str, Decimal> = BTreeMap::new();
    let mut by_account: BTreeMap<&str, Decimal> = BTreeMap::new();
    for l in &inv.lines {
        *by_meter.entry(l.meter.as_str()).or_default() += l.amount;
        *by_account.entry(l.account.as_str()).or_default() += l.amount;
    }
    for (m, a) in &by_meter {
        println!("  {m:<24} {a:>14}");
    }
    let mut top: Vec<(&str, Decimal)> = by_account.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    println!(
        "  chargeback view: total {} {} (the same to the cent), owner-billed meters re-allocated to clients; CSV {}",
        o.chargeback.total, o.currency, o.chargeback_csv
    );
    if !o.previous.is_empty() {
        let mut movers: Vec<(&str, Decimal)> = top_of(inv)
            .into_iter()
            .map(|(a, v)| (a, v - o.previous.get(a).copied().unwrap_or_default()))
            .collect();
        movers.sort_by(|a, b| b.1.abs().cmp(&a.1.abs()).then(a.0.cmp(b.0)));
        println!("  top movers against the previous month:");
        for (acct, delta) in movers.iter().take(5) {
            println!(
                "    {acct} {:<16} {:>+14}",
                o.accounts.get(*acct).map(|a| a.0.as_str()).unwrap_or(""),
                delta
            );
        }
    }
    let q = &o.quality;
    println!("  data quality:");
    for (reason, n, bytes) in &q.unattributed {
        println!("    unattributed {reason}: {n} rows, {bytes} bytes (kept in flows, not billed)");
    }
    println!(
        "    SKIPDATA windows (AWS skipped records; the meter is incomplete there): {}",
        q.skipdata_windows
    );
    println!(
        "    provisioned endpoint-ENI hours with no flow-log record at all: {} of {}",
        q.uncovered_endpoint_hours, q.endpoint_hours
    );
    if q.reconciliation.is_empty() {
        println!("    flow logs against broker metrics: no broker metrics for this month (ingest a metric stream to reconcile)");
    }
    for r in &q.reconciliation {
        println!(
            "    flow logs / broker {} bytes, {} {}: typical ratio {:.3} over {} hours; {} hours off by more than the tolerance{}",
            if r.direction == "to_cluster" { "in" } else { "out" },
            r.cluster,
            r.direction,
            r.median_ratio,
            r.hours,
            r.flagged.len(),
            if r.without_metrics > 0 {
                format!(", {} hours with flows but no metrics", r.without_metrics)
            } else {
                String::new()
            }
        );
        for (hour, f, b, d) in r.flagged.iter().take(3) {
            println!(
                "      {hour}: flow {f} bytes, broker {b} bytes ({:+.0} % from typical){}",
                d * 100.0,
                if *f == 0 {
                    " — flow logs missing?"
                } else {
                    ""
                }
            );
        }
    }
    println!("  largest accounts (aws view):");
    for (acct, amount) in top.iter().take(5) {
        let name = o.accounts.get(*acct).map(|a| a.0.as_str()).unwrap_or("");
        println!("    {acct} {name:<16} {amount:>14}");
    }
}

fn top_of(inv: &Invoice) -> BTreeMap<&str, Decimal> {
    let mut m: BTreeMap<&str, Decimal> = BTreeMap::new();
    for l in &inv.lines {
        *m.entry(l.account.as_str()).or_default() += l.amount;
    }
    m
}

/// Runs `invoice`.
pub fn run(a: Args) -> Result<ExitCode> {
    let cfg = Config::load(&a.config).map_err(|e| e.context(ConfigProblem))?;
    let o = invoice(&cfg, &a.month)?;
    print_summary(&o, &a.month);
    Ok(ExitCode::SUCCESS)
}
