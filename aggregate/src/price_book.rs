//! The price book (`prices.toml`, DESIGN §3): currency, bytes per GB, rates per meter and
//! region with effective dates, tiers for `endpoint_gb`, and who bears the owner-billed meters
//! in the chargeback view. Prices are written as strings ("0.01") so they stay exact decimals.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::money::Tier;

/// Why a price book cannot be used, or has no price for something.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    /// The file could not be read.
    #[error("cannot read price book {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML for the schema.
    #[error("price book {path} is not valid: {message}")]
    Parse { path: String, message: String },
    /// Valid TOML that breaks a rule; every problem is listed.
    #[error("price book {path} has {} problem(s):\n  - {}\nFix these entries and run again.", problems.len(), problems.join("\n  - "))]
    Invalid { path: String, problems: Vec<String> },
    /// Usage exists for a meter and region at a time no rate covers.
    #[error("price book has no {meter} rate for region {region} at {at}; add a [[rates]] entry with meter = \"{meter}\", region = \"{region}\" and from on or before that time")]
    NoRate {
        meter: Meter,
        region: String,
        at: String,
    },
}

/// The four meters AWS bills (DESIGN §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Meter {
    /// Hours × (cluster, auth scheme) with multi-VPC connectivity turned on; cluster owner.
    MskConnectivityHours,
    /// GB through private connectivity; cluster owner.
    MskConnectivityGb,
    /// Hours × endpoint × AZ provisioned (a partial hour is a full hour); endpoint owner.
    EndpointAzHours,
    /// GB through the endpoint, both directions, tiered per region per month; endpoint owner.
    EndpointGb,
}

impl Meter {
    /// The name used in files and exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Meter::MskConnectivityHours => "msk_connectivity_hours",
            Meter::MskConnectivityGb => "msk_connectivity_gb",
            Meter::EndpointAzHours => "endpoint_az_hours",
            Meter::EndpointGb => "endpoint_gb",
        }
    }

    /// The meter's unit.
    pub fn unit(self) -> &'static str {
        match self {
            Meter::MskConnectivityHours | Meter::EndpointAzHours => "hour",
            Meter::MskConnectivityGb | Meter::EndpointGb => "GB",
        }
    }
}

impl fmt::Display for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Over which usage `endpoint_gb` tiers are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TierScope {
    /// Each account's own monthly total per region.
    Account,
    /// The whole organization's total per region (consolidated billing).
    #[default]
    Organization,
}

/// Who bears an owner-billed meter in the chargeback view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Client accounts, in proportion to their bytes that hour; `even` when there were none.
    Proportional,
    /// Client accounts, evenly across the connections active that hour.
    Even,
    /// The cluster owner keeps it.
    Owner,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    currency: String,
    #[serde(default)]
    bytes_per_gb: Option<u64>,
    #[serde(default)]
    rates: Vec<RateEntry>,
    #[serde(default)]
    chargeback: Option<ChargebackEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateEntry {
    meter: Meter,
    region: String,
    from: String,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    price: Option<toml::Value>,
    #[serde(default)]
    tiers: Vec<TierEntry>,
    #[serde(default)]
    scope: Option<TierScope>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TierEntry {
    #[serde(default)]
    up_to_gb: Option<toml::Value>,
    price: toml::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChargebackEntry {
    #[serde(default)]
    msk_connectivity_hours: Option<Policy>,
    #[serde(default)]
    msk_connectivity_gb: Option<Policy>,
}

/// One rate, valid for `[from, until)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    pub meter: Meter,
    pub region: String,
    /// Unix seconds.
    pub from: i64,
    /// Unix seconds, exclusive; `None` = open.
    pub until: Option<i64>,
    /// Tiers; a flat price is one unbounded tier.
    pub tiers: Vec<Tier>,
    /// Tier scope (meaningful for `endpoint_gb`).
    pub scope: TierScope,
}

/// A validated price book.
#[derive(Debug, Clone)]
pub struct PriceBook {
    /// ISO 4217 currency code.
    pub currency: String,
    /// Bytes in one billed GB (default 2^30).
    pub bytes_per_gb: u64,
    /// Rates per (meter, region), sorted by `from`.
    pub rates: BTreeMap<(Meter, String), Vec<Rate>>,
    /// Policy for `msk_connectivity_hours` in chargeback.
    pub connectivity_hours_policy: Policy,
    /// Policy for `msk_connectivity_gb` in chargeback.
    pub connectivity_gb_policy: Policy,
}

fn time(s: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc).timestamp())
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2026-10-01T00:00:00Z ({e})"))
}

