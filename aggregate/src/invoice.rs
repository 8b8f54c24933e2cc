//! Invoice lines from the monthly rollups, in two views of the same month: `aws` (what AWS
//! bills each account, per meter) and `chargeback` (owner-billed meters re-allocated to client
//! accounts by the price book's policies, each line with its allocation basis).
//!
//! Pricing rules:
//! - hour meters: each hour is priced at the rate in force that hour;
//! - `msk_connectivity_gb`: each hour's GB at that hour's rate;
//! - `endpoint_gb`: tiers apply to the month's running total per scope and region (the whole
//!   organization, or each account); walking the usage in hour order, each row costs the
//!   difference of the tiered cost before and after it, under that hour's tiers, so a tier
//!   crossing and a mid-month price change both land on the right bytes;
//! - then the month's exact total is rounded to cents once and spread over the lines by the
//!   largest-remainder rule (`money::allocate`), so lines sum exactly to the total.
//!
//! Exactness: bytes / 2^30 needs 30 decimal places, more than a 96-bit decimal holds, so
//! amounts are accumulated in *scaled units* (amount × bytes_per_gb: bytes × price for GB
//! meters, price × bytes_per_gb for hour meters), which stay exact; the division happens once
//! per line for display and once for the total before rounding to cents.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::money::{allocate, cents, tiered_cost, Tier};
use crate::price_book::{Meter, Policy, PriceBook, PriceError, TierScope};

/// Billable bytes of one hour × connection (a row of `usage_hourly`, AZs summed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub hour: i64,
    pub client_account: String,
    pub cluster_owner: String,
    pub cluster: String,
    pub region: String,
    pub auth: String,
    pub endpoint_id: String,
    pub bytes: u128,
}

/// One provisioned hour of an endpoint in one AZ (a row of `endpoint_hours`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointHour {
    pub hour: i64,
    pub client_account: String,
    pub cluster: String,
    pub region: String,
    pub auth: String,
    pub endpoint_id: String,
}

/// One hour of a cluster's connectivity for an auth scheme (a row of `connectivity_hours`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectivityHour {
    pub hour: i64,
    pub owner_account: String,
    pub cluster: String,
    pub region: String,
    pub auth: String,
}

/// One invoice line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub account: String,
    pub meter: Meter,
    pub cluster: String,
    pub auth: String,
    /// Empty for cluster-level meters.
    pub endpoint_id: String,
    /// Hours or GB, exact.
    pub quantity: Decimal,
    /// Amount before rounding (scaled units / bytes_per_gb; for display).
    pub exact: Decimal,
    /// Amount × bytes_per_gb, exact: what the rounding and allocation use.
    pub scaled: Decimal,
    /// Amount in cents after the month's rounding; lines sum to the total.
    pub amount: Decimal,
    /// How the line was allocated (`owner` in the aws view: billed to whom AWS bills;
    /// `adjustment` for a correction of a closed month).
    pub allocation_basis: &'static str,
    /// Status against the AWS bill (`matched`, `within_tolerance`, `differs`, `no_bill_yet`),
    /// set by the month close.
    pub reconciled: Option<&'static str>,
    /// For an adjustment line, the closed month (`YYYY-MM`) it corrects.
    pub adjusts: Option<String>,
}

impl Line {
    /// Average price per unit (exact amount / quantity), for display.
    pub fn unit_price(&self) -> Decimal {
        if self.quantity.is_zero() {
            Decimal::ZERO
        } else {
            self.exact / self.quantity
        }
    }
}

/// An invoice view: its lines and their exact and rounded totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub lines: Vec<Line>,
    /// Sum of the lines' scaled amounts, exact.
    pub scaled_total: Decimal,
    /// `scaled_total / bytes_per_gb`.
    pub exact_total: Decimal,
    /// `exact_total` rounded to cents; equals the sum of `lines[..].amount`.
    pub total: Decimal,
}

