//! The finance CSV: one row per (cost center, account, meter, cluster, auth scheme, endpoint),
//! amounts in cents that sum exactly to the invoice total, cells neutralized against
//! spreadsheet formula injection and quoted (`linkmeter_warehouse::csv_out`).

use std::collections::BTreeMap;

use linkmeter_aggregate::invoice::Invoice;
use linkmeter_warehouse::csv_out::CsvOut;
use rust_decimal::{Decimal, RoundingStrategy};

/// The header row, in DESIGN §6 order.
/// After DESIGN's columns: the line's status against the AWS bill, whether that bill was still
/// provisional, and for an adjustment the closed month it corrects.
pub const HEADER: &str = "month,cost_center,account_id,account_name,meter,cluster,auth_scheme,endpoint_id,quantity,unit,unit_price,amount,currency,reconciled,provisional,adjusts_month";

fn num(d: Decimal, dp: u32) -> String {
    let r = d
        .round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
        .normalize();
    let mut s = r.to_string();
    if dp == 2 {
        let mut r2 = r;
        r2.rescale(2);
        s = r2.to_string();
    }
    s
}

/// Writes the CSV for one view. `accounts` maps account id → (name, cost center);
/// `provisional`: the month's AWS bill has no invoice id yet.
pub fn finance_csv(
    inv: &Invoice,
    month: &str,
    currency: &str,
    accounts: &BTreeMap<String, (String, String)>,
    provisional: bool,
) -> String {
    let mut rows: Vec<(&str, &str, &linkmeter_aggregate::invoice::Line)> = inv
        .lines
        .iter()
        .map(|l| {
            let (name, cc) = accounts
                .get(&l.account)
                .map(|(n, c)| (n.as_str(), c.as_str()))
                .unwrap_or(("", ""));
            (cc, name, l)
        })
        .collect();
    rows.sort_by(|a, b| {
        (
            a.0,
            &a.2.account,
            a.2.meter,
            &a.2.cluster,
            &a.2.auth,
            &a.2.endpoint_id,
            &a.2.adjusts,
        )
            .cmp(&(
                b.0,
                &b.2.account,
                b.2.meter,
                &b.2.cluster,
                &b.2.auth,
                &b.2.endpoint_id,
                &b.2.adjusts,
            ))
    });
    let mut out = CsvOut::new();
    out.header(&HEADER.split(',').collect::<Vec<_>>());
    for (cc, name, l) in rows {
        out.text(month)
            .text(cc)
            .text(&l.account)
            .text(name)
            .value(l.meter.as_str())
            .text(&l.cluster)
            .text(&l.auth)
            .text(&l.endpoint_id)
            .value(&num(l.quantity, 9))
            .value(l.meter.unit())
            .value(&num(l.unit_price(), 8))
            .value(&num(l.amount, 2))
            .text(currency)
            .value(l.reconciled.unwrap_or(""))
            .value(if provisional { "true" } else { "false" })
            .value(l.adjusts.as_deref().unwrap_or(""))
            .end_row();
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkmeter_aggregate::invoice::Line;
    use linkmeter_aggregate::price_book::Meter;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn rows_sum_to_the_total_and_names_are_safe() {
        let line = |acct: &str, amount: &str| Line {
            account: acct.into(),
            meter: Meter::EndpointGb,
            cluster: "c1".into(),
            auth: "TLS".into(),
            endpoint_id: "vpce-1".into(),
            quantity: d("1.5"),
            exact: d("0.015"),
            scaled: d("0.015"),
            amount: d(amount),
            allocation_basis: "owner",
            reconciled: None,
            adjusts: None,
        };
        let inv = Invoice {
            lines: vec![line("1", "0.02"), line("2", "1.00")],
            scaled_total: d("0"),
            exact_total: d("1.015"),
            total: d("1.02"),
        };
        let mut accounts = BTreeMap::new();
        accounts.insert(
            "1".to_string(),
            ("=cmd|' /C calc'!A0".to_string(), "CC-1".to_string()),
        );
        let csv = finance_csv(&inv, "2026-10", "USD", &accounts, true);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], HEADER);
        // Sorted by cost center: the account without one ("") comes first.
        assert!(lines[1].starts_with("2026-10,,2,,"), "{}", lines[1]);
        // Neutralized and quoted, so a sniffer cannot take `'` for the quote character.
        assert!(
            lines[2].contains(",\"'=cmd|' /C calc'!A0\","),
            "{}",
            lines[2]
        );
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert!(rows.iter().all(|r| r.len() == 16));
        assert_eq!(&rows[1][3], "'=cmd|' /C calc'!A0");
        let sum: Decimal = rows.iter().map(|r| d(&r[11])).sum();
        assert_eq!(sum, inv.total);
        assert!(lines[1].ends_with(",1.00,USD,,true,"), "{}", lines[1]);
        assert!(lines[2].contains(",1.5,GB,0.01,0.02,"), "{}", lines[2]);
    }
}
