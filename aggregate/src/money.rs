//! Exact money: tiered cost, rounding to cents, and splitting an amount over lines so the
//! lines always sum exactly to it.
//!
//! Rounding rule (stated once, used everywhere): quantities and prices are kept at full
//! decimal precision; an amount is rounded to cents once, half away from zero; when it is
//! spread over lines, each line gets its proportional share rounded down to the cent and the
//! cents left over go one each to the lines with the largest remainders (ties: earlier line),
//! so lines sum exactly to the rounded amount.

use rust_decimal::{Decimal, RoundingStrategy};

/// One price tier: quantities up to `up_to` (cumulative; `None` = no upper bound) at `price`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    /// Upper bound of the tier in the meter's unit, cumulative from zero.
    pub up_to: Option<Decimal>,
    /// Price per unit inside the tier.
    pub price: Decimal,
}

/// Rounds to cents, half away from zero.
pub fn cents(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// Cost of `quantity` units under `tiers` (tiers in increasing order, last unbounded).
pub fn tiered_cost(quantity: Decimal, tiers: &[Tier]) -> Decimal {
    let mut cost = Decimal::ZERO;
    let mut lower = Decimal::ZERO;
    for t in tiers {
        if quantity <= lower {
            break;
        }
        let top = match t.up_to {
            Some(u) => quantity.min(u),
            None => quantity,
        };
        cost += (top - lower) * t.price;
        match t.up_to {
            Some(u) => lower = u,
            None => break,
        }
    }
    cost
}

/// Splits `total` (a cent amount) over lines in proportion to `weights` by the rule in the
/// module doc. Returns `None` when the weights sum to zero (the caller picks a fallback).
pub fn allocate(total: Decimal, weights: &[Decimal]) -> Option<Vec<Decimal>> {
    let sum: Decimal = weights.iter().copied().sum();
    if sum.is_zero() || weights.is_empty() {
        return None;
    }
    let total_cents = (total * Decimal::ONE_HUNDRED).trunc();
    let mut shares: Vec<Decimal> = Vec::with_capacity(weights.len());
    let mut rems: Vec<(Decimal, usize)> = Vec::with_capacity(weights.len());
    let mut given = Decimal::ZERO;
    for (i, w) in weights.iter().enumerate() {
        let exact = total_cents * *w / sum;
        let floor = exact.floor();
        given += floor;
        shares.push(floor);
        rems.push((exact - floor, i));
    }
    let mut left = total_cents - given;
    rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in rems {
        if left <= Decimal::ZERO {
            break;
        }
        shares[i] += Decimal::ONE;
        left -= Decimal::ONE;
    }
    Some(
        shares
            .into_iter()
            .map(|c| c / Decimal::ONE_HUNDRED)
            .collect(),
    )
}

/// Splits `total` evenly over `n` lines by the same rule.
pub fn allocate_even(total: Decimal, n: usize) -> Vec<Decimal> {
    allocate(total, &vec![Decimal::ONE; n]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn privatelink() -> Vec<Tier> {
        // aws-facts §2.1: first 1 PB $0.01/GB, next 4 PB $0.006, over 5 PB $0.004 (GB units).
        vec![
            Tier {
                up_to: Some(d("1048576")),
                price: d("0.01"),
            },
            Tier {
                up_to: Some(d("5242880")),
                price: d("0.006"),
            },
            Tier {
                up_to: None,
                price: d("0.004"),
            },
        ]
    }

    #[test]
    fn tier_crossing_worked_by_hand() {
        // 1,048,576 GB at 0.01 = 10,485.76; 1,000 GB more at 0.006 = 6.00.
        assert_eq!(tiered_cost(d("1049576"), &privatelink()), d("10491.76"));
        assert_eq!(tiered_cost(d("0"), &privatelink()), d("0"));
        assert_eq!(tiered_cost(d("12.5"), &privatelink()), d("0.125"));
        // Into the third tier: 10,485.76 + 4,194,304 × 0.006 (25,165.824) + 1 × 0.004.
        assert_eq!(tiered_cost(d("5242881"), &privatelink()), d("35651.588"));
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(cents(d("0.125")), d("0.13"));
        assert_eq!(cents(d("0.124999")), d("0.12"));
        assert_eq!(cents(d("-0.125")), d("-0.13"));
    }

    #[test]
    fn allocation_worked_by_hand() {
        // 1.00 over three equal lines: 0.34 + 0.33 + 0.33 (the first wins the tie).
        assert_eq!(
            allocate(d("1.00"), &[d("1"), d("1"), d("1")]).unwrap(),
            vec![d("0.34"), d("0.33"), d("0.33")]
        );
        // 10.00 by 1:3 → 2.50 and 7.50 exactly.
        assert_eq!(
            allocate(d("10.00"), &[d("1"), d("3")]).unwrap(),
            vec![d("2.50"), d("7.50")]
        );
        assert_eq!(allocate(d("5"), &[d("0"), d("0")]), None);
    }

    fn amount() -> impl Strategy<Value = Decimal> {
        (0i64..10_000_000_000).prop_map(|c| Decimal::new(c, 2))
    }

    fn weight() -> impl Strategy<Value = Decimal> {
        (0u64..1_000_000_000_000u64, 0u32..9)
            .prop_map(|(m, s)| Decimal::from_i128_with_scale(m as i128, s))
    }

    proptest! {
        #[test]
        fn allocation_sums_exactly_and_is_fair(total in amount(), weights in proptest::collection::vec(weight(), 1..40)) {
            let sum: Decimal = weights.iter().copied().sum();
            match allocate(total, &weights) {
                None => prop_assert!(sum.is_zero()),
                Some(shares) => {
                    prop_assert_eq!(shares.iter().copied().sum::<Decimal>(), total);
                    for (s, w) in shares.iter().zip(&weights) {
                        let exact = total * *w / sum;
                        prop_assert!((*s - exact).abs() < d("0.01"), "share {} vs exact {}", s, exact);
                        prop_assert!(*s >= Decimal::ZERO);
                        prop_assert_eq!(s.scale() <= 2 || s.normalize().scale() <= 2, true);
                    }
                }
            }
        }

        #[test]
        fn tiered_cost_matches_a_tier_walk_and_is_monotone(q in 0u64..20_000_000, extra in 0u64..1_000_000) {
            let tiers = privatelink();
            let q1 = Decimal::from(q);
            // Independent formulation: sum over tiers of the overlap [lower, upper) ∩ [0, q).
            let mut want = Decimal::ZERO;
            let mut lower = Decimal::ZERO;
            for t in &tiers {
                let upper = t.up_to.unwrap_or(Decimal::MAX);
                let overlap = (q1.min(upper) - lower).max(Decimal::ZERO);
                want += overlap * t.price;
                lower = upper;
                if t.up_to.is_none() { break; }
            }
            prop_assert_eq!(tiered_cost(q1, &tiers), want);
            prop_assert!(tiered_cost(q1 + Decimal::from(extra), &tiers) >= tiered_cost(q1, &tiers));
        }

        #[test]
        fn even_split_differs_by_at_most_a_cent(total in amount(), n in 1usize..50) {
            let v = allocate_even(total, n);
            prop_assert_eq!(v.iter().copied().sum::<Decimal>(), total);
            let (lo, hi) = (v.iter().min().unwrap(), v.iter().max().unwrap());
            prop_assert!(*hi - *lo <= d("0.01"));
        }
    }
}