/// (account, meter, cluster, auth scheme, endpoint id, allocation basis)
/// (account, meter, cluster, auth scheme, endpoint id, allocation basis)
type Key = (String, Meter, String, String, String, &'static str);

fn add(acc: &mut BTreeMap<Key, (Decimal, Decimal)>, key: Key, qty: Decimal, cost: Decimal) {
    let e = acc.entry(key).or_default();
    e.0 += qty;
    e.1 += cost;
}

/// One priced unit of usage, billed by AWS to `payer`: an endpoint-AZ hour, a connectivity
/// hour, or one usage row's bytes for a GB meter. Quantities are hours or bytes; `scaled` is
/// the exact amount × bytes_per_gb.
#[derive(Debug, Clone)]
struct Item {
    hour: i64,
    meter: Meter,
    payer: String,
    cluster: String,
    auth: String,
    /// Empty for cluster-level meters.
    endpoint_id: String,
    /// The client account whose bytes these were (GB meters), for chargeback.
    client: String,
    qty: Decimal,
    scaled: Decimal,
}

/// Prices every unit of usage (see the module doc for the rules).
fn price(
    book: &PriceBook,
    usage: &[Usage],
    endpoint_hours: &[EndpointHour],
    connectivity: &[ConnectivityHour],
) -> Result<Vec<Item>, PriceError> {
    let b = Decimal::from(book.bytes_per_gb);
    let mut items = Vec::with_capacity(usage.len() * 2 + endpoint_hours.len() + connectivity.len());
    for h in endpoint_hours {
        let price = book.rate(Meter::EndpointAzHours, &h.region, h.hour)?.tiers[0].price;
        items.push(Item {
            hour: h.hour,
            meter: Meter::EndpointAzHours,
            payer: h.client_account.clone(),
            cluster: h.cluster.clone(),
            auth: h.auth.clone(),
            endpoint_id: h.endpoint_id.clone(),
            client: h.client_account.clone(),
            qty: Decimal::ONE,
            scaled: price * b,
        });
    }
    for h in connectivity {
        let price = book
            .rate(Meter::MskConnectivityHours, &h.region, h.hour)?
            .tiers[0]
            .price;
        items.push(Item {
            hour: h.hour,
            meter: Meter::MskConnectivityHours,
            payer: h.owner_account.clone(),
            cluster: h.cluster.clone(),
            auth: h.auth.clone(),
            endpoint_id: String::new(),
            client: String::new(),
            qty: Decimal::ONE,
            scaled: price * b,
        });
    }
    let mut rows: Vec<&Usage> = usage.iter().collect();
    rows.sort_by(|x, y| {
        (x.hour, &x.client_account, &x.endpoint_id).cmp(&(
            y.hour,
            &y.client_account,
            &y.endpoint_id,
        ))
    });
    // Running bytes per tier scope: (region, account or "" for the organization).
    let mut running: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for u in rows {
        let bytes = Decimal::from(u.bytes);
        let price = book
            .rate(Meter::MskConnectivityGb, &u.region, u.hour)?
            .tiers[0]
            .price;
        // The owner pays AWS; `endpoint_id` remembers whose bytes they were for chargeback.
        items.push(Item {
            hour: u.hour,
            meter: Meter::MskConnectivityGb,
            payer: u.cluster_owner.clone(),
            cluster: u.cluster.clone(),
            auth: u.auth.clone(),
            endpoint_id: String::new(),
            client: u.client_account.clone(),
            qty: bytes,
            scaled: bytes * price,
        });
        let r = book.rate(Meter::EndpointGb, &u.region, u.hour)?;
        let scope = match r.scope {
            TierScope::Organization => String::new(),
            TierScope::Account => u.client_account.clone(),
        };
        // Tiers in bytes: the bounds scale by bytes_per_gb, prices stay per GB.
        let tiers: Vec<Tier> = r
            .tiers
            .iter()
            .map(|t| Tier {
                up_to: t.up_to.map(|x| x * b),
                price: t.price,
            })
            .collect();
        let before = running.entry((u.region.clone(), scope)).or_default();
        let cost = tiered_cost(*before + bytes, &tiers) - tiered_cost(*before, &tiers);
        *before += bytes;
        items.push(Item {
            hour: u.hour,
            meter: Meter::EndpointGb,
            payer: u.client_account.clone(),
            cluster: u.cluster.clone(),
            auth: u.auth.clone(),
            endpoint_id: u.endpoint_id.clone(),
            client: u.client_account.clone(),
            qty: bytes,
            scaled: cost,
        });
    }
    Ok(items)
}

/// The `aws` view of a month: every line billed to the account AWS bills.
pub fn aws_view(
    book: &PriceBook,
    usage: &[Usage],
    endpoint_hours: &[EndpointHour],
    connectivity: &[ConnectivityHour],
) -> Result<Invoice, PriceError> {
    let mut acc: BTreeMap<Key, (Decimal, Decimal)> = BTreeMap::new();
    for it in price(book, usage, endpoint_hours, connectivity)? {
        add(
            &mut acc,
            (
                it.payer,
                it.meter,
                it.cluster,
                it.auth,
                it.endpoint_id,
                "owner",
            ),
            it.qty,
            it.scaled,
        );
    }
    let scaled_total = acc.values().map(|v| v.1).sum();
    Ok(finish(acc, Decimal::from(book.bytes_per_gb), scaled_total))
}

/// The `chargeback` view: the owner-billed meters (`msk_connectivity_hours`,
/// `msk_connectivity_gb`) re-allocated to client accounts by the price book's policy;
/// client-billed meters stay where AWS bills them (basis `owner`). Its total equals the `aws`
/// view's to the cent: the same exact total is rounded once and spread over the lines.
///
/// - `proportional`: to the client accounts in proportion to their bytes on that cluster and
///   auth scheme in that hour (basis `bytes`); an hour without bytes falls back to `even`;
/// - `even`: evenly over the client connections (endpoints) provisioned on that cluster and
///   auth scheme in that hour (basis `even`);
/// - `owner`, or nobody to allocate to: stays with the cluster owner (basis `owner` or
///   `unallocated`).
pub fn chargeback_view(
    book: &PriceBook,
    usage: &[Usage],
    endpoint_hours: &[EndpointHour],
    connectivity: &[ConnectivityHour],
) -> Result<Invoice, PriceError> {
    let w = Weights::of(usage, endpoint_hours);
    let items = price(book, usage, endpoint_hours, connectivity)?;
    // Shares like 1/3 are not exact in decimal, so the total is the aws view's, not the sum
    // of the shares: rounded once and spread over the lines, it is the same to the cent.
    let aws_scaled: Decimal = items.iter().map(|i| i.scaled).sum();
    let mut acc: BTreeMap<Key, (Decimal, Decimal)> = BTreeMap::new();
    for it in items {
        w.allocate(book, it, &mut acc);
    }
    Ok(finish(acc, Decimal::from(book.bytes_per_gb), aws_scaled))
}

/// (hour, cluster, auth scheme): the slot an owner-billed meter is shared within.
type Slot = (i64, String, String);

/// What owner-billed meters are shared by, per slot and client account: billable bytes, and
/// endpoints provisioned (each endpoint once per hour).
struct Weights {
    bytes: BTreeMap<Slot, BTreeMap<String, Decimal>>,
    endpoints: BTreeMap<Slot, BTreeMap<String, Decimal>>,
}

impl Weights {
    fn of(usage: &[Usage], endpoint_hours: &[EndpointHour]) -> Weights {
        let mut bytes: BTreeMap<Slot, BTreeMap<String, Decimal>> = BTreeMap::new();
        for u in usage {
            *bytes
                .entry((u.hour, u.cluster.clone(), u.auth.clone()))
                .or_default()
                .entry(u.client_account.clone())
                .or_default() += Decimal::from(u.bytes);
        }
        let mut endpoints: BTreeMap<Slot, BTreeMap<String, Decimal>> = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        for h in endpoint_hours {
            if seen.insert((
                h.hour,
                h.cluster.clone(),
                h.auth.clone(),
                h.endpoint_id.clone(),
            )) {
                *endpoints
                    .entry((h.hour, h.cluster.clone(), h.auth.clone()))
                    .or_default()
                    .entry(h.client_account.clone())
                    .or_default() += Decimal::ONE;
            }
        }
        Weights { bytes, endpoints }
    }

    /// Adds one priced item to the chargeback lines by its meter's policy.
    fn allocate(&self, book: &PriceBook, it: Item, acc: &mut BTreeMap<Key, (Decimal, Decimal)>) {
        let policy = match it.meter {
            Meter::MskConnectivityHours => book.connectivity_hours_policy,
            Meter::MskConnectivityGb => book.connectivity_gb_policy,
            _ => {
                let key = (
                    it.payer,
                    it.meter,
                    it.cluster,
                    it.auth,
                    it.endpoint_id,
                    "owner",
                );
                return add(acc, key, it.qty, it.scaled);
            }
        };
        if it.meter == Meter::MskConnectivityGb && policy == Policy::Proportional {
            // The bytes are one client account's own: it bears them whole.
            let key = (
                it.client.clone(),
                it.meter,
                it.cluster,
                it.auth,
                String::new(),
                "bytes",
            );
            return add(acc, key, it.qty, it.scaled);
        }
        let slot = (it.hour, it.cluster.clone(), it.auth.clone());
        let (weights, basis) = match policy {
            Policy::Owner => (None, "owner"),
            Policy::Proportional => match self
                .bytes
                .get(&slot)
                .filter(|m| m.values().any(|v| !v.is_zero()))
            {
                Some(m) => (Some(m), "bytes"),
                None => (self.endpoints.get(&slot), "even"),
            },
            Policy::Even => (self.endpoints.get(&slot), "even"),
        };
        match weights {
            Some(w) if !w.is_empty() => {
                let sum: Decimal = w.values().copied().sum();
                for (acct, wt) in w {
                    let key = (
                        acct.clone(),
                        it.meter,
                        it.cluster.clone(),
                        it.auth.clone(),
                        String::new(),
                        basis,
                    );
                    add(acc, key, it.qty * *wt / sum, it.scaled * *wt / sum);
                }
            }
            _ => {
                let basis = match policy {
                    Policy::Owner => "owner",
                    _ => "unallocated",
                };
                let key = (
                    it.payer,
                    it.meter,
                    it.cluster,
                    it.auth,
                    String::new(),
                    basis,
                );
                add(acc, key, it.qty, it.scaled);
            }
        }
    }
}

/// Rounds `scaled_total` to cents once and spreads it over the lines by their exact amounts.
fn finish(acc: BTreeMap<Key, (Decimal, Decimal)>, b: Decimal, scaled_total: Decimal) -> Invoice {
    let exact_total = scaled_total / b;
    let total = cents(exact_total);
    let weights: Vec<Decimal> = acc.values().map(|v| v.1).collect();
    let amounts = allocate(total, &weights).unwrap_or_else(|| vec![Decimal::ZERO; weights.len()]);
    let lines = acc
        .into_iter()
        .zip(amounts)
        .map(|((k, (raw_qty, scaled)), amount)| Line {
            quantity: if k.1.unit() == "GB" {
                raw_qty / b
            } else {
                raw_qty
            },
            account: k.0,
            meter: k.1,
            cluster: k.2,
            auth: k.3,
            endpoint_id: k.4,
            exact: scaled / b,
            scaled,
            amount,
            allocation_basis: k.5,
            reconciled: None,
            adjusts: None,
        })
        .collect();
    Invoice {
        lines,
        scaled_total,
        exact_total,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    const GIB: u64 = 1 << 30;
    const OCT1: i64 = 1_790_812_800; // 2026-10-01T00:00:00Z
    const H: i64 = 3600;

    /// Small tiers so a crossing is easy to work by hand: first 10 GB at 0.01, then 0.005.
    const BOOK: &str = r#"
currency = "USD"
[[rates]]
meter = "endpoint_az_hours"
region = "us-east-1"
from = "2026-01-01T00:00:00Z"
price = "0.01"
[[rates]]
meter = "endpoint_az_hours"
region = "us-east-1"
from = "2026-10-01T02:00:00Z"
price = "0.02"
[[rates]]
meter = "endpoint_gb"
region = "us-east-1"
from = "2026-01-01T00:00:00Z"
scope = "organization"
tiers = [{ up_to_gb = "10", price = "0.01" }, { price = "0.005" }]
[[rates]]
meter = "msk_connectivity_hours"
region = "us-east-1"
from = "2026-01-01T00:00:00Z"
price = "0.5"
[[rates]]
meter = "msk_connectivity_gb"
region = "us-east-1"
from = "2026-01-01T00:00:00Z"
price = "0.003"
"#;

    fn usage(hour: i64, acct: &str, ep: &str, gib: u64) -> Usage {
        Usage {
            hour,
            client_account: acct.into(),
            cluster_owner: "999".into(),
            cluster: "c1".into(),
            region: "us-east-1".into(),
            auth: "SASL_IAM".into(),
            endpoint_id: ep.into(),
            bytes: u128::from(gib * GIB),
        }
    }

    fn ep_hour(hour: i64, acct: &str, ep: &str) -> EndpointHour {
        EndpointHour {
            hour,
            client_account: acct.into(),
            cluster: "c1".into(),
            region: "us-east-1".into(),
            auth: "SASL_IAM".into(),
            endpoint_id: ep.into(),
        }
    }

    #[test]
    fn hand_checked_month() {
        let book = PriceBook::from_toml(BOOK, "t").unwrap();
        // Account A uses 6 GiB at 00:00, then B 6 GiB at 01:00: the organization crosses the
        // 10 GB tier inside B's usage: B pays 4 GB × 0.01 + 2 GB × 0.005 = 0.05; A pays 0.06.
        let usage = vec![
            usage(OCT1, "A", "vpce-a", 6),
            usage(OCT1 + H, "B", "vpce-b", 6),
        ];
        // Endpoint vpce-a in 2 AZs for hours 00..03 (4 hours each): hours 00 and 01 at 0.01,
        // 02 and 03 at 0.02 (price change at 02:00) → per AZ 0.06, two AZs 0.12.
        let mut eh = Vec::new();
        for h in 0..4 {
            eh.push(ep_hour(OCT1 + h * H, "A", "vpce-a"));
            eh.push(ep_hour(OCT1 + h * H, "A", "vpce-a"));
        }
        // Connectivity: 3 hours at 0.5 = 1.50 to the owner; GB: 12 × 0.003 = 0.036.
        let conn: Vec<ConnectivityHour> = (0..3)
            .map(|h| ConnectivityHour {
                hour: OCT1 + h * H,
                owner_account: "999".into(),
                cluster: "c1".into(),
                region: "us-east-1".into(),
                auth: "SASL_IAM".into(),
            })
            .collect();
        let inv = aws_view(&book, &usage, &eh, &conn).unwrap();
        let get = |acct: &str, m: Meter| {
            inv.lines
                .iter()
                .find(|l| l.account == acct && l.meter == m)
                .unwrap()
        };
        assert_eq!(get("A", Meter::EndpointGb).exact, d("0.06"));
        assert_eq!(get("B", Meter::EndpointGb).exact, d("0.050"));
        assert_eq!(get("A", Meter::EndpointAzHours).exact, d("0.12"));
        assert_eq!(get("A", Meter::EndpointAzHours).quantity, d("8"));
        assert_eq!(get("999", Meter::MskConnectivityHours).exact, d("1.5"));
        assert_eq!(get("999", Meter::MskConnectivityGb).exact, d("0.036"));
        // 0.06 + 0.05 + 0.12 + 1.50 + 0.036 = 1.766 → 1.77; the 0.036 line takes the spare cent.
        assert_eq!(inv.exact_total, d("1.766"));
        assert_eq!(inv.total, d("1.77"));
        assert_eq!(
            inv.lines.iter().map(|l| l.amount).sum::<Decimal>(),
            d("1.77")
        );
        assert_eq!(get("999", Meter::MskConnectivityGb).amount, d("0.04"));
    }

    #[test]
    fn usage_in_a_region_without_rates_is_named() {
        let book = PriceBook::from_toml(BOOK, "t").unwrap();
        let mut u = usage(OCT1, "A", "vpce-a", 1);
        u.region = "eu-west-1".into();
        let e = aws_view(&book, &[u], &[], &[]).unwrap_err().to_string();
        assert!(
            e.contains("eu-west-1") && e.contains("msk_connectivity_gb"),
            "{e}"
        );
    }

    proptest! {
        /// For random usage: lines sum exactly to the total, and the endpoint_gb lines sum
        /// to the tiered cost of the organization's month total (one scope, one price).
        #[test]
        fn lines_sum_to_total_and_tiers_hold(rows in proptest::collection::vec((0i64..48, 0usize..4, 0u64..(8 * GIB)), 0..60)) {
            let book = PriceBook::from_toml(BOOK, "t").unwrap();
            let accts = ["A", "B", "C", "D"];
            let usage: Vec<Usage> = rows.iter().map(|(h, a, b)| Usage { bytes: u128::from(*b), ..usage(OCT1 + h * H, accts[*a], &format!("vpce-{a}"), 0) }).collect();
            let inv = aws_view(&book, &usage, &[], &[]).unwrap();
            prop_assert_eq!(inv.lines.iter().map(|l| l.amount).sum::<Decimal>(), inv.total);
            prop_assert_eq!(inv.total, cents(inv.exact_total));
            prop_assert_eq!(inv.lines.iter().map(|l| l.scaled).sum::<Decimal>(), inv.scaled_total);
            // Independent check in scaled units: the organization's month total through the tiers.
            let b = Decimal::from(book.bytes_per_gb);
            let bytes: Decimal = usage.iter().map(|u| Decimal::from(u.bytes)).sum();
            let tiers: Vec<Tier> = book.rate(Meter::EndpointGb, "us-east-1", OCT1).unwrap().tiers.iter().map(|t| Tier { up_to: t.up_to.map(|u| u * b), price: t.price }).collect();
            let ep: Decimal = inv.lines.iter().filter(|l| l.meter == Meter::EndpointGb).map(|l| l.scaled).sum();
            prop_assert_eq!(ep, tiered_cost(bytes, &tiers));
        }
    }

    fn hand_inputs() -> (Vec<Usage>, Vec<EndpointHour>, Vec<ConnectivityHour>) {
        let usage = vec![
            usage(OCT1, "A", "vpce-a", 6),
            usage(OCT1 + H, "B", "vpce-b", 6),
        ];
        let mut eh = Vec::new();
        for h in 0..4 {
            eh.push(ep_hour(OCT1 + h * H, "A", "vpce-a"));
            eh.push(ep_hour(OCT1 + h * H, "A", "vpce-a"));
        }
        let conn = (0..3)
            .map(|h| ConnectivityHour {
                hour: OCT1 + h * H,
                owner_account: "999".into(),
                cluster: "c1".into(),
                region: "us-east-1".into(),
                auth: "SASL_IAM".into(),
            })
            .collect();
        (usage, eh, conn)
    }

    #[test]
    fn chargeback_worked_by_hand() {
        let (u, eh, ch) = hand_inputs();
        // Defaults: connectivity hours `even` over the endpoints provisioned that hour (only
        // A's vpce-a, in two AZs: one endpoint), connectivity GB `proportional` (own bytes).
        let book = PriceBook::from_toml(BOOK, "t").unwrap();
        let cb = chargeback_view(&book, &u, &eh, &ch).unwrap();
        let aws = aws_view(&book, &u, &eh, &ch).unwrap();
        let get = |inv: &Invoice, acct: &str, m: Meter| -> Vec<(Decimal, &'static str)> {
            inv.lines
                .iter()
                .filter(|l| l.account == acct && l.meter == m)
                .map(|l| (l.exact, l.allocation_basis))
                .collect()
        };
        assert_eq!(
            get(&cb, "A", Meter::MskConnectivityHours),
            vec![(d("1.5"), "even")]
        );
        assert_eq!(
            get(&cb, "A", Meter::MskConnectivityGb),
            vec![(d("0.018"), "bytes")]
        );
        assert_eq!(
            get(&cb, "B", Meter::MskConnectivityGb),
            vec![(d("0.018"), "bytes")]
        );
        assert!(
            get(&cb, "999", Meter::MskConnectivityHours).is_empty(),
            "nothing left with the owner"
        );
        assert_eq!(get(&cb, "B", Meter::EndpointGb), vec![(d("0.05"), "owner")]);
        assert_eq!(
            (cb.total, cb.lines.iter().map(|l| l.amount).sum::<Decimal>()),
            (aws.total, aws.total)
        );

        // Proportional hours: hour 0 → A's bytes, hour 1 → B's bytes, hour 2 has no bytes → even (A).
        let book = PriceBook::from_toml(
            &format!("{BOOK}\n[chargeback]\nmsk_connectivity_hours = \"proportional\"\n"),
            "t",
        )
        .unwrap();
        let cb = chargeback_view(&book, &u, &eh, &ch).unwrap();
        assert_eq!(
            get(&cb, "A", Meter::MskConnectivityHours),
            vec![(d("0.5"), "bytes"), (d("0.5"), "even")]
        );
        assert_eq!(
            get(&cb, "B", Meter::MskConnectivityHours),
            vec![(d("0.5"), "bytes")]
        );

        // Owner keeps them.
        let book = PriceBook::from_toml(&format!("{BOOK}\n[chargeback]\nmsk_connectivity_hours = \"owner\"\nmsk_connectivity_gb = \"owner\"\n"), "t").unwrap();
        let cb = chargeback_view(&book, &u, &eh, &ch).unwrap();
        assert_eq!(
            get(&cb, "999", Meter::MskConnectivityHours),
            vec![(d("1.5"), "owner")]
        );
        assert_eq!(
            get(&cb, "999", Meter::MskConnectivityGb),
            vec![(d("0.036"), "owner")]
        );
    }

    proptest! {
        /// Re-allocation neither creates nor loses a cent: same total as the aws view, lines
        /// sum to it, and per meter the exact amounts agree.
        #[test]
        fn chargeback_conserves_every_cent(
            rows in proptest::collection::vec((0i64..24, 0usize..3, 0u64..(4 * GIB)), 0..30),
            eps in proptest::collection::vec((0i64..24, 0usize..3), 0..30),
            conn_hours in 0i64..24,
            policy in prop_oneof![Just("even"), Just("proportional"), Just("owner")],
        ) {
            let book = PriceBook::from_toml(&format!("{BOOK}\n[chargeback]\nmsk_connectivity_hours = \"{policy}\"\nmsk_connectivity_gb = \"{policy}\"\n"), "t").unwrap();
            let accts = ["A", "B", "C"];
            let usage: Vec<Usage> = rows.iter().map(|(h, a, b)| Usage { bytes: u128::from(*b), ..usage(OCT1 + h * H, accts[*a], &format!("vpce-{a}"), 0) }).collect();
            let eh: Vec<EndpointHour> = eps.iter().map(|(h, a)| ep_hour(OCT1 + h * H, accts[*a], &format!("vpce-{a}"))).collect();
            let ch: Vec<ConnectivityHour> = (0..conn_hours).map(|h| ConnectivityHour { hour: OCT1 + h * H, owner_account: "999".into(), cluster: "c1".into(), region: "us-east-1".into(), auth: "SASL_IAM".into() }).collect();
            let aws = aws_view(&book, &usage, &eh, &ch).unwrap();
            let cb = chargeback_view(&book, &usage, &eh, &ch).unwrap();
            prop_assert_eq!(cb.total, aws.total);
            prop_assert_eq!(cb.lines.iter().map(|l| l.amount).sum::<Decimal>(), cb.total);
            for m in [Meter::EndpointAzHours, Meter::EndpointGb, Meter::MskConnectivityHours, Meter::MskConnectivityGb] {
                let a: Decimal = aws.lines.iter().filter(|l| l.meter == m).map(|l| l.scaled).sum();
                let c: Decimal = cb.lines.iter().filter(|l| l.meter == m).map(|l| l.scaled).sum();
                prop_assert!((a - c).abs() < d("0.000000000001"), "{:?}: {} vs {}", m, a, c);
            }
        }
    }
}
