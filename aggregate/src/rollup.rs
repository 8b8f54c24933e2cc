//! Runs the monthly rollup SQL (`sql/rollups/*.sql`) over the warehouse and writes each result
//! as `TABLE/month=YYYY-MM/TABLE.parquet`, replacing that month's previous output atomically,
//! so rerunning after late data restates the month instead of adding to it.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{Datelike, NaiveDate};
use linkmeter_ingest::warehouse::{Sink, WarehouseError};
use linkmeter_sql::{render, Catalog, SqlError, ROLLUPS};

/// Errors of a rollup run.
#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    /// The month argument is not `YYYY-MM`.
    #[error("month {0:?} is not YYYY-MM (for example 2026-10)")]
    Month(String),
    /// A query failed.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// Writing the result failed.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// Converting a result column failed.
    #[error("rollup result conversion failed: {0}")]
    Arrow(String),
    /// The warehouse has no flows or inventory to roll up.
    #[error("warehouse {0} has no {1} table yet; run `linkmeter ingest` first")]
    Missing(String, &'static str),
}

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    /// Parses `YYYY-MM`.
    pub fn parse(s: &str) -> Result<Month, RollupError> {
        let d = NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d")
            .map_err(|_| RollupError::Month(s.to_string()))?;
        if s.len() != 7 {
            return Err(RollupError::Month(s.to_string()));
        }
        Ok(Month {
            year: d.year(),
            month: d.month(),
        })
    }

    /// `YYYY-MM`.
    pub fn label(&self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    /// First instant, RFC 3339.
    pub fn start(&self) -> String {
        format!("{:04}-{:02}-01T00:00:00Z", self.year, self.month)
    }

    /// The month before.
    pub fn prev(&self) -> Month {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// First instant of the next month, RFC 3339.
    pub fn end(&self) -> String {
        let (y, m) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        format!("{y:04}-{m:02}-01T00:00:00Z")
    }
}

/// Gives rollup results the warehouse's types whatever the engine inferred from portable SQL:
/// timestamps as microseconds UTC (`generate_series` over an interval yields nanoseconds in
/// DataFusion) and byte counts as UInt64 (`SUM(CASE … ELSE 0 END)` widens to a decimal).
fn normalize_types(b: &RecordBatch) -> Result<RecordBatch, RollupError> {
    let want = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let bytes_type = DataType::UInt64;
    let mut fields = Vec::with_capacity(b.num_columns());
    let mut cols = Vec::with_capacity(b.num_columns());
    for (f, c) in b.schema().fields().iter().zip(b.columns()) {
        if matches!(f.data_type(), DataType::Timestamp(_, _)) && f.data_type() != &want {
            cols.push(cast(c, &want).map_err(|e| RollupError::Arrow(e.to_string()))?);
            fields.push(Field::new(f.name(), want.clone(), f.is_nullable()));
        } else if f.name().starts_with("bytes") && f.data_type() != &bytes_type {
            let opts = arrow::compute::CastOptions {
                safe: false,
                ..Default::default()
            };
            let c2 = arrow::compute::cast_with_options(c, &bytes_type, &opts)
                .map_err(|e| RollupError::Arrow(format!("column {}: {e}", f.name())))?;
            cols.push(c2);
            fields.push(Field::new(f.name(), bytes_type.clone(), f.is_nullable()));
        } else {
            cols.push(c.clone());
            fields.push(f.as_ref().clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
        .map_err(|e| RollupError::Arrow(e.to_string()))
}

/// Rows written per rollup table.
#[derive(Debug, Clone, Default)]
pub struct RollupReport {
    /// (table, rows) in run order.
    pub tables: Vec<(&'static str, u64)>,
}

/// Runs every rollup for `month` and writes the results through `sink` into the warehouse at
/// `root` (the catalog reads the same place).
pub async fn rollup(
    root: &linkmeter_sql::Location,
    sink: &dyn Sink,
    month: Month,
) -> Result<RollupReport, RollupError> {
    let cat = Catalog::open_at(root).await?;
    for needed in [
        "flows",
        "connections",
        "endpoint_enis",
        "clusters",
        "cluster_connectivity",
    ] {
        if !cat.tables.contains(&needed) {
            return Err(RollupError::Missing(root.display(), needed));
        }
    }
    let mut report = RollupReport::default();
    for (table, sql) in ROLLUPS {
        let batches = cat
            .query(&render(sql, &month.start(), &month.end()))
            .await?;
        let batches = batches
            .iter()
            .map(normalize_types)
            .collect::<Result<Vec<_>, _>>()?;
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let path = format!("{table}/month={}/{table}.parquet", month.label());
        if batches.is_empty() {
            // No rows: remove any earlier output for the month so a rerun restates it.
            sink.delete(&path)?;
        } else {
            sink.put(&path, &batches)?;
        }
        report.tables.push((table, rows));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months() {
        let m = Month::parse("2026-12").unwrap();
        assert_eq!(
            (m.start(), m.end(), m.label()),
            (
                "2026-12-01T00:00:00Z".into(),
                "2027-01-01T00:00:00Z".into(),
                "2026-12".into()
            )
        );
        assert!(Month::parse("2026-13").is_err());
        assert_eq!(Month::parse("2026-01").unwrap().prev().label(), "2025-12");
        assert!(Month::parse("2026-1").is_err());
        assert!(Month::parse("october")
            .unwrap_err()
            .to_string()
            .contains("YYYY-MM"));
    }
}
