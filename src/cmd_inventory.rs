//! `linkmeter inventory`: build the inventory from AWS CLI JSON (`import`) and compare it with
//! what the flow logs in the warehouse show (`check`).

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use linkmeter_ingest::inventory::Inventory;
use linkmeter_ingest::inventory_import::{import, json_files, to_toml};
use linkmeter_sql::Catalog;

use crate::config::ConfigArg;
use crate::{ConfigProblem, Exit};

/// Arguments of `inventory`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Build inventory.toml from the JSON the AWS CLI prints, merged with the names you keep.
    Import(ImportArgs),
    /// Compare the inventory with the warehouse: endpoints on MSK ports it lacks, ENIs without traffic.
    Check(CheckArgs),
}

#[derive(clap::Args)]
#[command(after_help = "Examples:
  # in the cluster owner's account
  aws kafka list-clusters-v2 > aws/clusters.json
  # in each client account
  aws kafka list-vpc-connections > aws/connections-111111111111.json
  aws ec2 describe-vpc-endpoints --filters Name=vpc-endpoint-type,Values=Interface > aws/endpoints-111111111111.json
  aws ec2 describe-network-interfaces --filters Name=interface-type,Values=vpc_endpoint > aws/enis-111111111111.json
  aws ec2 describe-subnets > aws/subnets-111111111111.json
  linkmeter inventory import aws/ --merge people.toml --out inventory.toml

`list-vpc-connections` lacks each connection's subnets; add `kafka describe-vpc-connection --arn ARN`
outputs when a VPC has several interface endpoints. people.toml is an inventory with what AWS
cannot say: [[accounts]] names and cost centers, connectivity on/off times, connection deletions,
and endpoint_id where a VPC has several candidates. The result is validated before it is written.")]
struct ImportArgs {
    /// AWS CLI JSON files, or directories of *.json files.
    #[arg(required = true)]
    json: Vec<PathBuf>,
    /// The inventory you keep by hand (names, cost centers, times AWS does not give).
    #[arg(long)]
    merge: Option<PathBuf>,
    /// Where to write the inventory ("-" for standard output).
    #[arg(long, default_value = "inventory.toml")]
    out: PathBuf,
}

#[derive(clap::Args)]
#[command(after_help = "Examples:
  linkmeter inventory check --config linkmeter.toml

Lists (1) endpoint addresses that carried traffic on MSK multi-VPC ports (14001-14100) but
are not endpoint ENIs of the inventory (flows unattributed as unknown_endpoint), per account
and VPC seen, with how many interfaces (the endpoint's own or its clients') logged them, and (2) endpoint ENIs of the inventory that never carried traffic in the
warehouse. Exit code 0 when both lists are empty, 3 otherwise.")]
struct CheckArgs {
    #[command(flatten)]
    config: ConfigArg,
}

/// Runs `inventory`.
pub fn run(a: Args, rt: &tokio::runtime::Handle) -> Result<Exit> {
    match a.cmd {
        Cmd::Import(i) => run_import(i),
        Cmd::Check(c) => run_check(c, rt),
    }
}

fn run_import(a: ImportArgs) -> Result<Exit> {
    let kept = match &a.merge {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the kept inventory {}", p.display()))
                .context(ConfigProblem)?;
            let inv: Inventory = toml::from_str(&text)
                .map_err(|e| anyhow!("the kept inventory {} is not valid: {e}", p.display()))
                .context(ConfigProblem)?;
            Some(inv)
        }
    };
    let files = json_files(&a.json).map_err(|e| anyhow!(e).context(ConfigProblem))?;
    let (inv, report) =
        import(&files, kept.as_ref()).map_err(|e| anyhow!(e).context(ConfigProblem))?;
    let text = to_toml(&inv, &files);
    // The same validation ingest applies: a written inventory is a usable one.
    let ix = Inventory::from_toml(&text, "the imported inventory")
        .map_err(|e| anyhow!(e).context(ConfigProblem))?;
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    if a.out.as_os_str() == "-" {
        print!("{text}");
    } else {
        std::fs::write(&a.out, &text)
            .with_context(|| format!("cannot write {}", a.out.display()))?;
        println!(
            "wrote {}: {} accounts, {} clusters, {} connections, {} endpoint ENIs (from {} JSON files{})",
            a.out.display(),
            inv.accounts.len(),
            inv.clusters.len(),
            inv.connections.len(),
            ix.enis.len(),
            files.len(),
            if kept.is_some() { ", merged with the kept inventory" } else { "" }
        );
    }
    Ok(Exit::Ok)
}

fn run_check(a: CheckArgs, rt: &tokio::runtime::Handle) -> Result<Exit> {
    let cfg = a.config.load()?;
    let wh = crate::warehouse::open_existing(&cfg, rt)?;
    let (unknown, idle) = rt.block_on(async {
        let cat = Catalog::open(&wh).await?;
        let need = ["flows", "endpoint_enis"];
        if let Some(t) = need.iter().find(|t| !cat.tables.contains(t)) {
            return Err(anyhow!(
                "the warehouse has no {t} table yet; run `linkmeter ingest` first"
            ));
        }
        let (unknown, idle) = linkmeter_sql::INVENTORY_CHECKS;
        Ok::<_, anyhow::Error>((cat.query(unknown).await?, cat.query(idle).await?))
    })?;
    let rows = |b: &[arrow::array::RecordBatch]| b.iter().map(|b| b.num_rows()).sum::<usize>();
    let (nu, ni) = (rows(&unknown), rows(&idle));
    println!("endpoint addresses on MSK multi-VPC ports that the inventory lacks: {nu}");
    if nu > 0 {
        println!("{}", linkmeter_sql::pretty(&unknown));
        println!("  add their VPC connections (inventory import) or, if they are not MSK, ignore them: their bytes are kept as unattributed, never billed");
    }
    println!("endpoint ENIs in the inventory that never carried traffic: {ni}");
    if ni > 0 {
        println!("{}", linkmeter_sql::pretty(&idle));
        println!("  an AZ without clients is normal (it still costs endpoint hours); otherwise check that flow logs are on for these ENIs or the clients' ENIs");
    }
    Ok(if nu + ni == 0 {
        Exit::Ok
    } else {
        Exit::Quarantined
    })
}
