//! The table catalog over the linkmeter Parquet warehouse, and ad hoc SQL with DataFusion.
//!
//! Every table directory that exists is registered under its name (Hive partition columns
//! included), and the views under `sql/views/` are registered on top, so analysts and the
//! later rollups see one consistent set of names.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

/// Errors opening the warehouse or running SQL.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The warehouse directory does not exist.
    #[error("warehouse {0} does not exist; run `linkmeter ingest` first or pass --warehouse")]
    NoWarehouse(String),
    /// DataFusion refused or failed the query.
    #[error("{context}: {source}")]
    DataFusion {
        context: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
}

/// A warehouse table: its directory name and Hive partition columns.
#[derive(Debug, Clone, Copy)]
pub struct TableDef {
    /// Table (and directory) name.
    pub name: &'static str,
    /// Hive partition columns, outermost first.
    pub partitions: &'static [&'static str],
    /// One line on what the table holds (shown by `\d` later and in docs).
    pub about: &'static str,
}

/// Every table ingest writes.
pub const TABLES: &[TableDef] = &[
    TableDef {
        name: "flows",
        partitions: &["date", "hour"],
        about: "relevant flow records split by clock hour, attributed or with a reason",
    },
    TableDef {
        name: "coverage",
        partitions: &["date"],
        about: "NODATA / SKIPDATA windows per ENI",
    },
    TableDef {
        name: "broker_metrics",
        partitions: &["date"],
        about: "MSK broker-metric datapoints (CloudWatch metric streams) with raw statistics and derived bytes",
    },
    TableDef {
        name: "quarantine",
        partitions: &[],
        about: "input that could not be decoded, with file, line and reason",
    },
    TableDef {
        name: "runs",
        partitions: &[],
        about: "one row per run with its conservation balance",
    },
    TableDef {
        name: "inputs",
        partitions: &[],
        about: "one row per ingested input: the checkpoint for idempotent reruns",
    },
    TableDef {
        name: "accounts",
        partitions: &[],
        about: "inventory: accounts, names, cost centers",
    },
    TableDef {
        name: "clusters",
        partitions: &[],
        about: "inventory: MSK clusters",
    },
    TableDef {
        name: "cluster_connectivity",
        partitions: &[],
        about: "inventory: auth schemes turned on per cluster",
    },
    TableDef {
        name: "connections",
        partitions: &[],
        about: "inventory: managed VPC connections",
    },
    TableDef {
        name: "endpoint_enis",
        partitions: &[],
        about: "inventory: endpoint ENIs per AZ",
    },
    TableDef { name: "usage_hourly", partitions: &["month"], about: "rollup: billable bytes per hour, account, cluster, auth scheme, connection, endpoint, AZ" },
    TableDef { name: "endpoint_hours", partitions: &["month"], about: "rollup: every hour an endpoint ENI (endpoint × AZ) was provisioned" },
    TableDef { name: "connectivity_hours", partitions: &["month"], about: "rollup: every hour a cluster had connectivity on for an auth scheme" },
];

/// Priced invoice lines per month and view (Decimal128 money).
pub const INVOICE_TABLE: TableDef = TableDef {
    name: "invoice_lines",
    partitions: &["month", "invoice_view"],
    about: "invoice lines per month and view, money as Decimal128",
};

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

/// Substitutes a month's bounds (RFC 3339, UTC) into a rollup query.
pub fn render(sql: &str, month_start: &str, month_end: &str) -> String {
    sql.replace("${month_start}", month_start)
        .replace("${month_end}", month_end)
}

/// Views registered over the tables: (name, SQL, tables and views it needs), in order.
pub const VIEWS: &[(&str, &str, &[&str])] = &[
    (
        "billable_flows",
        include_str!("../views/billable_flows.sql"),
        &["flows"],
    ),
    (
        "reconciliation",
        include_str!("../views/reconciliation.sql"),
        &["billable_flows", "broker_metrics"],
    ),
    (
        "account_usage",
        include_str!("../views/account_usage.sql"),
        &["billable_flows", "accounts"],
    ),
    (
        "endpoint_usage",
        include_str!("../views/endpoint_usage.sql"),
        &["billable_flows", "connections", "accounts"],
    ),
    (
        "unattributed_by_reason",
        include_str!("../views/unattributed_by_reason.sql"),
        &["flows"],
    ),
];

