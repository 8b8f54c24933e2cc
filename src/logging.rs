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
    let filter = std::env::var("LINKMETER_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| {
            // Libraries (delta-rs, DataFusion, the AWS SDK) log their own progress at info;
            // only linkmeter's own events are worth a line by default.
            let ours = if interactive() { "warn" } else { "info" };
            // The Delta kernel logs an error for every table it is asked about that does not
            // exist yet; linkmeter reports real failures itself.
            format!("warn,buoyant_kernel=off,linkmeter={ours},linkmeter_ingest={ours},linkmeter_warehouse={ours},linkmeter_aggregate={ours},linkmeter_reports={ours},linkmeter_sql={ours}")
        });
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
