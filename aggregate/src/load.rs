//! Reads a month's rollups back from the warehouse into the typed rows pricing works on.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Decimal128Type, Int64Type};
use linkmeter_sql::{Catalog, SqlError};

use crate::invoice::{ConnectivityHour, EndpointHour, Usage};
use crate::rollup::RollupError;
use linkmeter_warehouse::Month;

/// A column as text (any type, cast), for the binary's own queries too.
pub fn strings(b: &RecordBatch, i: usize) -> Result<Vec<String>, RollupError> {
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

/// A column of whole numbers as `i128` (byte sums are DECIMAL(38,0), which `i64` cannot hold).
pub fn wide(b: &RecordBatch, i: usize) -> Result<Vec<i128>, RollupError> {
    let a = cast(b.column(i), &DataType::Decimal128(38, 0))
        .map_err(|e| RollupError::Arrow(e.to_string()))?;
    Ok(a.as_primitive::<Decimal128Type>().values().to_vec())
}

/// A column as 64-bit integers (cast).
pub fn ints(b: &RecordBatch, i: usize) -> Result<Vec<i64>, RollupError> {
    let a = cast(b.column(i), &DataType::Int64).map_err(|e| RollupError::Arrow(e.to_string()))?;
    Ok(a.as_primitive::<Int64Type>().values().to_vec())
}

/// Every row of a query as text (any type, cast; nulls empty), for small results read by key.
pub async fn text_rows(cat: &Catalog, sql: &str) -> Result<Vec<Vec<String>>, RollupError> {
    let mut out = Vec::new();
    for b in cat.query(sql).await? {
        let cols = (0..b.num_columns())
            .map(|i| strings(&b, i))
            .collect::<Result<Vec<_>, _>>()?;
        for k in 0..b.num_rows() {
            out.push(cols.iter().map(|c| c[k].clone()).collect());
        }
    }
    Ok(out)
}

async fn rows(cat: &Catalog, sql: &str) -> Result<Vec<RecordBatch>, SqlError> {
    cat.query(sql).await
}

/// One rollup row: the hour (Unix seconds), the string columns that follow it, then any
/// trailing integer columns.
struct Row {
    hour: i64,
    text: Vec<String>,
    tail: Vec<i128>,
}

/// Runs `sql` when `table` exists; each row is an hour, `n_text` strings, then integers.
async fn month_rows(
    cat: &Catalog,
    table: &str,
    sql: &str,
    n_text: usize,
) -> Result<Vec<Row>, RollupError> {
    let mut out = Vec::new();
    if !cat.tables.contains(&table) {
        return Ok(out);
    }
    for b in rows(cat, sql).await? {
        let hours = ints(&b, 0)?;
        let text = (1..=n_text)
            .map(|c| strings(&b, c))
            .collect::<Result<Vec<_>, _>>()?;
        let tail = (n_text + 1..b.num_columns())
            .map(|c| wide(&b, c))
            .collect::<Result<Vec<_>, _>>()?;
        for k in 0..b.num_rows() {
            out.push(Row {
                hour: hours[k],
                text: text.iter().map(|c| c[k].clone()).collect(),
                tail: tail.iter().map(|c| c[k]).collect(),
            });
        }
    }
    Ok(out)
}

/// The month's usage (AZs summed), endpoint hours and connectivity hours.
pub async fn load_month(
    cat: &Catalog,
    month: Month,
) -> Result<(Vec<Usage>, Vec<EndpointHour>, Vec<ConnectivityHour>), RollupError> {
    let m = month.label();
    let usage = month_rows(
        cat,
        "usage_hourly",
        &format!(
            "SELECT CAST(u.usage_hour AS BIGINT) / 1000000, u.account_id, c.owner_account_id, u.cluster_name, u.region, u.auth_scheme, u.endpoint_id, SUM(u.bytes) \
             FROM usage_hourly u JOIN clusters c ON c.cluster_arn = u.cluster_arn WHERE u.month = '{m}' GROUP BY 1, 2, 3, 4, 5, 6, 7"
        ),
        6,
    )
    .await?
    .into_iter()
    .map(|r| {
        let [acct, owner, cl, reg, auth, ep]: [String; 6] =
            r.text.try_into().expect("six text columns");
        // Exact decimal money holds 96-bit integers; more bytes than that in one hour is
        // beyond any real estate, so it is refused rather than priced wrong.
        let bytes = u128::try_from(r.tail[0].max(0)).unwrap_or(0);
        if bytes >= 1 << 96 {
            return Err(RollupError::Arrow(format!(
                "usage of {bytes} bytes in hour {} for endpoint {ep} is too large to price exactly; see the quarantine and flows of that hour",
                r.hour
            )));
        }
        Ok(Usage {
            hour: r.hour,
            client_account: acct,
            cluster_owner: owner,
            cluster: cl,
            region: reg,
            auth,
            endpoint_id: ep,
            bytes,
        })
    })
    .collect::<Result<_, _>>()?;
    let eh = month_rows(
        cat,
        "endpoint_hours",
        &format!("SELECT CAST(usage_hour AS BIGINT) / 1000000, account_id, cluster_name, region, auth_scheme, endpoint_id FROM endpoint_hours WHERE month = '{m}'"),
        5,
    )
    .await?
    .into_iter()
    .map(|r| {
        let [acct, cl, reg, auth, ep]: [String; 5] = r.text.try_into().expect("five text columns");
        EndpointHour {
            hour: r.hour,
            client_account: acct,
            cluster: cl,
            region: reg,
            auth,
            endpoint_id: ep,
        }
    })
    .collect();
    let ch = month_rows(
        cat,
        "connectivity_hours",
        &format!("SELECT CAST(usage_hour AS BIGINT) / 1000000, account_id, cluster_name, region, auth_scheme FROM connectivity_hours WHERE month = '{m}'"),
        4,
    )
    .await?
    .into_iter()
    .map(|r| {
        let [acct, cl, reg, auth]: [String; 4] = r.text.try_into().expect("four text columns");
        ConnectivityHour {
            hour: r.hour,
            owner_account: acct,
            cluster: cl,
            region: reg,
            auth,
        }
    })
    .collect();
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
