//! The table catalog over the linkmeter warehouse, and the portable SQL (rollups and views).
//!
//! Every warehouse table that exists (see `linkmeter_warehouse::registry`) is registered under
//! its name at its latest committed version, partition columns included, and the views under
//! `sql/views/` are registered on top, so analysts and the rollups see one set of names.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::prelude::{SessionConfig, SessionContext};
use linkmeter_warehouse::registry::{SEGMENT_TABLES, TABLES};
use linkmeter_warehouse::segment::segment_of;
use linkmeter_warehouse::summaries::{self, PAIRS};
use linkmeter_warehouse::Warehouse;

#[cfg(feature = "ballista")]
pub mod cluster;
pub mod ddl;
pub mod engine;
pub mod pinned;
pub use engine::{EngineKind, EngineOptions};

/// Errors opening the warehouse or running SQL.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The warehouse directory does not exist.
    #[error("warehouse {0} does not exist; run `linkmeter ingest` first or pass --warehouse")]
    NoWarehouse(String),
    /// The warehouse could not be read.
    #[error(transparent)]
    Warehouse(#[from] linkmeter_warehouse::Error),
    /// The Ballista scheduler does not answer.
    #[error("cannot reach the Ballista scheduler at {url} ({reason}); start one with `linkmeter ballista scheduler`, or fix [engine] scheduler in the config (or --engine)")]
    Unreachable {
        /// The scheduler URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The engine named in the configuration is not in this build.
    #[error("[engine] kind = \"ballista\" (scheduler {0}) needs a linkmeter built with the `ballista` feature (cargo build --release --features ballista; the container image has it)")]
    NoBallista(String),
    /// DataFusion refused or failed the query.
    #[error("{context}: {source}")]
    DataFusion {
        context: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
}

/// The monthly rollups, in the order they run: (table name, SQL with `${month_start}` and
/// `${month_end}` placeholders). Kept as plain files so analysts can port them.
pub const ROLLUPS: &[(&str, &str)] = &[
    ("usage_hourly", include_str!("../rollups/usage_hourly.sql")),
    (
        "endpoint_hours",
        include_str!("../rollups/endpoint_hours.sql"),
    ),
    (
        "connectivity_hours",
        include_str!("../rollups/connectivity_hours.sql"),
    ),
];

/// Checks of the inventory against the flow logs (`linkmeter inventory check`): endpoint
/// addresses on MSK ports that the inventory lacks, and endpoint ENIs that never carried
/// traffic. Both need `flows` and `endpoint_enis`.
pub const INVENTORY_CHECKS: (&str, &str) = (
    include_str!("../checks/unknown_endpoints.sql"),
    include_str!("../checks/idle_endpoint_enis.sql"),
);

/// Substitutes a month's bounds (RFC 3339, UTC) into a rollup query.
pub fn render(sql: &str, month_start: &str, month_end: &str) -> String {
    sql.replace("${month_start}", month_start)
        .replace("${month_end}", month_end)
}

/// The bounds views are registered with: every hour a warehouse can hold (views that take
/// `${month_start}`/`${month_end}` are rendered with them; the month close renders its month).
/// DataFusion turns timestamp literals into nanoseconds on the way, which end in 2262.
pub const ALL_TIME: (&str, &str) = ("1970-01-01T00:00:00Z", "2200-01-01T00:00:00Z");

/// Views registered over the tables: (name, SQL, tables and views it needs), in order.
pub const VIEWS: &[(&str, &str, &[&str])] = &[
    (
        "billable_flows",
        include_str!("../views/billable_flows.sql"),
        &["flows"],
    ),
    (
        "billable_hours",
        include_str!("../views/billable_hours.sql"),
        &["flow_hours"],
    ),
    (
        "reconciliation",
        RECONCILIATION,
        &["billable_hours", "broker_metrics", "broker_hours"],
    ),
    (
        "reconciliation_by_scheme",
        include_str!("../views/reconciliation_by_scheme.sql"),
        &["billable_hours", "broker_metrics"],
    ),
    (
        "account_usage",
        include_str!("../views/account_usage.sql"),
        &["billable_hours", "accounts"],
    ),
    (
        "endpoint_usage",
        include_str!("../views/endpoint_usage.sql"),
        &["billable_hours", "connections", "accounts"],
    ),
    (
        "unattributed_by_reason",
        include_str!("../views/unattributed_by_reason.sql"),
        &["flows"],
    ),
];

/// The `reconciliation` view's SQL, with `${month_start}`/`${month_end}` bounds (see
/// [`render`]): the month close runs it for its month alone.
pub const RECONCILIATION: &str = include_str!("../views/reconciliation.sql");

/// One line on what each view answers (for `\d`).
pub const VIEW_ABOUT: &[(&str, &str)] = &[
    (
        "billable_flows",
        "attributed flow rows that count, observation-point rule applied",
    ),
    (
        "billable_hours",
        "billable_flows summed per hour, endpoint ENI, direction and cluster (from flow_hours)",
    ),
    (
        "reconciliation",
        "flow-log bytes against broker metrics per cluster-hour and direction",
    ),
    (
        "reconciliation_by_scheme",
        "flow-log bytes against the multi-VPC listeners' socket counters per cluster, auth scheme, hour and direction",
    ),
    (
        "account_usage",
        "billable GiB per month, account, cluster, auth scheme and direction",
    ),
    (
        "endpoint_usage",
        "per month and VPC endpoint: the account billed for it and its bytes",
    ),
    (
        "unattributed_by_reason",
        "bytes seen but not billable, per month and reason",
    ),
];

/// A DataFusion session with the warehouse registered.
pub struct Catalog {
    /// The session; run any SQL on it.
    pub ctx: SessionContext,
    /// Tables found and registered.
    pub tables: Vec<&'static str>,
    /// Views registered (those whose tables exist).
    pub views: Vec<&'static str>,
    /// Summary tables that do not match the files they sum (a warehouse from before them
    /// fed only by shards, or a run cut short): views over them are incomplete until the next
    /// whole `ingest`, `run` or `invoice` rebuilds them.
    pub stale: Vec<&'static str>,
    root: String,
    pool: Arc<engine::PeakPool>,
}

/// `url` when its scheduler accepts a TCP connection: Ballista's client would otherwise fail
/// only when the first query runs, with a transport error.
#[cfg(feature = "ballista")]
async fn reachable(url: &str) -> Result<String, SqlError> {
    let unreachable = |reason: String| SqlError::Unreachable {
        url: url.to_string(),
        reason,
    };
    let hostport = url.trim_start_matches("df://").trim_end_matches('/');
    let hostport = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_string()
    } else {
        format!("{hostport}:50050")
    };
    let connect = tokio::net::TcpStream::connect(hostport.as_str());
    match tokio::time::timeout(std::time::Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => Ok(url.to_string()),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!("no answer from {hostport} within 5 s"))),
    }
}

