//! A FOCUS-conformant export (FinOps Open Cost and Usage Specification, column names of
//! version 1.2): one row per invoice line, so FinOps tools can load linkmeter's chargeback
//! next to the cloud providers' own FOCUS data. Columns linkmeter cannot know (commitment
//! discounts, capacity reservations, invoice ids) are present and null, as FOCUS asks of
//! columns that do not apply; linkmeter's own columns use the `x_` prefix FOCUS reserves for
//! extensions.

use std::collections::BTreeMap;

use linkmeter_aggregate::invoice::Invoice;
use linkmeter_aggregate::price_book::Meter;
use linkmeter_warehouse::csv_out::CsvOut;
use rust_decimal::Decimal;

/// The header row.
pub const HEADER: &str = "BilledCost,EffectiveCost,ListCost,ContractedCost,BillingAccountId,BillingAccountName,BillingCurrency,BillingPeriodStart,BillingPeriodEnd,ChargeCategory,ChargeClass,ChargeDescription,ChargeFrequency,ChargePeriodStart,ChargePeriodEnd,ConsumedQuantity,ConsumedUnit,PricingQuantity,PricingUnit,ListUnitPrice,ContractedUnitPrice,ProviderName,PublisherName,InvoiceIssuerName,RegionId,ResourceId,ServiceCategory,ServiceName,SkuId,SubAccountId,SubAccountName,AvailabilityZone,BillingAccountType,CapacityReservationId,CapacityReservationStatus,CommitmentDiscountCategory,CommitmentDiscountId,CommitmentDiscountName,CommitmentDiscountQuantity,CommitmentDiscountStatus,CommitmentDiscountType,CommitmentDiscountUnit,InvoiceId,PricingCategory,RegionName,ResourceName,ResourceType,ServiceSubcategory,SkuPriceId,SubAccountType,Tags,x_CostCenter,x_AllocationBasis,x_Cluster,x_AuthScheme,x_Reconciled,x_Provisional,x_AdjustsMonth";

/// The unit name for a GB meter given the price book's bytes per GB: FOCUS wants the unit
/// actually measured, so 2^30 is `GiB` and 10^9 is `GB`.
pub fn data_unit(bytes_per_gb: u64) -> String {
    match bytes_per_gb {
        1_073_741_824 => "GiB".into(),
        1_000_000_000 => "GB".into(),
        n => format!("{n} Bytes"),
    }
}

/// AWS's display name of a region (FOCUS `RegionName`); the id where it is not in this list.
pub fn region_name(id: &str) -> &str {
    match id {
        "us-east-1" => "US East (N. Virginia)",
        "us-east-2" => "US East (Ohio)",
        "us-west-1" => "US West (N. California)",
        "us-west-2" => "US West (Oregon)",
        "ca-central-1" => "Canada (Central)",
        "eu-west-1" => "Europe (Ireland)",
        "eu-west-2" => "Europe (London)",
        "eu-west-3" => "Europe (Paris)",
        "eu-central-1" => "Europe (Frankfurt)",
        "eu-north-1" => "Europe (Stockholm)",
        "ap-southeast-1" => "Asia Pacific (Singapore)",
        "ap-southeast-2" => "Asia Pacific (Sydney)",
        "ap-northeast-1" => "Asia Pacific (Tokyo)",
        "ap-south-1" => "Asia Pacific (Mumbai)",
        "sa-east-1" => "South America (Sao Paulo)",
        other => other,
    }
}

fn money(d: Decimal) -> String {
    let mut r = d;
    r.rescale(2);
    r.to_string()
}

fn plain(d: Decimal, dp: u32) -> String {
    d.round_dp(dp).normalize().to_string()
}

