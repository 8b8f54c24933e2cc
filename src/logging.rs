//! Logs: human-readable on a terminal, JSON lines otherwise (ECS, CI), both on stderr so
//! stdout carries only results. `LINKMETER_LOG` (or `RUST_LOG`) sets the filter.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Whether stderr is an interactive terminal (progress bars) or not (structured logs).
pub fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

/// Installs the global subscriber.
pub fn init() {
    // The Delta kernel logs an error for every table it is asked about that does not exist
    // yet, and delta-rs one for every commit that meets a concurrent one (two workers' first
    // commits to a new table), which linkmeter retries; linkmeter reports real failures
    // itself. Silenced under any filter that does not name them.
    const QUIET: &str = "buoyant_kernel=off,deltalake_core::kernel::transaction=off";
    let filter = match std::env::var("LINKMETER_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
    {
        Some(f) if f.contains("buoyant_kernel") || f.contains("deltalake_core") => f,
        Some(f) => format!("{f},{QUIET}"),
        None => {
            // Libraries (delta-rs, DataFusion, the AWS SDK) log their own progress at info;
            // only linkmeter's own events are worth a line by default.
            let ours = if interactive() { "warn" } else { "info" };
            format!("warn,{QUIET},linkmeter={ours},linkmeter_ingest={ours},linkmeter_warehouse={ours},linkmeter_aggregate={ours},linkmeter_reports={ours},linkmeter_sql={ours}")
        }
    };
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if interactive() {
        builder.compact().with_target(false).init();
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    }
}
