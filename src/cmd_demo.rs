//! `linkmeter demo`: the whole pipeline on a generated estate, in a fresh folder.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use linkmeter_sql::Catalog;
use linkmeter_warehouse::Month;

use crate::config::Config;
use crate::Exit;

/// Arguments of `demo`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  linkmeter demo\n  linkmeter demo --dir /tmp/lm --days 7\n\nThe folder is recreated on every run (only if it is a previous demo folder)."
)]
pub struct Args {
    /// Folder for the demo (recreated).
    #[arg(long, default_value = "linkmeter-demo")]
    pub dir: PathBuf,
    /// Days of generated traffic.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=31))]
    pub days: u32,
    /// Client accounts (tenants).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(2..=120))]
    pub accounts: u64,
}

const TOP_TENANTS: &str =
    "SELECT a.account_name, f.client_account_id, COUNT(DISTINCT f.connection_arn) AS connections, \
     ROUND(SUM(f.bytes) / 1073741824.0, 3) AS gib \
     FROM billable_flows f JOIN accounts a ON a.account_id = f.client_account_id \
     GROUP BY 1, 2 ORDER BY SUM(f.bytes) DESC LIMIT 5";

/// Runs `demo`.
pub fn run(a: Args, rt: &tokio::runtime::Handle) -> Result<Exit> {
    if a.dir.exists() {
        if !a.dir.join("generated.toml").exists() {
            bail!(
                "{} exists and is not a linkmeter demo folder; pass --dir with a new folder",
                a.dir.display()
            );
        }
        std::fs::remove_dir_all(&a.dir)
            .with_context(|| format!("cannot clear {}", a.dir.display()))?;
    }
    println!("1/5 generating a sample estate in {} …", a.dir.display());
    let g = crate::cmd_generate::make(&crate::cmd_generate::Args {
        out: a.dir.clone(),
        days: a.days,
        start: chrono::NaiveDate::from_ymd_opt(2026, 10, 1).expect("valid date"),
        accounts: a.accounts,
        instances: 2,
        noise: 4,
        seed: 42,
    })?;
    println!(
        "    {} flow-log files, {} lines ({} malformed on purpose), {} connections",
        g.files, g.lines, g.malformed_lines, g.connections
    );
    println!("2/5 ingesting (flow logs, broker metrics and the AWS bill) …");
    let cfg = Config::load(&a.dir.join("linkmeter.toml"))?;
    let wh = crate::warehouse::open(&cfg, rt)?;
    let _lock = rt.block_on(wh.lock("demo", None))?;
    let stop = crate::cmd_ingest::stop_on_signals();
    let sel = crate::cmd_ingest::Selection::default();
    let o = crate::cmd_ingest::ingest(&cfg, &wh, rt, &sel, stop, "ingest")?;
    crate::cmd_ingest::print_summary(&o, &wh.display());
    if !o.report.tally.balanced() {
        bail!("the conservation balance does not hold; this is a bug in linkmeter");
    }
    println!("3/5 top tenants by billable bytes:");
    let top = rt.block_on(async {
        let cat = Catalog::open_with(&wh, &cfg.engine.options()).await?;
        cat.query(TOP_TENANTS).await
    })?;
    println!("{}", linkmeter_sql::pretty(&top));
    println!("4/5 invoice for 2026-10 (published us-east-1 rates from prices.toml) …");
    let book = crate::cmd_invoice::price_book(&cfg, rt)?;
    let month = Month::parse("2026-10").map_err(anyhow::Error::msg)?;
    let (close, written) = crate::cmd_invoice::invoice(&cfg, &wh, rt, &book, month)?;
    crate::cmd_invoice::print_summary(&close, &written, &book);
    println!("5/5 reconcile against the AWS bill the generator wrote (with three planted differences: a rate, an endpoint missing from the inventory, bytes on a day without flow logs) …");
    let (r, path) = crate::cmd_reconcile::reconcile_month(
        &wh,
        rt,
        &cfg.engine.options(),
        book.bytes_per_gb,
        month,
        rust_decimal::Decimal::new(1, 2),
    )?;
    print!(
        "{}",
        linkmeter_reports::reconcile::summary(&r, &month.label(), &path)
    );
    let w = wh.display();
    println!("\nNext:");
    println!("  open the finance CSV: {}", written.finance_aws);
    println!("  open the report: {}", written.html);
    println!("  linkmeter sql -w {w} \"SELECT invoice_view, account_name, meter, amount FROM invoice_lines ORDER BY amount DESC LIMIT 10\"");
    println!("  linkmeter sql -w {w} \"SELECT * FROM runs\"");
    println!("  linkmeter sql -w {w} \"SELECT meter, usage_type, SUM(usage_amount), SUM(unblended_cost) FROM bill_lines GROUP BY 1, 2\"");
    println!("  linkmeter sql -w {w} \"SELECT reason, COUNT(*), SUM(bytes) FROM flows WHERE status = 'unattributed' GROUP BY 1\"");
    println!("  linkmeter sql -w {w} \"SELECT source_uri, line, reason FROM quarantine\"");
    println!("  linkmeter sql -w {w} \"SELECT cluster_name, direction, usage_hour, flow_bytes, broker_bytes, round(deviation, 3) FROM reconciliation ORDER BY abs(deviation) DESC LIMIT 10\"");
    println!(
        "  linkmeter ingest --config {}   # rerun: unchanged inputs are skipped",
        a.dir.join("linkmeter.toml").display()
    );
    println!(
        "  compare with the generator's truth: {}",
        a.dir.join("ground_truth.csv").display()
    );
    Ok(Exit::Ok)
}