/// Writes the FOCUS CSV for one view of one month. An adjustment line (a correction of a
/// closed month) has `ChargeClass` `Correction` and the corrected month as its charge period.
#[allow(clippy::too_many_arguments)]
pub fn focus_csv(
    inv: &Invoice,
    month_start: &str,
    month_end: &str,
    currency: &str,
    bytes_per_gb: u64,
    accounts: &BTreeMap<String, (String, String)>,
    region: &str,
    provisional: bool,
) -> String {
    let mut out = CsvOut::new();
    out.header(&HEADER.split(',').collect::<Vec<_>>());
    let unit = data_unit(bytes_per_gb);
    for l in &inv.lines {
        let (name, cc) = accounts
            .get(&l.account)
            .map(|(n, c)| (n.as_str(), c.as_str()))
            .unwrap_or(("", ""));
        // ServiceCategory takes FOCUS's fixed values: MSK is "Analytics", PrivateLink "Networking".
        let (service, category, consumed_unit) = match l.meter {
            Meter::MskConnectivityHours | Meter::MskConnectivityGb => (
                "Amazon Managed Streaming for Apache Kafka",
                "Analytics",
                if l.meter.unit() == "GB" {
                    unit.as_str()
                } else {
                    "Hours"
                },
            ),
            Meter::EndpointAzHours | Meter::EndpointGb => (
                "AWS PrivateLink",
                "Networking",
                if l.meter.unit() == "GB" {
                    unit.as_str()
                } else {
                    "Hours"
                },
            ),
        };
        let (resource, resource_type) = if l.endpoint_id.is_empty() {
            (l.cluster.as_str(), "MSK Cluster")
        } else {
            (l.endpoint_id.as_str(), "VPC Endpoint")
        };
        let subcategory = if category == "Analytics" {
            "Streaming Analytics"
        } else {
            "Network Connectivity"
        };
        let description = format!(
            "{} for {} {} ({})",
            l.meter.as_str(),
            l.cluster,
            l.auth,
            l.allocation_basis
        );
        let amount = money(l.amount);
        let qty = plain(l.quantity, 9);
        let price = plain(l.unit_price(), 10);
        let sku_price = format!("{}:{}", l.meter.as_str(), region);
        let corrected = l
            .adjusts
            .as_deref()
            .and_then(|m| linkmeter_warehouse::Month::parse(m).ok());
        let (charge_start, charge_end, class) = match corrected {
            Some(m) => (m.start(), m.end(), "Correction"),
            None => (month_start.to_string(), month_end.to_string(), ""),
        };
        // Column order is HEADER's; empty values are FOCUS nulls.
        for v in [&amount, &amount, &amount, &amount] {
            out.value(v);
        }
        // Without the organization's payer account, each account is its own billing account.
        out.text(&l.account)
            .text(name)
            .text(currency)
            .value(month_start)
            .value(month_end)
            .value("Usage")
            .value(class)
            .text(&description)
            .value("Usage-Based")
            .value(&charge_start)
            .value(&charge_end)
            .value(&qty)
            .value(consumed_unit)
            .value(&qty)
            .value(consumed_unit)
            .value(&price)
            .value(&price);
        for _ in 0..3 {
            out.value("Amazon Web Services");
        }
        out.text(region)
            .text(resource)
            .value(category)
            .value(service)
            .value(l.meter.as_str())
            .text(&l.account)
            .text(name)
            .value("")
            .value("AWS Account");
        for _ in 0..10 {
            out.value("");
        }
        out.value("Standard")
            .text(region_name(region))
            .text(resource)
            .value(resource_type)
            .value(subcategory)
            .text(&sku_price)
            .value("AWS Account")
            .value("{}")
            .text(cc)
            .value(l.allocation_basis)
            .text(&l.cluster)
            .text(&l.auth)
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
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn units_say_what_was_measured_and_costs_sum() {
        assert_eq!(data_unit(1 << 30), "GiB");
        assert_eq!(data_unit(1_000_000_000), "GB");
        let line = |m: Meter, q: &str, a: &str| Line {
            account: "1".into(),
            meter: m,
            cluster: "c1".into(),
            auth: "TLS".into(),
            endpoint_id: "vpce-1".into(),
            quantity: d(q),
            exact: d(a),
            scaled: d(a),
            amount: d(a),
            allocation_basis: "bytes",
            reconciled: None,
            adjusts: None,
        };
        let inv = Invoice {
            lines: vec![
                line(Meter::EndpointGb, "2.5", "0.03"),
                line(Meter::EndpointAzHours, "744", "7.44"),
                line(Meter::MskConnectivityGb, "1", "0.01"),
            ],
            scaled_total: d("0"),
            exact_total: d("7.48"),
            total: d("7.48"),
        };
        let csv = focus_csv(
            &inv,
            "2026-10-01T00:00:00Z",
            "2026-11-01T00:00:00Z",
            "USD",
            1 << 30,
            &BTreeMap::new(),
            "us-east-1",
            false,
        );
        let rows: Vec<Vec<String>> = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(csv.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect();
        let h = &rows[0];
        let col = |name: &str| h.iter().position(|c| c == name).unwrap();
        assert_eq!(rows[1][col("PricingUnit")], "GiB");
        assert_eq!(rows[1][col("ConsumedUnit")], "GiB");
        assert_eq!(rows[2][col("PricingUnit")], "Hours");
        assert_eq!(rows[1][col("ServiceName")], "AWS PrivateLink");
        let billed: Decimal = rows[1..].iter().map(|r| d(&r[col("BilledCost")])).sum();
        assert_eq!(billed, inv.total);
        assert!(
            rows.iter().all(|r| r.len() == h.len()),
            "every row has every column"
        );
        // FOCUS's closed value lists.
        const CATEGORIES: &[&str] = &[
            "AI and Machine Learning",
            "Analytics",
            "Business Applications",
            "Compute",
            "Databases",
            "Developer Tools",
            "Multicloud",
            "Identity",
            "Integration",
            "Internet of Things",
            "Management and Governance",
            "Media",
            "Migration",
            "Mobile",
            "Networking",
            "Security",
            "Storage",
            "Web",
            "Other",
        ];
        for r in &rows[1..] {
            assert!(
                CATEGORIES.contains(&r[col("ServiceCategory")].as_str()),
                "{r:?}"
            );
            assert_eq!(r[col("ChargeCategory")], "Usage");
            assert_eq!(r[col("PricingCategory")], "Standard");
            assert_eq!(r[col("RegionName")], "US East (N. Virginia)");
            assert_eq!(r[col("CommitmentDiscountId")], "");
        }
        assert_eq!(rows[3][col("ServiceCategory")], "Analytics");
        assert_eq!(rows[3][col("ResourceType")], "VPC Endpoint");
        assert_eq!(rows[3][col("SkuPriceId")], "msk_connectivity_gb:us-east-1");
    }
}
