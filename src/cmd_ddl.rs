//! `linkmeter ddl`: prints the statements that open the warehouse in Athena, Trino or Spark.

use anyhow::{anyhow, Result};
use linkmeter_sql::ddl::{ddl, DdlOptions, Dialect};

use crate::config::{Config, ConfigArg};
use crate::{ConfigContext, Exit};

/// Arguments of `ddl`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  linkmeter ddl --dialect athena --location s3://my-bucket/linkmeter > athena.sql\n  linkmeter ddl --dialect trino --location s3://my-bucket/linkmeter --catalog delta --database finops\n  linkmeter ddl --dialect spark --location s3a://my-bucket/linkmeter\n  linkmeter ddl --dialect athena            # the location from the config's s3:// warehouse\n\nEvery table is a Delta Lake table: the engine reads columns and partitions from the Delta log\n(no column lists, no MSCK REPAIR, no partition projection needed). The views of `linkmeter sql`\nfollow, rewritten for the dialect (Athena and Trino compute the reconciliation median with\napprox_percentile). Run the output in the engine's query editor or CLI."
)]
pub struct Args {
    /// The engine: athena, trino or spark.
    #[arg(long, value_parser = Dialect::parse)]
    pub dialect: Dialect,
    /// The warehouse's URL (default: the config's warehouse, when it is on S3).
    #[arg(long)]
    pub location: Option<String>,
    /// Database (Athena, Spark) or schema (Trino) to create the tables in.
    #[arg(long, default_value = "linkmeter")]
    pub database: String,
    /// Trino only: the catalog of the Delta Lake connector.
    #[arg(long, default_value = "delta")]
    pub catalog: String,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// Prints the DDL.
pub fn run(a: Args) -> Result<Exit> {
    let location = match a.location {
        Some(l) => l,
        None => {
            let cfg = Config::load(&a.config.config)
                .map_err(|e| e.context("no --location given, so the config's warehouse was needed"))
                .config()?;
            if !cfg.warehouse.contains("://") || cfg.warehouse.starts_with("file://") {
                return Err(anyhow!(
                    "the config's warehouse {:?} is a local directory; give --location with the URL the engine reads it at (s3://BUCKET/PREFIX)",
                    cfg.warehouse
                ))
                .config();
            }
            cfg.warehouse
        }
    };
    let ident = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ident(&a.database) || !ident(&a.catalog) {
        return Err(anyhow!(
            "--database and --catalog take plain names (letters, digits, _)"
        ))
        .config();
    }
    if location.contains('\'') {
        return Err(anyhow!("--location {location:?} cannot hold a quote")).config();
    }
    print!(
        "{}",
        ddl(&DdlOptions {
            dialect: a.dialect,
            location,
            database: a.database,
            catalog: a.catalog,
        })
    );
    Ok(Exit::Ok)
}
