//! Reads a month's rollups back from the warehouse into the typed rows pricing works on.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use linkmeter_sql::{Catalog, SqlError};

use crate::invoice::{ConnectivityHour, EndpointHour, Usage};
use crate::rollup::{Month, RollupError};

pub(crate) fn strings(b: &RecordBatch, i: usize) -> Result<Vec<String>, RollupError> {
    let a = cast(b.column(i), &DataType::Utf8).map_err(|e| RollupError::Arrow(e.to_string()))?;
    let s = a.as_string::<i32>();
    Ok((0..s.len())
        .map(|k| {
            if s.is_null(k) {
                String::new()
            } else {
                s.value(k).to_string()
            }
        })
        .collect())
}

pub(crate) fn ints(b: &RecordBatch, i: usize) -> Result<Vec<i64>, RollupError> {
    let a = cast(b.column(i), &DataType::Int64).map_err(|e| RollupError::Arrow(e.to_string()))?;
    Ok(a.as_primitive::<Int64Type>().values().to_vec())
}

async fn rows(cat: &Catalog, sql: &str) -> Result<Vec<RecordBatch>, SqlError> {
    cat.query(sql).await
}

/// The month's usage (AZs summed), endpoint hours and connectivity hours.
pub async fn load_month(
    cat: &Catalog,
    month: Month,
) -> Result<(Vec<Usage>, Vec<EndpointHour>, Vec<ConnectivityHour>), RollupError> {
    let m = month.label();
    let mut usage = Vec::new();
    if cat.tables.contains(&"usage_hourly") {
        let sql = format!(
            "SELECT CAST(u.usage_hour AS BIGINT) / 1000000, u.account_id, c.owner_account_id, u.cluster_name, u.region, u.auth_scheme, u.endpoint_id, CAST(SUM(u.bytes) AS BIGINT) \
             FROM usage_hourly u JOIN clusters c ON c.cluster_arn = u.cluster_arn WHERE u.month = '{m}' GROUP BY 1, 2, 3, 4, 5, 6, 7"
        );
        for b in rows(cat, &sql).await? {
            let (h, acct, owner, cl, reg, auth, ep, bytes) = (
                ints(&b, 0)?,
                strings(&b, 1)?,
                strings(&b, 2)?,
                strings(&b, 3)?,
                strings(&b, 4)?,
                strings(&b, 5)?,
                strings(&b, 6)?,
                ints(&b, 7)?,
            );
            for k in 0..b.num_rows() {
                usage.push(Usage {
                    hour: h[k],
                    client_account: acct[k].clone(),
                    cluster_owner: owner[k].clone(),
                    cluster: cl[k].clone(),
                    region: reg[k].clone(),
                    auth: auth[k].clone(),
                    endpoint_id: ep[k].clone(),
                    bytes: bytes[k].max(0) as u64,
                });
            }
        }
    }
    let mut eh = Vec::new();
    if cat.tables.contains(&"endpoint_hours") {
        let sql = format!("SELECT CAST(usage_hour AS BIGINT) / 1000000, account_id, cluster_name, region, auth_scheme, endpoint_id FROM endpoint_hours WHERE month = '{m}'");
        for b in rows(cat, &sql).await? {
            let (h, acct, cl, reg, auth, ep) = (
                ints(&b, 0)?,
                strings(&b, 1)?,
                strings(&b, 2)?,
                strings(&b, 3)?,
                strings(&b, 4)?,
                strings(&b, 5)?,
            );
            for k in 0..b.num_rows() {
                eh.push(EndpointHour {
                    hour: h[k],
                    client_account: acct[k].clone(),
                    cluster: cl[k].clone(),
                    region: reg[k].clone(),
                    auth: auth[k].clone(),
                    endpoint_id: ep[k].clone(),
                });
            }
        }
    }
    let mut ch = Vec::new();
    if cat.tables.contains(&"connectivity_hours") {
        let sql = format!("SELECT CAST(usage_hour AS BIGINT) / 1000000, account_id, cluster_name, region, auth_scheme FROM connectivity_hours WHERE month = '{m}'");
        for b in rows(cat, &sql).await? {
            let (h, acct, cl, reg, auth) = (
                ints(&b, 0)?,
                strings(&b, 1)?,
                strings(&b, 2)?,
                strings(&b, 3)?,
                strings(&b, 4)?,
            );
            for k in 0..b.num_rows() {
                ch.push(ConnectivityHour {
                    hour: h[k],
                    owner_account: acct[k].clone(),
                    cluster: cl[k].clone(),
                    region: reg[k].clone(),
                    auth: auth[k].clone(),
                });
            }
        }
    }
    Ok((usage, eh, ch))
}

/// Account names and cost centers from the `accounts` table: id → (name, cost center).
pub async fn load_accounts(
    cat: &Catalog,
) -> Result<std::collections::BTreeMap<String, (String, String)>, RollupError> {
    let mut out = std::collections::BTreeMap::new();
    if !cat.tables.contains(&"accounts") {
        return Ok(out);
    }
    for b in rows(
        cat,
        "SELECT account_id, account_name, cost_center FROM accounts",
    )
    .await?
    {
        let (id, name, cc) = (strings(&b, 0)?, strings(&b, 1)?, strings(&b, 2)?);
        for k in 0..b.num_rows() {
            out.insert(id[k].clone(), (name[k].clone(), cc[k].clone()));
        }
    }
    Ok(out)
}
