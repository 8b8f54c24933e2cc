//! The `linkmeter` command: meters bytes over Amazon MSK multi-VPC private connectivity.
//!
//! Each command parses its arguments, calls a library and prints. `main` owns the one tokio
//! runtime; commands run on the main thread (outside the runtime) and hand it to the
//! libraries, which block on it for I/O.

mod cmd_ballista;
mod cmd_close;
mod cmd_ddl;
mod cmd_demo;
mod cmd_estimate;
mod cmd_generate;
mod cmd_ingest;
mod cmd_inventory;
mod cmd_invoice;
mod cmd_prices;
mod cmd_reconcile;
mod cmd_run;
mod cmd_sql;
mod config;
mod engine_settings;
mod exit;
mod logging;
mod progress;
mod units;
mod warehouse;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use exit::{ConfigContext, ConfigProblem, Exit};

#[derive(Parser)]
#[command(
    name = "linkmeter",
    version,
    about = "Meter the bytes crossing Amazon MSK multi-VPC private connectivity (PrivateLink) and turn them into chargeback",
    long_about = None,
    after_help = "Start here:\n  linkmeter demo                      generate a sample estate and run the whole pipeline locally\n  linkmeter ingest --config linkmeter.toml\n  linkmeter sql --warehouse linkmeter-demo/warehouse \"SELECT * FROM runs\"\n\nExit codes: 0 success, 1 error, 2 bad command line or config, 3 input quarantined under --strict or\nabove run's --max-quarantined (or findings of `inventory check`, or differences under `reconcile --strict`), 4 stopped by SIGTERM (rerun continues),\n5 another run holds the warehouse lock."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a sample estate and run the whole pipeline on it, locally, no servers needed.
    Demo(cmd_demo::Args),
    /// The scheduled job: ingest everything, then invoice the previous and current month.
    Run(cmd_run::Args),
    /// Read flow logs, attribute every byte, write the warehouse.
    Ingest(cmd_ingest::Args),
    /// Write a synthetic estate: inventory, flow logs, broker metrics, an AWS bill, config and ground truth.
    Generate(cmd_generate::Args),
    /// Roll up a month, price it and write invoice lines, the finance and FOCUS CSVs and the HTML report.
    Invoice(cmd_invoice::Args),
    /// Freeze a month for finance: later changes become adjustment lines of the next open month.
    Close(cmd_close::Args),
    /// Price books from the AWS bill (`prices from-bill`).
    Prices(cmd_prices::Args),
    /// Compare an invoiced month with the AWS bill (CUR 2.0 or FOCUS export): what differs, and why.
    Reconcile(cmd_reconcile::Args),
    /// Run SQL over the warehouse.
    Sql(cmd_sql::Args),
    /// Build the inventory from AWS CLI JSON, or check it against the flow logs.
    Inventory(cmd_inventory::Args),
    /// Price a planned estate layer by layer from the price book (what-if).
    Estimate(cmd_estimate::Args),
    /// Print the statements that open the warehouse in Athena, Trino or Spark.
    Ddl(cmd_ddl::Args),
    /// Serve a role of a Ballista cluster (scheduler or executor) for the distributed engine.
    Ballista(cmd_ballista::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("linkmeter-io")
        // Query plans are walked recursively (and decoded so on a Ballista scheduler); deep
        // views need more than the default 2 MiB. Only touched pages cost memory.
        .thread_stack_size(16 << 20)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return Exit::Fatal.into();
        }
    };
    // Commands run here, outside the runtime's threads, but inside its context (so locks
    // released on drop and libraries find it).
    let _in = rt.enter();
    let rt = rt.handle().clone();
    let result = match cli.command {
        Command::Demo(a) => cmd_demo::run(a, &rt),
        Command::Run(a) => cmd_run::run(a, &rt),
        Command::Ingest(a) => cmd_ingest::run(a, &rt),
        Command::Generate(a) => cmd_generate::run(a),
        Command::Invoice(a) => cmd_invoice::run(a, &rt),
        Command::Close(a) => cmd_close::run(a, &rt),
        Command::Prices(a) => cmd_prices::run(a, &rt),
        Command::Reconcile(a) => cmd_reconcile::run(a, &rt),
        Command::Sql(a) => cmd_sql::run(a, &rt),
        Command::Inventory(a) => cmd_inventory::run(a, &rt),
        Command::Estimate(a) => cmd_estimate::run(a, &rt),
        Command::Ddl(a) => cmd_ddl::run(a),
        Command::Ballista(a) => cmd_ballista::run(a, &rt),
    };
    match result {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("Error: {e:#}");
            exit::of_error(&e).into()
        }
    }
}
