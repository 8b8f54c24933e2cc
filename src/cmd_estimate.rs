//! `linkmeter estimate`: the layered cost worksheet of a planned estate, from the price book.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use linkmeter_aggregate::estimate::{estimate, Plan};
use linkmeter_aggregate::price_book::PriceBook;
use rust_decimal::Decimal;

use linkmeter_warehouse::Month;

use crate::{ConfigProblem, Exit};

/// Arguments of `estimate`.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  linkmeter estimate --prices prices.toml --clusters 2 --schemes 2 --client-vpcs 10 --azs 3 --gb 5000
  linkmeter estimate --clusters 1 --schemes 1 --client-vpcs 40 --azs 3 --gb 200000 --region eu-west-1
  linkmeter estimate ... --format csv > worksheet.csv

Each meter on its own line with its formula and share of the total:
  msk_connectivity_hours  clusters × schemes × hours          (cluster owner)
  msk_connectivity_gb     GB                                   (cluster owner)
  endpoint_az_hours       endpoints × AZs × hours              (client accounts)
  endpoint_gb             GB, tiered                           (client accounts)
Endpoints default to client VPCs × clusters (one managed VPC connection per VPC and cluster).
Rates are those in force at --month's start; lines are rounded to cents and the total is their sum.")]
pub struct Args {
    /// The price book (default: `prices` of the config, else prices.toml).
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// Configuration file, for its price book when --prices is not given.
    #[command(flatten)]
    pub config: crate::config::ConfigArg,
    /// Region.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Month whose rates apply (YYYY-MM; default: this month).
    #[arg(long)]
    pub month: Option<Month>,
    /// Hours in the month (AWS's pricing pages use 730).
    #[arg(long, default_value_t = 730)]
    pub hours: u32,
    /// MSK clusters with multi-VPC connectivity.
    #[arg(long)]
    pub clusters: u32,
    /// Auth schemes turned on per cluster (IAM, SCRAM, TLS: 1 to 3).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3))]
    pub schemes: u32,
    /// Client VPCs.
    #[arg(long)]
    pub client_vpcs: u32,
    /// Managed VPC connections (default: client VPCs × clusters).
    #[arg(long)]
    pub connections: Option<u32>,
    /// Availability Zones per endpoint.
    #[arg(long, default_value_t = 3)]
    pub azs: u32,
    /// GB per month through private connectivity.
    #[arg(long)]
    pub gb: Decimal,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Output formats of `estimate`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// The worksheet as text.
    Table,
    /// One CSV row per meter, then the total.
    Csv,
}

/// Runs `estimate`.
pub fn run(a: Args, rt: &tokio::runtime::Handle) -> Result<Exit> {
    let path = match &a.prices {
        Some(p) => p.clone(),
        None => match crate::config::Config::load(&a.config.config) {
            Ok(c) => c.file(c.prices.as_deref().unwrap_or("prices.toml"), rt)?,
            Err(_) => PathBuf::from("prices.toml"),
        },
    };
    let book = PriceBook::load(&path).map_err(|e| anyhow!(e).context(ConfigProblem))?;
    if a.gb.is_sign_negative() {
        return Err(anyhow!("--gb cannot be negative").context(ConfigProblem));
    }
    let month = a.month.unwrap_or_else(Month::now);
    let at = month.start_secs();
    let plan = Plan {
        region: a.region.clone(),
        at,
        hours: a.hours,
        clusters: a.clusters,
        schemes: a.schemes,
        connections: match a.connections {
            Some(c) => c,
            None => a.client_vpcs.checked_mul(a.clusters).ok_or_else(|| {
                anyhow!("--client-vpcs × --clusters is too large").context(ConfigProblem)
            })?,
        },
        azs: a.azs,
        gb: a.gb,
    };
    let lines = estimate(&book, &plan).map_err(|e| anyhow!(e).context(ConfigProblem))?;
    let total: Decimal = lines.iter().map(|l| l.amount).sum();
    let share = |d: Decimal| {
        if total.is_zero() {
            Decimal::ZERO
        } else {
            (d * Decimal::from(100) / total).round_dp(1)
        }
    };
    let cur = &book.currency;
    match a.format {
        Format::Csv => {
            println!("meter,payer,quantity,unit,amount,currency,share_percent,formula");
            for l in &lines {
                println!(
                    "{},{},{},{},{},{cur},{},\"{}\"",
                    l.meter,
                    l.payer,
                    l.quantity,
                    l.meter.unit(),
                    l.amount,
                    share(l.amount),
                    l.formula.replace('"', "\"\"")
                );
            }
            println!("total,,,,{total},{cur},100,");
        }
        Format::Table => {
            println!(
                "estimate for {} in {} ({} h, rates of {month} from {}):",
                plan.region,
                month,
                plan.hours,
                path.display()
            );
            for l in &lines {
                println!(
                    "  {:<24} {:>12} {cur} {:>5} %  {:<16} {}",
                    l.meter.as_str(),
                    l.amount.to_string(),
                    share(l.amount).to_string(),
                    l.payer,
                    l.formula
                );
            }
            println!("  {:<24} {:>12} {cur}", "total", total.to_string());
            if let Some(top) = lines.iter().max_by_key(|l| l.amount) {
                println!(
                    "  the largest layer is {} ({} % of the total)",
                    top.meter,
                    share(top.amount)
                );
            }
        }
    }
    Ok(Exit::Ok)
}
