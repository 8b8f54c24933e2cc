//! The `linkmeter` command: meters bytes over Amazon MSK multi-VPC private connectivity.

mod cmd_demo;
mod cmd_estimate;
mod cmd_generate;
mod cmd_ingest;
mod cmd_inventory;
mod cmd_invoice;
mod cmd_run;
mod cmd_sql;
mod config;
mod logging;
mod warehouse;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code when `--strict` is set and input was quarantined.
pub const EXIT_QUARANTINED: u8 = 3;
/// Exit code when SIGTERM or Ctrl-C stopped a run between inputs.
pub const EXIT_INTERRUPTED: u8 = 4;

#[derive(Parser)]
#[command(
    name = "linkmeter",
    version,
    about = "Meter the bytes crossing Amazon MSK multi-VPC private connectivity (PrivateLink) and turn them into chargeback",
    long_about = None,
    after_help = "Start here:\n  linkmeter demo                      generate a sample estate and run the whole pipeline locally\n  linkmeter ingest --config linkmeter.toml\n  linkmeter sql --warehouse linkmeter-demo/warehouse \"SELECT * FROM runs\"\n\nExit codes: 0 success, 1 error, 2 bad command line or config, 3 input quarantined under --strict or\nabove run's --max-quarantined (or findings of `inventory check`), 4 stopped by SIGTERM (rerun continues),\n5 another run holds the warehouse lock."
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
    /// Read flow logs, attribute every byte, write the Parquet warehouse.
    Ingest(cmd_ingest::Args),
    /// Write a synthetic estate: inventory, flow-log files, config and ground truth.
    Generate(cmd_generate::Args),
    /// Roll up a month, price it and write invoice lines, the finance and FOCUS CSVs and the HTML report.
    Invoice(cmd_invoice::Args),
    /// Run SQL over the warehouse.
    Sql(cmd_sql::Args),
    /// Build the inventory from AWS CLI JSON, or check it against the flow logs.
    Inventory(cmd_inventory::Args),
    /// Price a planned estate layer by layer from the price book (what-if).
    Estimate(cmd_estimate::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let result = match cli.command {
        Command::Demo(a) => cmd_demo::run(a),
        Command::Run(a) => cmd_run::run(a),
        Command::Ingest(a) => cmd_ingest::run(a),
        Command::Generate(a) => cmd_generate::run(a),
        Command::Invoice(a) => cmd_invoice::run(a),
        Command::Sql(a) => cmd_sql::run(a),
        Command::Inventory(a) => cmd_inventory::run(a),
        Command::Estimate(a) => cmd_estimate::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            if e.downcast_ref::<cmd_ingest::ConfigProblem>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