/// The object store URL of the warehouse's files (`file:///` or `s3://bucket`).
fn store_url(wh: &Warehouse) -> String {
    let u = wh.url();
    format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""))
}

/// Registers the warehouse's bucket store, which pinned tables scan (Delta registers its own
/// under another name; a local warehouse is read through `file://`, always there).
fn register_store(
    runtime: &datafusion::execution::runtime_env::RuntimeEnv,
    wh: &Warehouse,
) -> Result<(), SqlError> {
    if wh.local_dir().is_none() {
        let url = url::Url::parse(&store_url(wh)).map_err(|e| SqlError::DataFusion {
            context: format!("warehouse {}", wh.display()),
            source: datafusion::error::DataFusionError::External(Box::new(e)),
        })?;
        runtime.register_object_store(&url, wh.store());
    }
    Ok(())
}

/// A query runtime that can read `wh`'s files, for the cluster's scheduler and executors;
/// operators spill into `spill_dir` (default: the system's temporary directory).
pub fn runtime_for(
    wh: Option<&Warehouse>,
    spill_dir: Option<&std::path::Path>,
) -> Result<Arc<datafusion::execution::runtime_env::RuntimeEnv>, SqlError> {
    let (runtime, _) = engine::runtime_spilling_to(&EngineOptions::default(), spill_dir)
        .map_err(df("setting up the query engine"))?;
    if let Some(wh) = wh {
        register_store(&runtime, wh)?;
    }
    Ok(runtime)
}

fn df(context: impl Into<String>) -> impl FnOnce(datafusion::error::DataFusionError) -> SqlError {
    let mut context = context.into();
    move |source| {
        if matches!(
            source.find_root(),
            datafusion::error::DataFusionError::ResourcesExhausted(_)
        ) {
            context.push_str(" (the query needs more memory than [engine] memory_limit allows and cannot spill it; raise memory_limit in [engine] or LINKMETER_MEMORY_LIMIT)");
        }
        SqlError::DataFusion { context, source }
    }
}