fn dec(v: &toml::Value, what: &str) -> Result<Decimal, String> {
    match v {
        toml::Value::String(s) => Decimal::from_str(s.trim()).map_err(|e| format!("{what}: {s:?} is not a decimal number ({e})")),
        toml::Value::Integer(i) => Ok(Decimal::from(*i)),
        toml::Value::Float(f) => Err(format!(
            "{what}: write {f} as a string (\"{f}\") so it stays an exact decimal; TOML floats are binary"
        )),
        other => Err(format!("{what}: expected a decimal string, found {other}")),
    }
}

/// One `[[rates]]` entry, checked; `None` when it has no usable start.
fn rate_of(i: usize, r: &RateEntry, p: &mut Vec<String>) -> Option<Rate> {
    let who = format!("rates[{i}] ({} {} from {})", r.meter, r.region, r.from);
    let from = time(&r.from)
        .map_err(|e| p.push(format!("{who}: from: {e}")))
        .ok();
    let until = r
        .until
        .as_deref()
        .map(time)
        .transpose()
        .map_err(|e| p.push(format!("{who}: until: {e}")))
        .ok()
        .flatten();
    let tiers = tiers_of(&who, r, p);
    check_tiers(&who, &tiers, p);
    if r.scope.is_some() && r.meter != Meter::EndpointGb {
        p.push(format!("{who}: scope applies to endpoint_gb tiers only"));
    }
    if let (Some(a), Some(b)) = (from, until) {
        if b <= a {
            p.push(format!("{who}: until is not after from"));
        }
    }
    Some(Rate {
        meter: r.meter,
        region: r.region.clone(),
        from: from?,
        until,
        tiers,
        scope: r.scope.unwrap_or_default(),
    })
}

/// A rate's price: one unbounded tier, or its `[[rates.tiers]]`.
fn tiers_of(who: &str, r: &RateEntry, p: &mut Vec<String>) -> Vec<Tier> {
    let mut tiers = Vec::new();
    match (&r.price, r.tiers.is_empty()) {
        (Some(v), true) => match dec(v, &format!("{who}: price")) {
            Ok(price) => tiers.push(Tier { up_to: None, price }),
            Err(e) => p.push(e),
        },
        (None, false) => {
            if r.meter != Meter::EndpointGb {
                p.push(format!(
                    "{who}: only endpoint_gb is tiered; give a single price"
                ));
            }
            for (k, t) in r.tiers.iter().enumerate() {
                let price = dec(&t.price, &format!("{who}: tiers[{k}].price"))
                    .map_err(|e| p.push(e))
                    .ok();
                let up = t
                    .up_to_gb
                    .as_ref()
                    .map(|v| dec(v, &format!("{who}: tiers[{k}].up_to_gb")))
                    .transpose()
                    .map_err(|e| p.push(e))
                    .ok()
                    .flatten();
                if let Some(price) = price {
                    tiers.push(Tier { up_to: up, price });
                }
            }
        }
        (Some(_), false) => p.push(format!("{who}: give either price or tiers, not both")),
        (None, true) => p.push(format!("{who}: no price")),
    }
    tiers
}

