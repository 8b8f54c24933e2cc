//! The `closed_months` table: a month, once closed, is frozen. One row per closed month records
//! who closed it and when, the version of every table its invoice was computed from (so it can
//! be recomputed from that snapshot with Delta time travel), a checksum of each report file, and
//! both views' totals. Later changes never rewrite a closed month; the month close of the
//! first open month after it carries them as adjustment lines.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;

use crate::registry::CLOSED_MONTHS;
use crate::store::Warehouse;
use crate::Error;

/// One closed month.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClosedMonth {
    /// `YYYY-MM`.
    pub month: String,
    /// When, µs since the epoch.
    pub closed_at_micros: i64,
    /// Who (the `--by` given, else the user running it).
    pub closed_by: String,
    /// Table name → Delta version the close read or wrote, as JSON.
    pub table_versions: String,
    /// Report file → xxh3-64 of its bytes, as JSON.
    pub checksums: String,
    /// The `aws` and `chargeback` totals, as decimal text.
    pub aws_total: String,
    pub chargeback_total: String,
}

/// Records a closed month (one commit).
pub async fn append(wh: &Warehouse, c: &ClosedMonth) -> Result<(), Error> {
    let s = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
    let cols = vec![
        s(&c.month),
        Arc::new(TimestampMicrosecondArray::from(vec![c.closed_at_micros]).with_timezone("UTC"))
            as ArrayRef,
        s(&c.closed_by),
        s(&c.table_versions),
        s(&c.checksums),
        s(&c.aws_total),
        s(&c.chargeback_total),
    ];
    let b = RecordBatch::try_new(CLOSED_MONTHS.schema(), cols).map_err(|e| Error::Schema {
        table: "closed_months".into(),
        message: e.to_string(),
    })?;
    let t = wh.table(&CLOSED_MONTHS).await?;
    t.lock()
        .await
        .append(&format!("closed-{}", c.month), &[b])
        .await?;
    Ok(())
}

/// Every closed month by month (the first record of a month wins).
pub async fn read(wh: &Warehouse) -> Result<BTreeMap<String, ClosedMonth>, Error> {
    let mut out = BTreeMap::new();
    let Some(t) = wh.read_table(&CLOSED_MONTHS).await? else {
        return Ok(out);
    };
    for b in t.read_all().await? {
        let col = |i: usize| -> Result<Vec<String>, Error> {
            let a = cast(b.column(i), &DataType::Utf8).map_err(|e| Error::Schema {
                table: "closed_months".into(),
                message: e.to_string(),
            })?;
            let a = a.as_string::<i32>();
            Ok((0..a.len())
                .map(|k| {
                    if a.is_null(k) {
                        String::new()
                    } else {
                        a.value(k).to_string()
                    }
                })
                .collect())
        };
        let at = b
            .column(1)
            .as_primitive_opt::<arrow::datatypes::TimestampMicrosecondType>()
            .map(|a| a.values().to_vec())
            .unwrap_or_default();
        let cols: Vec<Vec<String>> = [0, 2, 3, 4, 5, 6]
            .iter()
            .map(|i| col(*i))
            .collect::<Result<_, _>>()?;
        for (k, month) in cols[0].iter().enumerate() {
            let c = ClosedMonth {
                month: month.clone(),
                closed_at_micros: at.get(k).copied().unwrap_or_default(),
                closed_by: cols[1][k].clone(),
                table_versions: cols[2][k].clone(),
                checksums: cols[3][k].clone(),
                aws_total: cols[4][k].clone(),
                chargeback_total: cols[5][k].clone(),
            };
            let keep = out
                .get(&c.month)
                .is_none_or(|o: &ClosedMonth| o.closed_at_micros > c.closed_at_micros);
            if keep {
                out.insert(c.month.clone(), c);
            }
        }
    }
    Ok(out)
}