impl Catalog {
    /// Opens the warehouse's tables at their latest committed versions (Delta snapshots: rows
    /// of a commit in progress are never seen) and registers them, then the views. The
    /// ingested tables show only the files of segments in the `inputs` checkpoint: a segment
    /// between its data commits and its checkpoint (or left so by a crash, until the next run
    /// removes it) is not counted, so a reader never sees a row twice or a row that a
    /// rerun will replace.
    pub async fn open(wh: &Warehouse) -> Result<Catalog, SqlError> {
        Self::open_with(wh, &EngineOptions::default()).await
    }

    /// [`Catalog::open`] with the engine's settings (its memory budget).
    pub async fn open_with(wh: &Warehouse, o: &EngineOptions) -> Result<Catalog, SqlError> {
        if let Some(dir) = wh.local_dir() {
            if !dir.is_dir() {
                return Err(SqlError::NoWarehouse(dir.display().to_string()));
            }
        }
        let (runtime, pool) = engine::runtime(o).map_err(df("setting up the query engine"))?;
        let store = store_url(wh);
        register_store(&runtime, wh)?;
        let ctx = match &o.kind {
            EngineKind::Local => SessionContext::new_with_config_rt(
                SessionConfig::new().with_information_schema(true),
                runtime,
            ),
            #[cfg(feature = "ballista")]
            EngineKind::Ballista(url) => cluster::connect(&reachable(url).await?, runtime)
                .await
                .map_err(df(format!("connecting to the Ballista scheduler at {url}")))?,
            #[cfg(not(feature = "ballista"))]
            EngineKind::Ballista(url) => return Err(SqlError::NoBallista(url.clone())),
        };
        let pinned = o.kind != EngineKind::Local;
        let mut tables = Vec::new();
        let mut counted_files = std::collections::HashMap::new();
        // The checkpoint is read before the tables: a segment checkpointed after this is left
        // out whole, and one superseded after it is gone whole from the tables read next.
        let live: HashSet<String> = linkmeter_warehouse::inputs::read(wh)
            .await?
            .inputs
            .into_values()
            .map(|r| r.segment_id)
            .collect();
        for t in TABLES {
            let Some(table) = wh.read_table(t).await? else {
                continue;
            };
            let segmented = SEGMENT_TABLES.iter().any(|s| s.name == t.name);
            let all = table.files()?;
            let total = all.len();
            let counted: Vec<_> = all
                .into_iter()
                .filter(|f| {
                    // Bill quarantine files are the bill loader's, not a segment's.
                    !segmented
                        || live.contains(segment_of(f.name()))
                        || f.name()
                            .starts_with(linkmeter_warehouse::segment::BILL_QUARANTINE)
                })
                .collect();
            let provider: std::sync::Arc<dyn datafusion::catalog::TableProvider> = if pinned {
                let files = counted
                    .iter()
                    .map(|f| pinned::PinnedFile {
                        path: wh.store_path(&format!("{}/{}", t.name, f.path)),
                        size: u64::try_from(f.size).unwrap_or(0),
                        partition: t
                            .partitions
                            .iter()
                            .map(|p| f.partition.get(*p).cloned().flatten())
                            .collect(),
                    })
                    .collect();
                Arc::new(
                    pinned::PinnedTable::new(t, &store, files)
                        .map_err(df(format!("registering table {}", t.name)))?,
                )
            } else if counted.is_empty() && total > 0 {
                // No counted file at all: an empty table of the same columns (an empty file
                // selection is not "none" to every provider).
                Arc::new(
                    datafusion::datasource::MemTable::try_new(t.table_schema(), vec![vec![]])
                        .map_err(df(format!("registering table {}", t.name)))?,
                )
            } else {
                let only = (counted.len() < total)
                    .then(|| counted.iter().map(|f| f.path.clone()).collect());
                table.provider(&ctx.state(), only).await?
            };
            if segmented {
                counted_files.insert(t.name, counted);
            }
            ctx.register_table(t.name, provider)
                .map_err(df(format!("registering table {}", t.name)))?;
            tables.push(t.name);
        }
        let stale = PAIRS
            .iter()
            .filter(|p| match counted_files.get(p.source.name) {
                Some(files) => !summaries::matches(
                    files,
                    counted_files
                        .get(p.summary.name)
                        .map_or(&[][..], Vec::as_slice),
                ),
                None => false,
            })
            .map(|p| p.summary.name)
            .collect();
        let mut have: Vec<&str> = tables.clone();
        let mut views: Vec<&'static str> = Vec::new();
        for (name, sql, needs) in VIEWS {
            if !needs.iter().all(|n| have.contains(n)) {
                continue;
            }
            let plan = ctx
                .sql(&render(sql, ALL_TIME.0, ALL_TIME.1))
                .await
                .map_err(df(format!("building view {name}")))?;
            ctx.register_table(*name, plan.into_view())
                .map_err(df(format!("registering view {name}")))?;
            have.push(name);
            views.push(*name);
        }
        Ok(Catalog {
            ctx,
            tables,
            views,
            stale,
            root: wh.display(),
            pool,
        })
    }