/// One line on what each view answers (for `\d`).
pub const VIEW_ABOUT: &[(&str, &str)] = &[
    (
        "billable_flows",
        "attributed flow rows that count, observation-point rule applied",
    ),
    (
        "reconciliation",
        "flow-log bytes against broker metrics per cluster-hour and direction",
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

/// Where a warehouse is.
#[derive(Clone)]
pub enum Location {
    /// A local directory.
    Local(PathBuf),
    /// A prefix of an object store: `url` is `s3://bucket/prefix`.
    Object {
        /// The warehouse URL.
        url: String,
        /// The store holding the bucket.
        store: std::sync::Arc<dyn object_store::ObjectStore>,
    },
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl Location {
    /// The warehouse's path or URL, for messages.
    pub fn display(&self) -> String {
        match self {
            Location::Local(p) => p.display().to_string(),
            Location::Object { url, .. } => url.clone(),
        }
    }
}

/// A DataFusion session with the warehouse registered.
pub struct Catalog {
    /// The session; run any SQL on it.
    pub ctx: SessionContext,
    /// Tables found and registered.
    pub tables: Vec<&'static str>,
    /// Views registered (those whose tables exist).
    pub views: Vec<&'static str>,
    root: String,
}

fn df(context: impl Into<String>) -> impl FnOnce(datafusion::error::DataFusionError) -> SqlError {
    let context = context.into();
    move |source| SqlError::DataFusion { context, source }
}

fn has_parquet(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            has_parquet(&p)
        } else {
            p.extension().is_some_and(|x| x == "parquet")
        }
    })
}

/// Whether a table directory under an object-store warehouse holds any Parquet file.
async fn has_parquet_object(
    store: &dyn object_store::ObjectStore,
    prefix: &str,
) -> Result<bool, object_store::Error> {
    use futures::TryStreamExt;
    let p = object_store::path::Path::from(prefix);
    let mut s = store.list(Some(&p));
    while let Some(m) = s.try_next().await? {
        if m.location.as_ref().ends_with(".parquet") {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Catalog {
    /// Opens a local warehouse and registers every table that has data, then the views.
    pub async fn open(root: &Path) -> Result<Catalog, SqlError> {
        Self::open_at(&Location::Local(root.to_path_buf())).await
    }

    /// Opens a warehouse at a local path or in an object store and registers every table that
    /// has data, then the views.
    pub async fn open_at(at: &Location) -> Result<Catalog, SqlError> {
        if let Location::Local(root) = at {
            if !root.is_dir() {
                return Err(SqlError::NoWarehouse(root.display().to_string()));
            }
        }
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        if let Location::Object { url, store } = at {
            let u =
                url::Url::parse(url).map_err(|e| SqlError::NoWarehouse(format!("{url}: {e}")))?;
            let base = url::Url::parse(&format!("{}://{}", u.scheme(), u.host_str().unwrap_or("")))
                .map_err(|e| SqlError::NoWarehouse(format!("{url}: {e}")))?;
            ctx.register_object_store(&base, store.clone());
        }
        let mut tables = Vec::new();
        for t in TABLES.iter().chain(std::iter::once(&INVOICE_TABLE)) {
            let url = match at {
                Location::Local(root) => {
                    let dir = root.join(t.name);
                    if !has_parquet(&dir) {
                        continue;
                    }
                    format!("{}/", dir.display())
                }
                Location::Object { url, store } => {
                    let u = url::Url::parse(url)
                        .map_err(|e| SqlError::NoWarehouse(format!("{url}: {e}")))?;
                    let prefix = u.path().trim_matches('/');
                    let key = if prefix.is_empty() {
                        t.name.to_string()
                    } else {
                        format!("{prefix}/{}", t.name)
                    };
                    let found = has_parquet_object(store.as_ref(), &key)
                        .await
                        .map_err(|e| {
                            SqlError::NoWarehouse(format!("{url}: listing {}: {e}", t.name))
                        })?;
                    if !found {
                        continue;
                    }
                    format!("{}/{}/", url.trim_end_matches('/'), t.name)
                }
            };
            let cols: Vec<(String, DataType)> = t
                .partitions
                .iter()
                .map(|p| (p.to_string(), DataType::Utf8))
                .collect();
            let opts = ParquetReadOptions::default().table_partition_cols(cols);
            ctx.register_parquet(t.name, &url, opts)
                .await
                .map_err(df(format!("registering table {} at {url}", t.name)))?;
            tables.push(t.name);
        }
        let mut have: Vec<&str> = tables.clone();
        let mut views: Vec<&'static str> = Vec::new();
        for (name, sql, needs) in VIEWS {
            if !needs.iter().all(|n| have.contains(n)) {
                continue;
            }
            let plan = ctx
                .sql(sql)
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
            root: at.display(),
        })
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

/// Formats batches as CSV with a header.
pub fn csv(batches: &[RecordBatch]) -> Result<String, arrow::error::ArrowError> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut buf);
        for b in batches {
            w.write(b)?;
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}
