//! `linkmeter ballista scheduler|executor`: the two roles of an Apache DataFusion Ballista
//! cluster that runs linkmeter's month close and ad hoc SQL past one machine. They are served
//! by this binary (not Ballista's own) because plans carry the warehouse's tables as pinned
//! file lists, which only linkmeter's codec reads.

use std::net::SocketAddr;

use anyhow::{Context, Result};

use crate::config::{Config, ConfigArg};
use crate::Exit;

/// Arguments of `ballista`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples (one scheduler, any number of executors; needs a build with --features ballista):\n  linkmeter ballista scheduler --bind 0.0.0.0:50050\n  linkmeter ballista executor --scheduler scheduler.internal:50050 --port 50051 --grpc-port 50052\n  # then, in linkmeter.toml:  [engine] kind = \"ballista\"  scheduler = \"df://scheduler.internal:50050\"\n  linkmeter invoice --month 2026-10        # the month close runs on the cluster\n  linkmeter sql --engine df://scheduler.internal:50050 \"SELECT * FROM account_usage\"\n\nWith an s3:// warehouse every role needs to read it: give --config (its warehouse and [s3]) or\n--warehouse, and the AWS credential chain. A local warehouse must be at the same path on every machine\n(one machine, or a shared file system). See deploy/ballista/ for ECS task definitions."
)]
pub struct Args {
    #[command(subcommand)]
    role: Role,
}

#[derive(clap::Subcommand)]
enum Role {
    /// Plan queries and hand their stages to executors.
    Scheduler(SchedulerArgs),
    /// Run query stages for a scheduler.
    Executor(ExecutorArgs),
}

/// Where the warehouse is, so the role can register its object store.
#[derive(clap::Args)]
struct Store {
    /// Warehouse directory or s3://bucket/prefix (default: the config's, when there is one).
    #[arg(long, short, env = "LINKMETER_WAREHOUSE")]
    warehouse: Option<String>,
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(clap::Args)]
struct SchedulerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:50050")]
    bind: SocketAddr,
    /// Host name executors and clients reach this scheduler by.
    #[arg(long, default_value = "localhost")]
    external_host: String,
    #[command(flatten)]
    store: Store,
}

#[derive(clap::Args)]
struct ExecutorArgs {
    /// The scheduler, HOST:PORT.
    #[arg(long, default_value = "localhost:50050")]
    scheduler: String,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_host: String,
    /// Host name the scheduler and other executors reach this one by (default: the address
    /// it connects to the scheduler from).
    #[arg(long)]
    external_host: Option<String>,
    /// Arrow Flight port (shuffle reads).
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// gRPC port.
    #[arg(long, default_value_t = 50052)]
    grpc_port: u16,
    /// Tasks run at once (default: the number of cores).
    #[arg(long)]
    concurrent_tasks: Option<usize>,
    /// Directory for shuffle files (default: a temporary directory).
    #[arg(long)]
    work_dir: Option<String>,
    #[command(flatten)]
    store: Store,
}

/// The config a role reads its warehouse and [s3] settings from, if any.
fn config(s: &Store) -> Result<Option<Config>> {
    // A container has no file: LINKMETER_CONFIG_TOML holds the whole config (Config::load).
    let have = s.config.config.exists() || std::env::var_os("LINKMETER_CONFIG_TOML").is_some();
    let cfg = match (&s.warehouse, have) {
        (Some(w), true) => {
            let mut c = Config::load(&s.config.config)?;
            c.warehouse = w.clone();
            Some(c)
        }
        (Some(w), false) => Some(Config::bare(w)?),
        (None, true) => Some(Config::load(&s.config.config)?),
        (None, false) => None,
    };
    Ok(cfg)
}

/// Serves the chosen role until the process is stopped.
pub fn run(a: Args, rt: &tokio::runtime::Handle) -> Result<Exit> {
    let store = match &a.role {
        Role::Scheduler(s) => &s.store,
        Role::Executor(e) => &e.store,
    };
    let wh = match config(store)? {
        Some(cfg) => Some(crate::warehouse::open_existing(&cfg, rt)?),
        None => {
            eprintln!("note: no --config, --warehouse or LINKMETER_CONFIG_TOML: this role reads local files only; an s3:// warehouse needs one of them");
            None
        }
    };
    serve(a.role, wh, rt)
}

#[cfg(feature = "ballista")]
fn serve(
    role: Role,
    wh: Option<linkmeter_warehouse::Warehouse>,
    rt: &tokio::runtime::Handle,
) -> Result<Exit> {
    use anyhow::anyhow;
    use linkmeter_sql::cluster;
    // Executors spill where their shuffle files go (the task's large volume).
    let spill = match &role {
        Role::Executor(e) => e.work_dir.clone(),
        Role::Scheduler(_) => None,
    };
    if let Some(dir) = &spill {
        std::fs::create_dir_all(dir).with_context(|| format!("creating --work-dir {dir}"))?;
    }
    let runtime =
        linkmeter_sql::runtime_for(wh.as_ref(), spill.as_deref().map(std::path::Path::new))?;
    match role {
        Role::Scheduler(s) => {
            eprintln!("Ballista scheduler listening on {}", s.bind);
            rt.block_on(cluster::serve_scheduler(s.bind, s.external_host, runtime))
                .map_err(|e| anyhow!(e))
                .context("serving the scheduler")?;
        }
        Role::Executor(e) => {
            let (host, port) = e
                .scheduler
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| anyhow!("--scheduler {:?} is not HOST:PORT", e.scheduler))
                .context(crate::ConfigProblem)?;
            let settings = cluster::ExecutorSettings {
                scheduler: (host, port),
                bind_host: e.bind_host,
                external_host: e.external_host,
                port: e.port,
                grpc_port: e.grpc_port,
                vcores: e
                    .concurrent_tasks
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
                work_dir: e.work_dir,
            };
            eprintln!(
                "Ballista executor on {}:{} for scheduler {}",
                settings.bind_host, settings.port, e.scheduler
            );
            rt.block_on(cluster::serve_executor(settings, runtime))
                .map_err(|e| anyhow!(e))
                .context("serving the executor")?;
        }
    }
    Ok(Exit::Ok)
}

#[cfg(not(feature = "ballista"))]
fn serve(
    _role: Role,
    _wh: Option<linkmeter_warehouse::Warehouse>,
    _rt: &tokio::runtime::Handle,
) -> Result<Exit> {
    Err(anyhow::anyhow!(
        "this linkmeter was built without the Ballista engine; build it with `cargo build --release --features ballista` (the container image has it)"
    ))
    .context(crate::ConfigProblem)
}
