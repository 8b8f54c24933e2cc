//! Data quality that travels with the invoice (DESIGN §6): unattributed bytes by reason,
//! SKIPDATA windows, and provisioned endpoint hours with no flow-log evidence at all.

use linkmeter_sql::Catalog;

use crate::load::{ints, strings};
use crate::rollup::{Month, RollupError};

/// The month's data-quality figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quality {
    /// (reason, records, bytes) of unattributed flow rows in the month.
    pub unattributed: Vec<(String, i64, i64)>,
    /// SKIPDATA windows (records skipped by AWS) that start in the month.
    pub skipdata_windows: i64,
    /// Provisioned endpoint-ENI hours in which no flow row (either side) and no coverage row
    /// names the ENI: the meter saw nothing, which usually means no flow log there.
    pub uncovered_endpoint_hours: i64,
    /// Provisioned endpoint-ENI hours in the month.
    pub endpoint_hours: i64,
}

/// Computes the data-quality figures for a month (after its rollups ran).
pub async fn quality(cat: &Catalog, month: Month) -> Result<Quality, RollupError> {
    let (start, end) = (month.start(), month.end());
    let mut q = Quality::default();
    if cat.tables.contains(&"flows") {
        let sql = format!(
            "SELECT reason, CAST(COUNT(*) AS BIGINT), CAST(SUM(bytes) AS BIGINT) FROM flows \
             WHERE status = 'unattributed' AND usage_hour >= TIMESTAMP '{start}' AND usage_hour < TIMESTAMP '{end}' GROUP BY 1 ORDER BY 3 DESC"
        );
        for b in cat.query(&sql).await? {
            let (r, n, by) = (strings(&b, 0)?, ints(&b, 1)?, ints(&b, 2)?);
            for k in 0..b.num_rows() {
                q.unattributed.push((r[k].clone(), n[k], by[k]));
            }
        }
    }
    if cat.tables.contains(&"coverage") {
        let sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM coverage WHERE log_status = 'SKIPDATA' AND window_start >= TIMESTAMP '{start}' AND window_start < TIMESTAMP '{end}'"
        );
        for b in cat.query(&sql).await? {
            q.skipdata_windows += ints(&b, 0)?.first().copied().unwrap_or(0);
        }
    }
    if cat.tables.contains(&"endpoint_hours") && cat.tables.contains(&"flows") {
        let coverage = if cat.tables.contains(&"coverage") {
            "UNION SELECT DISTINCT interface_id AS eni, date_trunc('hour', window_start) AS h FROM coverage"
        } else {
            ""
        };
        let sql = format!(
            "WITH seen AS (SELECT DISTINCT endpoint_eni AS eni, usage_hour AS h FROM flows WHERE endpoint_eni IS NOT NULL {coverage}) \
             SELECT CAST(COUNT(*) AS BIGINT), CAST(SUM(CASE WHEN s.eni IS NULL THEN 1 ELSE 0 END) AS BIGINT) \
             FROM endpoint_hours e LEFT JOIN seen s ON s.eni = e.endpoint_eni AND s.h = e.usage_hour WHERE e.month = '{}'",
            month.label()
        );
        for b in cat.query(&sql).await? {
            q.endpoint_hours += ints(&b, 0)?.first().copied().unwrap_or(0);
            q.uncovered_endpoint_hours += ints(&b, 1)?.first().copied().unwrap_or(0);
        }
    }
    Ok(q)
}
