//! Adjustments: what late data or an inventory change would have changed in a closed month,
//! carried into the first open month after it as lines of their own.
//!
//! A closed month's `invoice_lines` and CSVs are never rewritten. When the month close runs for
//! an open month F, every closed month C before it whose following months up to F are all
//! closed (so F is C's first open month) is priced again from the warehouse as it is now; per
//! line (account, meter, cluster, auth scheme, endpoint) and view, the difference from what C was
//! closed with, less what adjustments in closed months since have already carried, becomes an
//! adjustment line of F (`allocation_basis = adjustment`, `adjusts_month = C`). Both sides are
//! cents that sum to their totals, so the adjustment lines sum to exactly the change of C's
//! total.

use std::collections::{BTreeMap, BTreeSet};

use linkmeter_sql::Catalog;
use linkmeter_warehouse::Month;
use rust_decimal::Decimal;

use crate::invoice::{Invoice, Line};
use crate::load::text_rows;
use crate::price_book::Meter;
use crate::rollup::RollupError;
use linkmeter_warehouse::registry::{PRICE_SCALE, QTY_SCALE};

/// A line's identity across months: account, meter, cluster, auth scheme, endpoint.
type Key = (String, String, String, String, String);

/// Quantity, exact amount and cents.
type Figures = (Decimal, Decimal, Decimal);

/// The closed months whose first open month is `month`, oldest first.
pub fn adjusted_by(month: Month, closed: &BTreeSet<String>) -> Vec<Month> {
    let mut out = Vec::new();
    let mut m = month.prev();
    while closed.contains(&m.label()) {
        out.push(m);
        m = m.prev();
    }
    out.reverse();
    out
}

fn meter(name: &str) -> Option<Meter> {
    [
        Meter::MskConnectivityHours,
        Meter::MskConnectivityGb,
        Meter::EndpointAzHours,
        Meter::EndpointGb,
    ]
    .into_iter()
    .find(|m| m.as_str() == name)
}

fn key_of(l: &Line) -> Key {
    (
        l.account.clone(),
        l.meter.as_str().to_string(),
        l.cluster.clone(),
        l.auth.clone(),
        l.endpoint_id.clone(),
    )
}

/// Sums of `invoice_lines` rows per view and key matching `filter` (SQL over the table).
async fn frozen(
    cat: &Catalog,
    filter: &str,
) -> Result<BTreeMap<(String, Key), Figures>, RollupError> {
    let mut out: BTreeMap<(String, Key), Figures> = BTreeMap::new();
    if !cat.tables.contains(&"invoice_lines") {
        return Ok(out);
    }
    let sql = format!(
        "SELECT invoice_view, account_id, meter, \"cluster\", auth_scheme, endpoint_id, \
         CAST(SUM(quantity) AS VARCHAR), CAST(SUM(exact_amount) AS VARCHAR), CAST(SUM(amount) AS VARCHAR) \
         FROM invoice_lines WHERE {filter} GROUP BY 1, 2, 3, 4, 5, 6"
    );
    for r in text_rows(cat, &sql).await? {
        let d = |i: usize| r[i].parse::<Decimal>().unwrap_or_default();
        let key = (
            r[1].clone(),
            r[2].clone(),
            r[3].clone(),
            r[4].clone(),
            r[5].clone(),
        );
        let e = out.entry((r[0].clone(), key)).or_default();
        e.0 += d(6);
        e.1 += d(7);
        e.2 += d(8);
    }
    Ok(out)
}

/// Appends to `inv` (view `view` of the open month) the adjustment lines of closed month
/// `closed`, whose invoice priced from the warehouse as it is now is `now`. `closed_after` are
/// the closed months after it (their adjustments of it were already carried).
pub async fn add_adjustments(
    cat: &Catalog,
    inv: &mut Invoice,
    view: &str,
    closed: Month,
    now: &Invoice,
    closed_after: &[String],
    bytes_per_gb: u64,
) -> Result<Decimal, RollupError> {
    let c = closed.label();
    let mut was = frozen(
        cat,
        &format!("month = '{c}' AND invoice_view = '{view}' AND adjusts_month IS NULL"),
    )
    .await?;
    if !closed_after.is_empty() {
        let months: Vec<String> = closed_after.iter().map(|m| format!("'{m}'")).collect();
        let carried = frozen(
            cat,
            &format!(
                "adjusts_month = '{c}' AND invoice_view = '{view}' AND month IN ({})",
                months.join(", ")
            ),
        )
        .await?;
        for (k, f) in carried {
            let e = was.entry(k).or_default();
            e.0 += f.0;
            e.1 += f.1;
            e.2 += f.2;
        }
    }
    let mut is: BTreeMap<Key, Figures> = BTreeMap::new();
    // As `invoice_lines` stores them (quantity to 9 places, exact amount to 12), so that a
    // month nothing changed in differs by nothing.
    let stored = |d: Decimal, dp: u32| {
        d.round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    };
    for l in now.lines.iter().filter(|l| l.adjusts.is_none()) {
        let e = is.entry(key_of(l)).or_default();
        e.0 += stored(l.quantity, QTY_SCALE as u32);
        e.1 += stored(l.exact, PRICE_SCALE as u32);
        e.2 += l.amount;
    }
    let keys: BTreeSet<Key> = is
        .keys()
        .cloned()
        .chain(
            was.keys()
                .filter(|(v, _)| v == view)
                .map(|(_, k)| k.clone()),
        )
        .collect();
    let mut change = Decimal::ZERO;
    for k in keys {
        let n = is.get(&k).copied().unwrap_or_default();
        let o = was
            .get(&(view.to_string(), k.clone()))
            .copied()
            .unwrap_or_default();
        let (dq, de, da) = (n.0 - o.0, n.1 - o.1, n.2 - o.2);
        if dq.is_zero() && da.is_zero() && de.is_zero() {
            continue;
        }
        let Some(m) = meter(&k.1) else { continue };
        change += da;
        inv.scaled_total += de * Decimal::from(bytes_per_gb);
        inv.exact_total += de;
        inv.total += da;
        inv.lines.push(Line {
            account: k.0,
            meter: m,
            cluster: k.2,
            auth: k.3,
            endpoint_id: k.4,
            quantity: dq,
            exact: de,
            scaled: de * Decimal::from(bytes_per_gb),
            amount: da,
            allocation_basis: "adjustment",
            reconciled: None,
            adjusts: Some(c.clone()),
        });
    }
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjustments_go_to_the_first_open_month() {
        let m = |s: &str| Month::parse(s).unwrap();
        let closed: BTreeSet<String> = ["2026-08", "2026-09", "2026-10"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            adjusted_by(m("2026-11"), &closed),
            vec![m("2026-08"), m("2026-09"), m("2026-10")]
        );
        // December is not the first open month after October: November is.
        assert!(adjusted_by(m("2026-12"), &closed).is_empty());
        let gap: BTreeSet<String> = ["2026-08", "2026-10"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(adjusted_by(m("2026-11"), &gap), vec![m("2026-10")]);
        assert_eq!(adjusted_by(m("2026-09"), &gap), vec![m("2026-08")]);
    }
}
