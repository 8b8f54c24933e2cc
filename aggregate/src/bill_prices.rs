//! A price book from the bill: the unblended rates AWS actually charged in a billing period,
//! per meter and region, written as `prices.toml` so that nobody types a rate.
//!
//! A meter billed at one rate gets `price`; `endpoint_gb` billed at several rates gets `tiers`
//! with the breaks the bill shows (the cumulative GB, in usage order, at which each lower rate
//! first appears); any other meter billed at several rates takes the rate of most of its
//! quantity, and the others are reported (a rate on one endpoint that differs is a question for
//! AWS, not a price).

use std::collections::BTreeMap;
use std::fmt::Write;

use linkmeter_sql::Catalog;
use linkmeter_warehouse::Month;
use rust_decimal::Decimal;

use crate::load::text_rows;
use crate::price_book::PriceBook;
use crate::rollup::RollupError;

/// The region of a usage type's prefix (`USE1-VpcEndpoint-Hours` → `us-east-1`).
pub fn region_of(usage_type: &str) -> Option<&'static str> {
    // us-east-1's usage types often carry no prefix at all (`VpcEndpoint-Hours`).
    if usage_type.starts_with("VpcEndpoint") || usage_type.starts_with("Kafka") {
        return Some("us-east-1");
    }
    let code = usage_type.split('-').next()?;
    Some(match code {
        "USE1" => "us-east-1",
        "USE2" => "us-east-2",
        "USW1" => "us-west-1",
        "USW2" => "us-west-2",
        "CAN1" => "ca-central-1",
        "EU" => "eu-west-1",
        "EUW2" => "eu-west-2",
        "EUW3" => "eu-west-3",
        "EUC1" => "eu-central-1",
        "EUN1" => "eu-north-1",
        "APS1" => "ap-southeast-1",
        "APS2" => "ap-southeast-2",
        "APS3" => "ap-south-1",
        "APN1" => "ap-northeast-1",
        "APN2" => "ap-northeast-2",
        "SAE1" => "sa-east-1",
        _ => return None,
    })
}

/// What the bill says of one meter in one region.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Billed {
    /// (rate, quantity at it), in the order each rate first appears in usage time.
    pub rates: Vec<(Decimal, Decimal)>,
    /// For each rate after the first: the cumulative quantity before it first appears.
    pub breaks: Vec<Decimal>,
}

/// The result: the price book's text and what the reader should know.
#[derive(Debug, Clone, Default)]
pub struct FromBill {
    /// `prices.toml`.
    pub toml: String,
    /// Rates left out, usage types without a known region, and the like.
    pub notes: Vec<String>,
}

/// Reads the billed rates of `month` per (meter, region).
pub async fn billed_rates(
    cat: &Catalog,
    month: Month,
) -> Result<(BTreeMap<(String, String), Billed>, Vec<String>, String), RollupError> {
    let mut out: BTreeMap<(String, String), Billed> = BTreeMap::new();
    let mut notes = Vec::new();
    let mut currency = String::new();
    if !cat.tables.contains(&"bill_lines") {
        return Ok((out, notes, currency));
    }
    let sql = format!(
        "SELECT meter, usage_type, CAST(unblended_rate AS VARCHAR), CAST(usage_amount AS VARCHAR), COALESCE(currency, '') \
         FROM bill_lines WHERE billing_period = '{}' AND meter IS NOT NULL AND unblended_rate IS NOT NULL \
         AND COALESCE(line_item_type, 'Usage') = 'Usage' ORDER BY usage_start, bill_file, bill_row",
        month.label()
    );
    // Cumulative quantity per (meter, region), in usage order.
    let mut seen: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for r in text_rows(cat, &sql).await? {
        let meter = &r[0];
        let Some(region) = region_of(&r[1]) else {
            let n = format!(
                "usage type {} has no region code linkmeter knows; its lines are left out",
                r[1]
            );
            if !notes.contains(&n) {
                notes.push(n);
            }
            continue;
        };
        let rate: Decimal = r[2].parse().unwrap_or_default();
        let qty: Decimal = r[3].parse().unwrap_or_default();
        if currency.is_empty() {
            currency = r[4].clone();
        }
        let key = (meter.clone(), region.to_string());
        let before = seen.entry(key.clone()).or_default();
        let e = out.entry(key).or_default();
        match e.rates.iter_mut().find(|(x, _)| *x == rate.normalize()) {
            Some((_, q)) => *q += qty,
            None => {
                if !e.rates.is_empty() {
                    e.breaks.push(*before);
                }
                e.rates.push((rate.normalize(), qty));
            }
        }
        *before += qty;
    }
    Ok((out, notes, currency))
}

