//! Data quality that travels with the invoice (DESIGN §6): unattributed bytes by reason,
//! SKIPDATA windows, provisioned endpoint hours with no flow-log evidence at all, and the
//! reconciliation of flow-log bytes against broker metrics per cluster-hour.

use linkmeter_sql::Catalog;

use crate::load::{ints, strings, wide};
use crate::rollup::RollupError;
use linkmeter_warehouse::Month;

/// The month's data-quality figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quality {
    /// (reason, records, bytes) of unattributed flow rows in the month.
    pub unattributed: Vec<(String, i64, i128)>,
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
    /// Cluster ARN (clusters of one name in two accounts stay apart).
    pub cluster_arn: String,
    /// Cluster name.
    pub cluster: String,
    /// `to_cluster` (brokers' BytesIn) or `from_cluster` (BytesOut).
    pub direction: String,
    /// Hours with both flow bytes and broker bytes.
    pub hours: i64,
    /// Typical flow / broker ratio: the median over the month's hours with both.
    pub median_ratio: f64,
    /// Hours whose ratio is further than the tolerance from the median, or with broker bytes
    /// and no flow bytes: (hour, flow bytes, broker bytes, deviation).
    pub flagged: Vec<(String, i128, i64, f64)>,
    /// Hours with flow bytes but no broker metric.
    pub without_metrics: i64,
}

/// Computes the data-quality figures for a month (after its rollups ran).
pub async fn quality(cat: &Catalog, month: Month, tolerance: f64) -> Result<Quality, RollupError> {
    let (start, end) = (month.start(), month.end());
    let mut q = Quality::default();
    // `flow_hours` holds the flows rows summed per hour (see linkmeter_warehouse::flow_hours).
    if cat.tables.contains(&"flow_hours") {
        let sql = format!(
            "SELECT reason, CAST(SUM(flow_rows) AS BIGINT), SUM(bytes) FROM flow_hours \
             WHERE status = 'unattributed' AND {} GROUP BY 1 ORDER BY 3 DESC, 1",
            in_month(month)
        );
        for b in cat.query(&sql).await? {
            let (r, n, by) = (strings(&b, 0)?, ints(&b, 1)?, wide(&b, 2)?);
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
    if cat.tables.contains(&"endpoint_hours") && cat.tables.contains(&"flow_hours") {
        let coverage = if cat.tables.contains(&"coverage") {
            format!("UNION SELECT DISTINCT interface_id AS eni, date_trunc('hour', window_start) AS h FROM coverage WHERE window_start >= TIMESTAMP '{start}' AND window_start < TIMESTAMP '{end}'")
        } else {
            String::new()
        };
        let sql = format!(
            "WITH seen AS (SELECT DISTINCT endpoint_eni AS eni, usage_hour AS h FROM flow_hours WHERE endpoint_eni IS NOT NULL AND {} {coverage}) \
             SELECT CAST(COUNT(*) AS BIGINT), CAST(SUM(CASE WHEN s.eni IS NULL THEN 1 ELSE 0 END) AS BIGINT) \
             FROM endpoint_hours e LEFT JOIN seen s ON s.eni = e.endpoint_eni AND s.h = e.usage_hour WHERE e.month = '{}'",
            in_month(month),
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

/// A filter on `flow_hours` to one month's hours, naming its `date` partitions so that only
/// they are opened.
fn in_month(month: Month) -> String {
    let (start, end) = (month.start(), month.end());
    format!(
        "date >= '{}' AND date < '{}' AND usage_hour >= TIMESTAMP '{start}' AND usage_hour < TIMESTAMP '{end}'",
        &start[..10],
        &end[..10]
    )
}

async fn reconcile(
    cat: &Catalog,
    month: Month,
    tolerance: f64,
) -> Result<Vec<Reconciled>, RollupError> {
    let (start, end) = (month.start(), month.end());
    // The view's SQL for this month alone: its work grows with the month, not the warehouse.
    let sql = format!(
        "SELECT cluster_arn, COALESCE(cluster_name, cluster_arn), direction, CAST(usage_hour AS VARCHAR), \
         flow_bytes, COALESCE(broker_bytes, -1) FROM ({}) r \
         WHERE cluster_arn IS NOT NULL ORDER BY 1, 3, 4",
        linkmeter_sql::render(linkmeter_sql::RECONCILIATION, &start, &end)
    );
    // Rows per (cluster ARN, direction): (hour, flow bytes, broker bytes or -1).
    type Hour = (String, i128, i64);
    let mut groups: Vec<(Reconciled, Vec<Hour>)> = Vec::new();
    for b in cat.query(&sql).await? {
        let (arn, name, d, h) = (
            strings(&b, 0)?,
            strings(&b, 1)?,
            strings(&b, 2)?,
            strings(&b, 3)?,
        );
        let (fb, bb) = (wide(&b, 4)?, ints(&b, 5)?);
        for k in 0..b.num_rows() {
            if groups
                .last()
                .is_none_or(|(r, _)| r.cluster_arn != arn[k] || r.direction != d[k])
            {
                groups.push((
                    Reconciled {
                        cluster_arn: arn[k].clone(),
                        cluster: name[k].clone(),
                        direction: d[k].clone(),
                        ..Default::default()
                    },
                    Vec::new(),
                ));
            }
            let g = groups.last_mut().expect("just pushed");
            g.1.push((h[k].clone(), fb[k], bb[k]));
        }
    }
    // The typical ratio is the month's own median, so a closed month's flags do not move as
    // later months arrive (the view's `median_ratio` spans the whole warehouse).
    let mut out = Vec::new();
    for (mut r, rows) in groups {
        let mut ratios: Vec<f64> = rows
            .iter()
            .filter(|(_, f, b)| *f > 0 && *b > 0)
            .map(|(_, f, b)| *f as f64 / *b as f64)
            .collect();
        ratios.sort_by(f64::total_cmp);
        r.hours = ratios.len() as i64;
        r.median_ratio = match ratios.len() {
            0 => 0.0,
            n if n % 2 == 1 => ratios[n / 2],
            n => (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0,
        };
        for (hour, f, b) in rows {
            match (f, b) {
                (f, -1 | 0) if f > 0 => r.without_metrics += 1,
                (_, -1 | 0) => {}
                (0, b) => r.flagged.push((hour, 0, b, -1.0)),
                (f, b) if r.median_ratio > 0.0 => {
                    let dev = f as f64 / b as f64 / r.median_ratio - 1.0;
                    if dev.abs() > tolerance {
                        r.flagged.push((hour, f, b, dev));
                    }
                }
                _ => {}
            }
        }
        out.push(r);
    }
    Ok(out)
}
