//! Data quality that travels with the invoice (DESIGN §6): unattributed bytes by reason,
//! SKIPDATA windows, provisioned endpoint hours with no flow-log evidence at all, and the
//! reconciliation of flow-log bytes against broker metrics per cluster-hour.

use linkmeter_sql::Catalog;

use crate::load::{ints, strings};
use crate::rollup::{Month, RollupError};

/// The month's data-quality figures.
#[derive(Debug, Clone, Default, PartialEq)]
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
    /// Flow logs against broker metrics, per cluster and direction (empty without metrics).
    pub reconciliation: Vec<Reconciled>,
}

/// One cluster and direction's month of reconciliation (the `reconciliation` view).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reconciled {
    /// Cluster name.
    pub cluster: String,
    /// `to_cluster` (brokers' BytesIn) or `from_cluster` (BytesOut).
    pub direction: String,
    /// Hours with both flow bytes and broker bytes.
    pub hours: i64,
    /// Typical flow / broker ratio (the median over all hours the view holds).
    pub median_ratio: f64,
    /// Hours whose ratio is further than the tolerance from the median, or with broker bytes
    /// and no flow bytes: (hour, flow bytes, broker bytes, deviation).
    pub flagged: Vec<(String, i64, i64, f64)>,
    /// Hours with flow bytes but no broker metric.
    pub without_metrics: i64,
}

/// Computes the data-quality figures for a month (after its rollups ran).
pub async fn quality(cat: &Catalog, month: Month, tolerance: f64) -> Result<Quality, RollupError> {
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
    if cat.ctx.table_exist("reconciliation").unwrap_or(false) {
        q.reconciliation = reconcile(cat, month, tolerance).await?;
    }
    Ok(q)
}

async fn reconcile(
    cat: &Catalog,
    month: Month,
    tolerance: f64,
) -> Result<Vec<Reconciled>, RollupError> {
    use arrow::array::AsArray;
    use arrow::datatypes::Float64Type;
    let (start, end) = (month.start(), month.end());
    let sql = format!(
        "SELECT COALESCE(cluster_name, cluster_arn), direction, CAST(usage_hour AS VARCHAR), flow_bytes,          COALESCE(broker_bytes, -1), COALESCE(deviation, 0.0), COALESCE(median_ratio, 0.0)          FROM reconciliation WHERE usage_hour >= TIMESTAMP '{start}' AND usage_hour < TIMESTAMP '{end}'          ORDER BY 1, 2, 3"
    );
    let mut out: Vec<Reconciled> = Vec::new();
    for b in cat.query(&sql).await? {
        let (c, d, h) = (strings(&b, 0)?, strings(&b, 1)?, strings(&b, 2)?);
        let (fb, bb) = (ints(&b, 3)?, ints(&b, 4)?);
        let f64s = |i: usize| -> Vec<f64> {
            b.column(i)
                .as_primitive_opt::<Float64Type>()
                .map(|a| a.values().to_vec())
                .unwrap_or_default()
        };
        let (dev, med) = (f64s(5), f64s(6));
        for k in 0..b.num_rows() {
            if out
                .last()
                .is_none_or(|r| r.cluster != c[k] || r.direction != d[k])
            {
                out.push(Reconciled {
                    cluster: c[k].clone(),
                    direction: d[k].clone(),
                    ..Default::default()
                });
            }
            let r = out.last_mut().expect("just pushed");
            if med.get(k).copied().unwrap_or(0.0) > 0.0 {
                r.median_ratio = med[k];
            }
            match (fb[k], bb[k]) {
                (f, -1 | 0) if f > 0 => r.without_metrics += 1,
                (_, -1) => {}
                (f, b_) => {
                    if f > 0 && b_ > 0 {
                        r.hours += 1;
                    }
                    let d_ = dev.get(k).copied().unwrap_or(0.0);
                    if (b_ > 0 && f == 0) || d_.abs() > tolerance {
                        r.flagged
                            .push((h[k].clone(), f, b_, if f == 0 { -1.0 } else { d_ }));
                    }
                }
            }
        }
    }
    Ok(out)
}