    /// The most memory the engine's operators held at once in this session.
    pub fn memory_peak(&self) -> usize {
        self.pool.peak()
    }

    /// Runs one statement that may only read: DataFusion refuses DDL, DML (INSERT, COPY) and
    /// statements, even wrapped in EXPLAIN ANALYZE.
    pub async fn query_read_only(&self, sql: &str) -> Result<Vec<RecordBatch>, SqlError> {
        let opts = datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let frame = self
            .ctx
            .sql_with_options(sql, opts)
            .await
            .map_err(df(format!(
                "query failed (warehouse {}; read-only: add --write for other statements)",
                self.root
            )))?;
        frame
            .collect()
            .await
            .map_err(df("query failed while running"))
    }

    /// The warehouse's path or URL.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Runs one SQL statement and collects the result.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>, SqlError> {
        let frame = self
            .ctx
            .sql(sql)
            .await
            .map_err(df(format!("query failed (warehouse {})", self.root)))?;
        frame
            .collect()
            .await
            .map_err(df("query failed while running"))
    }
}

/// Formats batches as an aligned text table.
pub fn pretty(batches: &[RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches)
        .map(|t| t.to_string())
        .unwrap_or_else(|e| e.to_string())
}

/// Formats batches as CSV with a header: RFC 4180 quoting, text cells neutralized against
/// spreadsheet formulas (`linkmeter_warehouse::csv_out`), nulls empty.
pub fn csv(batches: &[RecordBatch]) -> Result<String, arrow::error::ArrowError> {
    use arrow::datatypes::DataType;
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let Some(first) = batches.first() else {
        return Ok(String::new());
    };
    let schema = first.schema();
    let mut out = linkmeter_warehouse::csv_out::CsvOut::new();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    out.header(&names);
    let is_text = |t: &DataType| match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => {
            matches!(
                **v,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            )
        }
        _ => false,
    };
    let text: Vec<bool> = schema
        .fields()
        .iter()
        .map(|f| is_text(f.data_type()))
        .collect();
    let options = FormatOptions::default().with_display_error(true);
    let mut cell = String::new();
    for b in batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..b.num_rows() {
            for (i, f) in formatters.iter().enumerate() {
                cell.clear();
                if b.column(i).is_valid(row) {
                    use std::fmt::Write;
                    let _ = write!(cell, "{}", f.value(row));
                }
                if text[i] {
                    out.text(&cell);
                } else {
                    out.value(&cell);
                }
            }
            out.end_row();
        }
    }
    Ok(out.finish())
}

#[cfg(test)]
mod csv_tests {
    use super::*;
    use arrow::array::{ArrayRef, Decimal128Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn csv_neutralizes_text_but_not_numbers() {
        let names: ArrayRef = Arc::new(StringArray::from(vec![
            Some("=HYPERLINK(\"x\")"),
            Some("a,b"),
            None,
        ]));
        let amounts: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(-250), Some(100), None])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        );
        let b = RecordBatch::try_from_iter([("name", names), ("amount", amounts)]).unwrap();
        assert_eq!(
            csv(&[b]).unwrap(),
            "name,amount\n\"'=HYPERLINK(\"\"x\"\")\",-2.50\n\"a,b\",1.00\n,\n"
        );
        assert_eq!(csv(&[]).unwrap(), "");
    }
}
