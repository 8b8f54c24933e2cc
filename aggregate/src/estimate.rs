//! `estimate`: the layered cost of a planned estate from the same price book as the invoices,
//! each meter on its own line with its formula, so a platform lead can see which one dominates.
//!
//! The estate: `clusters`, each with `schemes` auth schemes turned on for multi-VPC
//! connectivity; `connections` managed VPC connections (one endpoint each, by default every
//! client VPC to every cluster), each endpoint in `azs` Availability Zones; `gb` GB a month
//! through private connectivity (each GB crosses an endpoint once, so it counts for both GB
//! meters). Amounts are exact decimals; each line is rounded to cents (half away from zero)
//! and the total is the sum of the rounded lines.

use rust_decimal::Decimal;

use crate::money::{cents, tiered_cost};
use crate::price_book::{Meter, PriceBook, PriceError};

/// The planned estate.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Region of the clusters and endpoints.
    pub region: String,
    /// Instant whose rates apply (Unix seconds).
    pub at: i64,
    /// Hours in the month (AWS's pricing pages use 730).
    pub hours: u32,
    /// MSK clusters with multi-VPC connectivity.
    pub clusters: u32,
    /// Auth schemes turned on per cluster (each is billed hourly on its own).
    pub schemes: u32,
    /// Managed VPC connections (= interface endpoints).
    pub connections: u32,
    /// Availability Zones per endpoint.
    pub azs: u32,
    /// GB per month through private connectivity.
    pub gb: Decimal,
}

/// One layer of the worksheet.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The meter.
    pub meter: Meter,
    /// Who pays it.
    pub payer: &'static str,
    /// Quantity in the meter's unit.
    pub quantity: Decimal,
    /// How the quantity and the amount come about, in words and numbers.
    pub formula: String,
    /// The amount, rounded to cents.
    pub amount: Decimal,
}

fn n(d: Decimal) -> String {
    let s = d.normalize().to_string();
    let (int, frac) = s
        .split_once('.')
        .map_or((s.as_str(), None), |(a, b)| (a, Some(b)));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 && c != '-' {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// The worksheet: one line per meter, in the order AWS bills them.
pub fn estimate(book: &PriceBook, p: &Plan) -> Result<Vec<Line>, PriceError> {
    let flat = |m: Meter| -> Result<Decimal, PriceError> {
        Ok(book.rate(m, &p.region, p.at)?.tiers[0].price)
    };
    let hours = Decimal::from(p.hours);
    let cur = &book.currency;
    let mut lines = Vec::new();

    let q = Decimal::from(p.clusters) * Decimal::from(p.schemes) * hours;
    let price = flat(Meter::MskConnectivityHours)?;
    lines.push(Line {
        meter: Meter::MskConnectivityHours,
        payer: "cluster owner",
        quantity: q,
        formula: format!(
            "{} clusters × {} auth schemes × {} h = {} h × {price} {cur}/h",
            p.clusters,
            p.schemes,
            p.hours,
            n(q)
        ),
        amount: cents(q * price),
    });

    let price = flat(Meter::MskConnectivityGb)?;
    lines.push(Line {
        meter: Meter::MskConnectivityGb,
        payer: "cluster owner",
        quantity: p.gb,
        formula: format!("{} GB × {price} {cur}/GB", n(p.gb)),
        amount: cents(p.gb * price),
    });

    let q = Decimal::from(p.connections) * Decimal::from(p.azs) * hours;
    let price = flat(Meter::EndpointAzHours)?;
    lines.push(Line {
        meter: Meter::EndpointAzHours,
        payer: "client accounts",
        quantity: q,
        formula: format!(
            "{} endpoints × {} AZs × {} h = {} h × {price} {cur}/h",
            p.connections,
            p.azs,
            p.hours,
            n(q)
        ),
        amount: cents(q * price),
    });

    let rate = book.rate(Meter::EndpointGb, &p.region, p.at)?;
    let mut parts = Vec::new();
    let mut lower = Decimal::ZERO;
    for t in &rate.tiers {
        if p.gb <= lower {
            break;
        }
        let top = t.up_to.map_or(p.gb, |u| p.gb.min(u));
        parts.push(format!("{} GB × {}", n(top - lower), t.price));
        match t.up_to {
            Some(u) => lower = u,
            None => break,
        }
    }
    lines.push(Line {
        meter: Meter::EndpointGb,
        payer: "client accounts",
        quantity: p.gb,
        formula: if parts.is_empty() {
            "0 GB".into()
        } else {
            let scope = match rate.scope {
                crate::price_book::TierScope::Account => "per account",
                crate::price_book::TierScope::Organization => "over the organization",
            };
            format!("{} {cur}/GB (tiers counted {scope})", parts.join(" + "))
        },
        amount: cents(tiered_cost(p.gb, &rate.tiers)),
    });
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> PriceBook {
        PriceBook::from_toml(include_str!("../prices.example.toml"), "example").unwrap()
    }

    fn plan(gb: i64) -> Plan {
        Plan {
            region: "us-east-1".into(),
            at: 1_790_812_800,
            hours: 730,
            clusters: 2,
            schemes: 2,
            connections: 20,
            azs: 3,
            gb: Decimal::from(gb),
        }
    }

    /// Figures worked out by hand from prices.example.toml.
    #[test]
    fn hand_computed_layers() {
        let l = estimate(&book(), &plan(5000)).unwrap();
        let amounts: Vec<String> = l.iter().map(|x| x.amount.to_string()).collect();
        // 2 × 2 × 730 = 2,920 h × 0.0225; 5,000 × 0.006; 20 × 3 × 730 = 43,800 h × 0.01;
        // 5,000 GB in the first tier × 0.01.
        assert_eq!(amounts, ["65.70", "30.00", "438.00", "50.00"]);
        // Past the first PrivateLink tier: 1,048,576 × 0.01 + 951,424 × 0.006 = 16,194.304.
        let l = estimate(&book(), &plan(2_000_000)).unwrap();
        assert_eq!(l[3].amount.to_string(), "16194.30");
        assert!(
            l[3].formula
                .contains("1,048,576 GB × 0.01 + 951,424 GB × 0.006"),
            "{}",
            l[3].formula
        );
        assert_eq!(l[1].amount.to_string(), "12000.00");
    }

    #[test]
    fn a_region_without_rates_says_so() {
        let mut p = plan(1);
        p.region = "eu-west-1".into();
        assert!(estimate(&book(), &p)
            .unwrap_err()
            .to_string()
            .contains("eu-west-1"));
    }
}