/// Tiers are priced non-negatively, bounded but for the last, and in increasing order.
fn check_tiers(who: &str, tiers: &[Tier], p: &mut Vec<String>) {
    for (k, t) in tiers.iter().enumerate() {
        if t.price.is_sign_negative() {
            p.push(format!("{who}: negative price {}", t.price));
        }
        let last = k + 1 == tiers.len();
        match (t.up_to, last) {
            (None, false) => p.push(format!(
                "{who}: tier {k} has no up_to_gb but is not the last tier"
            )),
            (Some(_), true) => p.push(format!(
                "{who}: the last tier must have no up_to_gb (it covers everything above)"
            )),
            _ => {}
        }
        if k > 0 {
            if let (Some(prev), Some(cur)) = (tiers[k - 1].up_to, t.up_to) {
                if cur <= prev {
                    p.push(format!(
                        "{who}: tiers out of order: up_to_gb {cur} after {prev}"
                    ));
                }
            }
        }
        if let Some(u) = t.up_to {
            if u <= Decimal::ZERO {
                p.push(format!("{who}: tier up_to_gb must be positive"));
            }
        }
    }
}

/// Sorts each meter and region's rates by start and refuses overlaps.
fn check_overlaps(rates: &mut BTreeMap<(Meter, String), Vec<Rate>>, p: &mut Vec<String>) {
    for ((meter, region), list) in rates.iter_mut() {
        list.sort_by_key(|r| r.from);
        for w in list.windows(2) {
            // A rate without `until` runs until the next one starts; an explicit `until`
            // past the next start is an overlap.
            if w[0].from == w[1].from || w[0].until.is_some_and(|u| u > w[1].from) {
                p.push(format!(
                    "{meter} {region}: rates overlap (one from {} and one from {})",
                    fmt_t(w[0].from),
                    fmt_t(w[1].from)
                ));
            }
        }
    }
}

impl PriceBook {
    /// Reads and validates a price book file.
    pub fn load(path: &Path) -> Result<PriceBook, PriceError> {
        let text = std::fs::read_to_string(path).map_err(|source| PriceError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates price-book TOML; `name` is used in errors.
    pub fn from_toml(text: &str, name: &str) -> Result<PriceBook, PriceError> {
        let f: File = toml::from_str(text).map_err(|e| PriceError::Parse {
            path: name.into(),
            message: e.to_string(),
        })?;
        let mut p = Vec::new();
        if f.currency.len() != 3 || !f.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            p.push(format!(
                "currency {:?} is not an ISO 4217 code such as \"USD\"",
                f.currency
            ));
        }
        let bytes_per_gb = f.bytes_per_gb.unwrap_or(1 << 30);
        if bytes_per_gb == 0 {
            p.push("bytes_per_gb must be positive".into());
        }
        let mut rates: BTreeMap<(Meter, String), Vec<Rate>> = BTreeMap::new();
        for (i, r) in f.rates.iter().enumerate() {
            if let Some(rate) = rate_of(i, r, &mut p) {
                rates
                    .entry((r.meter, r.region.clone()))
                    .or_default()
                    .push(rate);
            }
        }
        check_overlaps(&mut rates, &mut p);
        if !p.is_empty() {
            return Err(PriceError::Invalid {
                path: name.into(),
                problems: p,
            });
        }
        let cb = f.chargeback.as_ref();
        Ok(PriceBook {
            currency: f.currency,
            bytes_per_gb,
            rates,
            connectivity_hours_policy: cb
                .and_then(|c| c.msk_connectivity_hours)
                .unwrap_or(Policy::Even),
            connectivity_gb_policy: cb
                .and_then(|c| c.msk_connectivity_gb)
                .unwrap_or(Policy::Proportional),
        })
    }

    /// The rate in force for a meter and region at a time (Unix seconds).
    pub fn rate(&self, meter: Meter, region: &str, at: i64) -> Result<&Rate, PriceError> {
        let none = || PriceError::NoRate {
            meter,
            region: region.to_string(),
            at: fmt_t(at),
        };
        let list = self
            .rates
            .get(&(meter, region.to_string()))
            .ok_or_else(none)?;
        let i = list.partition_point(|r| r.from <= at);
        let r = i.checked_sub(1).map(|i| &list[i]).ok_or_else(none)?;
        if r.until.is_some_and(|u| at >= u) {
            return Err(none());
        }
        Ok(r)
    }

    /// Bytes as GB in this book's unit, exactly.
    pub fn gb(&self, bytes: u128) -> Decimal {
        Decimal::from(bytes) / Decimal::from(self.bytes_per_gb)
    }
}

fn fmt_t(t: i64) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example shipped with the project must always load.
    const EXAMPLE: &str = include_str!("../prices.example.toml");

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn example_loads_with_privatelink_tiers() {
        let b = PriceBook::from_toml(EXAMPLE, "example").unwrap();
        assert_eq!(b.bytes_per_gb, 1 << 30);
        let r = b
            .rate(Meter::EndpointGb, "us-east-1", 1_790_812_800)
            .unwrap();
        assert_eq!(r.tiers.len(), 3);
        assert_eq!(r.tiers[0].price, d("0.01"));
        assert_eq!(r.tiers[1].up_to, Some(d("5242880")));
        assert_eq!(r.scope, TierScope::Organization);
        assert_eq!(b.gb(1 << 30), Decimal::ONE);
    }