/// Writes the price book for `month` from what the bill charged.
pub fn price_book_text(
    month: Month,
    billed: &BTreeMap<(String, String), Billed>,
    currency: &str,
    bytes_per_gb: u64,
    mut notes: Vec<String>,
) -> FromBill {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Price book written by `linkmeter prices from-bill --month {month}` from the unblended\n\
         # rates AWS billed in that period (bill_lines). Rates apply from the period's start.\n"
    );
    let _ = writeln!(
        t,
        "currency = \"{}\"",
        if currency.is_empty() { "USD" } else { currency }
    );
    let _ = writeln!(t, "bytes_per_gb = {bytes_per_gb}");
    let from = month.start();
    for ((meter, region), b) in billed {
        let _ = write!(
            t,
            "\n[[rates]]\nmeter = \"{meter}\"\nregion = \"{region}\"\nfrom = \"{from}\"\n"
        );
        if b.rates.len() == 1 {
            let _ = writeln!(t, "price = \"{}\"", b.rates[0].0);
        } else if meter == "endpoint_gb" {
            let _ = writeln!(t, "scope = \"organization\"\ntiers = [");
            for (i, (rate, _)) in b.rates.iter().enumerate() {
                match b.breaks.get(i) {
                    Some(up_to) => {
                        let _ = writeln!(
                            t,
                            "  {{ up_to_gb = \"{}\", price = \"{rate}\" }},",
                            up_to.normalize()
                        );
                    }
                    None => {
                        let _ = writeln!(t, "  {{ price = \"{rate}\" }},");
                    }
                }
            }
            let _ = writeln!(t, "]");
            notes.push(format!(
                "endpoint_gb in {region}: tiers from the bill's rates in usage order; the breaks are where this month's usage crossed them (a tier the month did not reach is not shown)"
            ));
        } else {
            let (main, _) = b
                .rates
                .iter()
                .max_by(|a, b| a.1.cmp(&b.1))
                .copied()
                .unwrap_or_default();
            let _ = writeln!(t, "price = \"{main}\"");
            for (r, q) in b.rates.iter().filter(|(r, _)| *r != main) {
                notes.push(format!(
                    "{meter} in {region}: {} units were billed at {r}, not {main}; left out (ask AWS, or check with `linkmeter reconcile`)",
                    q.normalize()
                ));
            }
        }
    }
    FromBill { toml: t, notes }
}

/// Checks that the text is a price book linkmeter loads.
pub fn check(text: &str) -> Result<PriceBook, crate::price_book::PriceError> {
    PriceBook::from_toml(text, "prices from the bill")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn one_rate_is_a_price_several_are_tiers_or_the_main_rate() {
        let mut m = BTreeMap::new();
        m.insert(
            ("endpoint_az_hours".to_string(), "us-east-1".to_string()),
            Billed {
                rates: vec![(d("0.01"), d("2232")), (d("0.011"), d("744"))],
                breaks: vec![d("100")],
            },
        );
        m.insert(
            ("endpoint_gb".to_string(), "us-east-1".to_string()),
            Billed {
                rates: vec![(d("0.01"), d("1048576")), (d("0.006"), d("10"))],
                breaks: vec![d("1048576")],
            },
        );
        m.insert(
            (
                "msk_connectivity_hours".to_string(),
                "us-east-1".to_string(),
            ),
            Billed {
                rates: vec![(d("0.0225"), d("4464"))],
                breaks: vec![],
            },
        );
        let month = Month::parse("2026-10").unwrap();
        let out = price_book_text(month, &m, "USD", 1 << 30, vec![]);
        let book = check(&out.toml).expect("a loadable price book");
        assert_eq!(book.currency, "USD");
        assert!(out.toml.contains("price = \"0.0225\""), "{}", out.toml);
        assert!(
            out.toml.contains(
                "{ up_to_gb = \"1048576\", price = \"0.01\" },\n  { price = \"0.006\" },"
            ),
            "{}",
            out.toml
        );
        assert!(out.toml.contains("meter = \"endpoint_az_hours\"\nregion = \"us-east-1\"\nfrom = \"2026-10-01T00:00:00Z\"\nprice = \"0.01\""), "{}", out.toml);
        assert!(
            out.notes
                .iter()
                .any(|n| n.contains("744 units were billed at 0.011")),
            "{:?}",
            out.notes
        );
        assert_eq!(region_of("EU-VpcEndpoint-Bytes"), Some("eu-west-1"));
        assert_eq!(region_of("XYZ9-Foo"), None);
        assert_eq!(region_of("VpcEndpoint-Hours"), Some("us-east-1"));
    }
}
