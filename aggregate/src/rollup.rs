//! Runs the monthly rollup SQL (`sql/rollups/*.sql`) over the warehouse and writes each result
//! into its table's `month=YYYY-MM` partition, replacing that month's previous output in one
//! commit, so rerunning after late data restates the month instead of adding to it.

use linkmeter_sql::{render, Catalog, SqlError, ROLLUPS};
use linkmeter_warehouse::registry;
use linkmeter_warehouse::{Month, Warehouse};

/// Errors of the month close.
#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    /// A query failed.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// Writing the result failed.
    #[error(transparent)]
    Warehouse(#[from] linkmeter_warehouse::Error),
    /// Converting a result column failed.
    #[error("rollup result conversion failed: {0}")]
    Arrow(String),
    /// The warehouse has no flows or inventory to roll up.
    #[error("warehouse {0} has no {1} table yet; run `linkmeter ingest` first")]
    Missing(String, &'static str),
}

/// Rows written per rollup table.
#[derive(Debug, Clone, Default)]
pub struct RollupReport {
    /// (table, rows) in run order.
    pub tables: Vec<(&'static str, u64)>,
    /// The most memory the query engine's operators held at once, and their budget.
    pub memory_peak: usize,
    /// The budget (`None`: no limit).
    pub memory_limit: Option<usize>,
    /// The Ballista scheduler the queries ran on (`None`: this process).
    pub cluster: Option<String>,
    /// Summaries written or dropped before the close (none when they matched their files).
    pub summaries: linkmeter_warehouse::summaries::Repaired,
}

/// Runs every rollup for `month` and replaces the month's partition of each rollup table.
pub async fn rollup(
    wh: &Warehouse,
    month: Month,
    engine: &linkmeter_sql::EngineOptions,
) -> Result<RollupReport, RollupError> {
    let cat = Catalog::open_with(wh, engine).await?;
    for needed in [
        "flows",
        "flow_hours",
        "connections",
        "endpoint_enis",
        "clusters",
        "cluster_connectivity",
    ] {
        if !cat.tables.contains(&needed) {
            return Err(RollupError::Missing(wh.display(), needed));
        }
    }
    let mut report = RollupReport::default();
    for (table, sql) in ROLLUPS {
        let def = registry::by_name(table).expect("every rollup has a registered table");
        let batches = cat
            .query(&render(sql, &month.start(), &month.end()))
            .await?
            .iter()
            .map(|b| linkmeter_warehouse::table::conform(def, b))
            .collect::<Result<Vec<_>, _>>()?;
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let t = wh.table(def).await?;
        t.lock()
            .await
            .replace(&[("month", month.label())], table, &batches)
            .await?;
        report.tables.push((table, rows));
    }
    report.memory_peak = cat.memory_peak();
    report.memory_limit = engine.memory_limit;
    if let linkmeter_sql::EngineKind::Ballista(url) = &engine.kind {
        report.cluster = Some(url.clone());
    }
    Ok(report)
}
