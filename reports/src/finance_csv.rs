//! The finance CSV: one row per (cost center, account, meter, cluster, auth scheme, endpoint),
//! amounts in cents that sum exactly to the invoice total, cells neutralized against
//! spreadsheet formula injection.

use std::collections::BTreeMap;
use std::fmt::Write;

use linkmeter_aggregate::invoice::Invoice;
use rust_decimal::{Decimal, RoundingStrategy};

/// The header row, in DESIGN §6 order.
pub const HEADER: &str = "month,cost_center,account_id,account_name,meter,cluster,auth_scheme,endpoint_id,quantity,unit,unit_price,amount,currency";

/// Makes a text cell safe for spreadsheets and CSV: a leading `=`, `+`, `-`, `@`, tab or
/// carriage return gets a `'` in front (OWASP's advice), and a cell with a comma, quote or
/// line break is quoted.
pub fn cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

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

/// Writes the CSV for one view. `accounts` maps account id → (name, cost center).
pub fn finance_csv(
    inv: &Invoice,
    month: &str,
    currency: &str,
    accounts: &BTreeMap<String, (String, String)>,
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
        )
            .cmp(&(
                b.0,
                &b.2.account,
                b.2.meter,
                &b.2.cluster,
                &b.2.auth,
                &b.2.endpoint_id,
            ))
    });
    let mut out = String::from(HEADER);
    out.push('\n');
    for (cc, name, l) in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            cell(month),
            cell(cc),
            cell(&l.account),
            cell(name),
            l.meter.as_str(),
            cell(&l.cluster),
            cell(&l.auth),
            cell(&l.endpoint_id),
            num(l.quantity, 9),
            l.meter.unit(),
            num(l.unit_price(), 8),
            num(l.amount, 2),
            cell(currency),
        );
    }
    out
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
    fn formula_cells_are_neutralized_and_quoted() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("-2"), "'-2");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("\tx"), "'\tx");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("payments"), "payments");
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
        let csv = finance_csv(&inv, "2026-10", "USD", &accounts);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], HEADER);
        // Sorted by cost center: the account without one ("") comes first.
        assert!(lines[1].starts_with("2026-10,,2,,"), "{}", lines[1]);
        assert!(lines[2].contains("'=cmd"), "{}", lines[2]);
        let sum: Decimal = lines[1..]
            .iter()
            .map(|l| d(l.split(',').nth(11).unwrap()))
            .sum();
        assert_eq!(sum, inv.total);
        assert!(lines[1].ends_with(",1.00,USD"), "{}", lines[1]);
        assert!(lines[2].contains(",1.5,GB,0.01,0.02,"), "{}", lines[2]);
    }
}