    const BASE: &str = r#"
currency = "USD"
[[rates]]
meter = "endpoint_az_hours"
region = "us-east-1"
from = "2026-01-01T00:00:00Z"
price = "0.01"
[[rates]]
meter = "endpoint_az_hours"
region = "us-east-1"
from = "2026-10-15T12:00:00Z"
price = "0.012"
"#;

    #[test]
    fn effective_dates_pick_the_rate_in_force() {
        let b = PriceBook::from_toml(BASE, "t").unwrap();
        let at = |s: &str| time(s).unwrap();
        assert_eq!(
            b.rate(
                Meter::EndpointAzHours,
                "us-east-1",
                at("2026-10-15T11:00:00Z")
            )
            .unwrap()
            .tiers[0]
                .price,
            d("0.01")
        );
        assert_eq!(
            b.rate(
                Meter::EndpointAzHours,
                "us-east-1",
                at("2026-10-15T12:00:00Z")
            )
            .unwrap()
            .tiers[0]
                .price,
            d("0.012")
        );
        let e = b
            .rate(
                Meter::EndpointAzHours,
                "eu-west-1",
                at("2026-10-15T12:00:00Z"),
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no endpoint_az_hours rate for region eu-west-1"),
            "{e}"
        );
        let e = b
            .rate(
                Meter::EndpointAzHours,
                "us-east-1",
                at("2025-12-31T23:00:00Z"),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("2025-12-31T23:00:00Z"), "{e}");
    }

    #[test]
    fn each_rule_is_reported_with_its_entry() {
        let cases: &[(&str, &str, &str)] = &[
            ("price = \"0.012\"", "price = \"-0.012\"", "negative price -0.012"),
            ("from = \"2026-10-15T12:00:00Z\"", "from = \"2026-01-01T00:00:00Z\"", "rates overlap"),
            ("price = \"0.012\"", "price = 0.012", "write 0.012 as a string"),
            ("from = \"2026-10-15T12:00:00Z\"", "from = \"mid-october\"", "is not an RFC 3339 time"),
            ("currency = \"USD\"", "currency = \"dollars\"", "ISO 4217"),
            ("price = \"0.01\"\n", "price = \"0.01\"\nuntil = \"2026-11-01T00:00:00Z\"\n", "rates overlap"),
            ("meter = \"endpoint_az_hours\"\nregion = \"us-east-1\"\nfrom = \"2026-01-01T00:00:00Z\"\nprice = \"0.01\"", "meter = \"endpoint_gb\"\nregion = \"us-east-1\"\nfrom = \"2026-01-01T00:00:00Z\"\ntiers = [{ up_to_gb = \"100\", price = \"0.01\" }, { up_to_gb = \"50\", price = \"0.006\" }, { price = \"0.004\" }]", "tiers out of order"),
        ];
        for (from, to, want) in cases {
            assert!(BASE.contains(from), "fixture lacks {from:?}");
            let text = BASE.replacen(from, to, 1);
            let e = PriceBook::from_toml(&text, "prices.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "want {want:?} in:\n{e}");
            assert!(e.contains("prices.toml"), "{e}");
        }
        let e = PriceBook::from_toml(&format!("{BASE}\nbogus = 1\n"), "p")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `bogus`"), "{e}");
    }
}
