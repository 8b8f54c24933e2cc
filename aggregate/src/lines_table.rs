//! The `invoice_lines` table: one row per invoice line, money as Decimal128 end to end.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Decimal128Array, RecordBatch, StringArray};
use linkmeter_warehouse::registry::{AMOUNT_SCALE, INVOICE_LINES, PRICE_SCALE, QTY_SCALE};
use linkmeter_warehouse::{Month, Warehouse};
use rust_decimal::Decimal;

use crate::invoice::Invoice;

/// `d` as a Decimal128 mantissa at `scale` (rounded half away from zero).
pub fn to_i128(d: Decimal, scale: i8) -> i128 {
    let mut r = d.round_dp_with_strategy(
        scale as u32,
        rust_decimal::RoundingStrategy::MidpointAwayFromZero,
    );
    r.rescale(scale as u32);
    r.mantissa()
}

fn dec(v: Vec<i128>, scale: i8) -> ArrayRef {
    Arc::new(
        Decimal128Array::from(v)
            .with_precision_and_scale(38, scale)
            .expect("precision 38 holds the scale"),
    )
}

/// Builds the batch for one view of one month (written under `month=…/invoice_view=…/`).
/// `provisional`: the month's AWS bill has no invoice id yet (or there is none).
pub fn batch(
    inv: &Invoice,
    currency: &str,
    accounts: &BTreeMap<String, (String, String)>,
    provisional: bool,
) -> RecordBatch {
    let n = inv.lines.len();
    let rep = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
    let col = |f: &dyn Fn(&crate::invoice::Line) -> String| {
        Arc::new(StringArray::from(
            inv.lines.iter().map(f).collect::<Vec<_>>(),
        )) as ArrayRef
    };
    let acct = |id: &str| accounts.get(id).cloned().unwrap_or_default();
    let cols = vec![
        col(&|l| acct(&l.account).1),
        col(&|l| l.account.clone()),
        col(&|l| acct(&l.account).0),
        col(&|l| l.meter.as_str().to_string()),
        col(&|l| l.cluster.clone()),
        col(&|l| l.auth.clone()),
        col(&|l| l.endpoint_id.clone()),
        dec(
            inv.lines
                .iter()
                .map(|l| to_i128(l.quantity, QTY_SCALE))
                .collect(),
            QTY_SCALE,
        ),
        col(&|l| l.meter.unit().to_string()),
        dec(
            inv.lines
                .iter()
                .map(|l| to_i128(l.unit_price(), PRICE_SCALE))
                .collect(),
            PRICE_SCALE,
        ),
        dec(
            inv.lines
                .iter()
                .map(|l| to_i128(l.exact, PRICE_SCALE))
                .collect(),
            PRICE_SCALE,
        ),
        dec(
            inv.lines
                .iter()
                .map(|l| to_i128(l.amount, AMOUNT_SCALE))
                .collect(),
            AMOUNT_SCALE,
        ),
        rep(currency),
        col(&|l| l.allocation_basis.to_string()),
        Arc::new(
            inv.lines
                .iter()
                .map(|l| l.reconciled)
                .collect::<StringArray>(),
        ),
        Arc::new(BooleanArray::from(vec![provisional; n])),
        Arc::new(
            inv.lines
                .iter()
                .map(|l| l.adjusts.as_deref())
                .collect::<StringArray>(),
        ),
    ];
    RecordBatch::try_new(INVOICE_LINES.schema(), cols)
        .expect("columns match the invoice_lines schema")
}

/// Replaces one month's lines of one view (`aws` or `chargeback`) in one commit.
pub async fn write(
    wh: &Warehouse,
    month: Month,
    view: &str,
    batch: RecordBatch,
) -> Result<(), linkmeter_warehouse::Error> {
    let t = wh.table(&INVOICE_LINES).await?;
    t.lock()
        .await
        .replace(
            &[("month", month.label()), ("invoice_view", view.to_string())],
            "invoice_lines",
            &[batch],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn decimals_rescale_exactly() {
        assert_eq!(to_i128(Decimal::from_str("1.77").unwrap(), 2), 177);
        assert_eq!(to_i128(Decimal::from_str("0.125").unwrap(), 2), 13);
        assert_eq!(to_i128(Decimal::from_str("3").unwrap(), 9), 3_000_000_000);
    }
}
