//! An AWS bill for the estate, as a CUR 2.0 export (`bill/cur2/data/BILLING_PERIOD=M/…`) and
//! the same lines as a FOCUS export (`bill/focus/…`), computed from the inventory and the
//! ground truth independently of linkmeter's rollups, with three deliberate differences that
//! `linkmeter reconcile` must find (listed in `generated.toml` under `planted`):
//!
//! 1. `rate`: one tenant's endpoint hours are billed at $0.011, not the price book's $0.01;
//! 2. `unknown_endpoint`: an endpoint that is not in the inventory is billed all month;
//! 3. `no_flow_logs`: an endpoint's data processing is billed on a day after the generated flow
//!    logs end (bytes the flow logs never saw).
//!
//! Rates are the published us-east-1 figures (`billing-facts.md` §5), the ones the generated
//! price book holds: $0.01 per endpoint AZ-hour and per GB, $0.0225 per private-connectivity
//! hour per auth scheme, $0.006 per GB of private connectivity.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use linkmeter_ingest::hours::HOUR;

use crate::estate::Estate;
use crate::records::{account_id, OWNER};

/// GB in the bill: 2^30 bytes, as the generated price book's `bytes_per_gb`.
const GB: f64 = 1_073_741_824.0;

/// The endpoint that is billed but not in the inventory.
pub(crate) const UNKNOWN_ENDPOINT: &str = "vpce-0b111feedfacecafe";

/// One line of the bill.
struct Line {
    account: String,
    product: &'static str,
    usage_type: String,
    operation: &'static str,
    resource: String,
    zone: String,
    hour: i64,
    amount: f64,
    unit: &'static str,
    rate: &'static str,
    cost: f64,
}

/// What was planted, for `generated.toml` and the tests.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Planted {
    /// Endpoint whose hours are billed at another rate.
    pub rate_endpoint: String,
    /// Billed rate of those hours.
    pub rate_billed: String,
    /// Endpoint billed but not in the inventory (and its account).
    pub unknown_endpoint: String,
    pub unknown_account: String,
    /// Endpoint with bytes billed on a day without flow logs, that day and the GB.
    pub no_flow_logs_endpoint: String,
    pub no_flow_logs_day: String,
    pub no_flow_logs_gb: f64,
    /// Lines in the bill.
    pub lines: u64,
}

/// The region code AWS puts in front of usage types.
fn region_code(region: &str) -> &'static str {
    match region {
        "us-east-1" => "USE1",
        "us-east-2" => "USE2",
        "us-west-2" => "USW2",
        "eu-west-1" => "EU",
        _ => "XX",
    }
}

fn endpoint_arn(region: &str, account: &str, vpce: &str) -> String {
    format!("arn:aws:ec2:{region}:{account}:vpc-endpoint/{vpce}")
}

/// Writes the bill for the billing period (calendar month) of the estate's first hour.
pub(crate) fn write_bill(
    dir: &Path,
    e: &Estate,
    truth: &BTreeMap<(i64, String, &'static str), u64>,
) -> std::io::Result<Planted> {
    use chrono::{Datelike, TimeZone, Utc};
    let first = Utc.timestamp_opt(e.start, 0).single().unwrap_or_default();
    let month_start = Utc
        .with_ymd_and_hms(first.year(), first.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let next = if first.month() == 12 {
        Utc.with_ymd_and_hms(first.year() + 1, 1, 1, 0, 0, 0)
    } else {
        Utc.with_ymd_and_hms(first.year(), first.month() + 1, 1, 0, 0, 0)
    };
    let (m0, m1) = (
        month_start.timestamp(),
        next.single().unwrap_or_default().timestamp(),
    );
    let period = month_start.format("%Y-%m").to_string();
    let rc = region_code(&e.region);
    let mut lines = Vec::new();
    let mut planted = Planted {
        rate_billed: "0.011".into(),
        unknown_endpoint: UNKNOWN_ENDPOINT.into(),
        unknown_account: account_id(0),
        ..Default::default()
    };
    // The tenant at index 1's first connection is billed at another rate.
    let rate_conn = e.conns.iter().position(|c| c.account == 1).unwrap_or(0);
    planted.rate_endpoint = e.conns[rate_conn].endpoint.clone();
    // Endpoint hours: every hour of the month each endpoint ENI exists (a partial hour is a
    // full hour; deleted at a full hour bills up to the hour before).
    for (ci, c) in e.conns.iter().enumerate() {
        let acct = account_id(c.account);
        let first_h = (c.created.div_euclid(HOUR) * HOUR).max(m0);
        let end = c.deleted.unwrap_or(m1).min(m1);
        let (rate, price) = if ci == rate_conn {
            ("0.011", 0.011)
        } else {
            ("0.01", 0.01)
        };
        for (_, az, _) in &c.enis {
            let mut h = first_h;
            while h < end {
                lines.push(Line {
                    account: acct.clone(),
                    product: "AmazonVPC",
                    usage_type: format!("{rc}-VpcEndpoint-Hours"),
                    operation: "VpcEndpoint",
                    resource: endpoint_arn(&e.region, &acct, &c.endpoint),
                    zone: az.to_string(),
                    hour: h,
                    amount: 1.0,
                    unit: "Hrs",
                    rate,
                    cost: price,
                });
                h += HOUR;
            }
        }
    }
    // The endpoint nobody put in the inventory: two AZs, all month, a little data.
    let acct0 = account_id(0);
    for az in ["use1-az1", "use1-az2"] {
        let mut h = m0;
        while h < m1 {
            lines.push(Line {
                account: acct0.clone(),
                product: "AmazonVPC",
                usage_type: format!("{rc}-VpcEndpoint-Hours"),
                operation: "VpcEndpoint",
                resource: endpoint_arn(&e.region, &acct0, UNKNOWN_ENDPOINT),
                zone: az.into(),
                hour: h,
                amount: 1.0,
                unit: "Hrs",
                rate: "0.01",
                cost: 0.01,
            });
            h += HOUR;
        }
    }
    // Data processing per endpoint-hour and per cluster-hour, from the ground truth.
    let by_arn: BTreeMap<&str, usize> = e
        .conns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.arn.as_str(), i))
        .collect();
    let mut endpoint_bytes: BTreeMap<(usize, i64), u64> = BTreeMap::new();
    let mut cluster_bytes: BTreeMap<(usize, i64), u64> = BTreeMap::new();
    for ((hour, arn, _), bytes) in truth {
        if let Some(&ci) = by_arn.get(arn.as_str()) {
            *endpoint_bytes.entry((ci, *hour)).or_default() += bytes;
            *cluster_bytes
                .entry((e.conns[ci].cluster, *hour))
                .or_default() += bytes;
        }
    }
    // Bytes the flow logs never saw: the day after the generated traffic ends (when it ends
    // inside the month), on the first connection's endpoint.
    let gap_day = e.end_t.div_euclid(86_400) * 86_400;
    if gap_day + 86_400 <= m1 {
        let c = &e.conns[0];
        let acct = account_id(c.account);
        planted.no_flow_logs_endpoint = c.endpoint.clone();
        planted.no_flow_logs_day = chrono::DateTime::from_timestamp(gap_day, 0)
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string();
        planted.no_flow_logs_gb = 0.5;
        lines.push(Line {
            account: acct.clone(),
            product: "AmazonVPC",
            usage_type: format!("{rc}-VpcEndpoint-Bytes"),
            operation: "VpcEndpoint",
            resource: endpoint_arn(&e.region, &acct, &c.endpoint),
            zone: String::new(),
            hour: gap_day + 3 * HOUR,
            amount: 0.5,
            unit: "GB",
            rate: "0.01",
            cost: 0.005,
        });
    }
    for ((ci, hour), bytes) in endpoint_bytes {
        let c = &e.conns[ci];
        let acct = account_id(c.account);
        let gb = bytes as f64 / GB;
        lines.push(Line {
            account: acct.clone(),
            product: "AmazonVPC",
            usage_type: format!("{rc}-VpcEndpoint-Bytes"),
            operation: "VpcEndpoint",
            resource: endpoint_arn(&e.region, &acct, &c.endpoint),
            zone: String::new(),
            hour,
            amount: gb,
            unit: "GB",
            rate: "0.01",
            cost: gb * 0.01,
        });
    }
    for ((k, hour), bytes) in cluster_bytes {
        let gb = bytes as f64 / GB;
        lines.push(Line {
            account: OWNER.into(),
            product: "AmazonMSK",
            usage_type: format!("{rc}-Kafka.PrivateConnectivity-Bytes"),
            operation: "",
            resource: e.cluster_arn(&e.clusters[k]),
            zone: String::new(),
            hour,
            amount: gb,
            unit: "GB",
            rate: "0.006",
            cost: gb * 0.006,
        });
    }
    // Private-connectivity hours: per cluster, auth scheme and hour, all month (the generated
    // inventory turns connectivity on a month before the traffic).
    for k in &e.clusters {
        for _ in k.schemes.iter() {
            let mut h = m0;
            while h < m1 {
                lines.push(Line {
                    account: OWNER.into(),
                    product: "AmazonMSK",
                    usage_type: format!("{rc}-Kafka.PrivateConnectivityHours"),
                    operation: "",
                    resource: e.cluster_arn(k),
                    zone: String::new(),
                    hour: h,
                    amount: 1.0,
                    unit: "Hrs",
                    rate: "0.0225",
                    cost: 0.0225,
                });
                h += HOUR;
            }
        }
    }
    lines.sort_by(|a, b| (a.hour, &a.account, &a.resource).cmp(&(b.hour, &b.account, &b.resource)));
    planted.lines = lines.len() as u64;
    let invoice = format!("GEN-{period}");
    for (format, sub) in [(Format::Cur2, "cur2"), (Format::Focus, "focus")] {
        let d = dir
            .join("bill")
            .join(sub)
            .join("data")
            .join(format!("BILLING_PERIOD={period}"));
        std::fs::create_dir_all(&d)?;
        let batch = batch(format, &lines, m0, &invoice)?;
        let f = std::fs::File::create(d.join(format!("{sub}-00001.snappy.parquet")))?;
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), Some(props))
            .map_err(std::io::Error::other)?;
        w.write(&batch).map_err(std::io::Error::other)?;
        w.close().map_err(std::io::Error::other)?;
    }
    Ok(planted)
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Cur2,
    Focus,
}

fn batch(f: Format, lines: &[Line], m0: i64, invoice: &str) -> std::io::Result<RecordBatch> {
    let n = lines.len();
    let s = |v: Vec<&str>| -> ArrayRef { Arc::new(StringArray::from(v)) };
    let const_s = |v: &str| s(vec![v; n]);
    let ts_ms = |v: Vec<i64>| -> ArrayRef {
        Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC"))
    };
    let f64s = |v: Vec<f64>| -> ArrayRef { Arc::new(Float64Array::from(v)) };
    let ms = |t: i64| t * 1000;
    let names: [&str; 16] = match f {
        Format::Cur2 => [
            "bill_payer_account_id",
            "bill_invoice_id",
            "bill_billing_period_start_date",
            "line_item_usage_account_id",
            "line_item_line_item_type",
            "line_item_usage_start_date",
            "line_item_usage_end_date",
            "line_item_product_code",
            "line_item_usage_type",
            "line_item_operation",
            "line_item_availability_zone",
            "line_item_resource_id",
            "line_item_usage_amount",
            "pricing_unit",
            "line_item_unblended_rate",
            "line_item_unblended_cost",
        ],
        Format::Focus => [
            "BillingAccountId",
            "InvoiceId",
            "BillingPeriodStart",
            "SubAccountId",
            "ChargeCategory",
            "ChargePeriodStart",
            "ChargePeriodEnd",
            "x_ServiceCode",
            "x_UsageType",
            "x_Operation",
            "AvailabilityZone",
            "ResourceId",
            "ConsumedQuantity",
            "PricingUnit",
            "ContractedUnitPrice",
            "BilledCost",
        ],
    };
    let rate_col: ArrayRef = match f {
        // CUR 2.0 writes the rate as text; FOCUS's unit prices are numbers.
        Format::Cur2 => s(lines.iter().map(|l| l.rate).collect()),
        Format::Focus => f64s(
            lines
                .iter()
                .map(|l| l.rate.parse().unwrap_or(0.0))
                .collect(),
        ),
    };
    let cols: Vec<ArrayRef> = vec![
        const_s(OWNER),
        const_s(invoice),
        ts_ms(vec![ms(m0); n]),
        s(lines.iter().map(|l| l.account.as_str()).collect()),
        const_s("Usage"),
        ts_ms(lines.iter().map(|l| ms(l.hour)).collect()),
        ts_ms(lines.iter().map(|l| ms(l.hour + HOUR)).collect()),
        s(lines.iter().map(|l| l.product).collect()),
        s(lines.iter().map(|l| l.usage_type.as_str()).collect()),
        s(lines.iter().map(|l| l.operation).collect()),
        s(lines.iter().map(|l| l.zone.as_str()).collect()),
        s(lines.iter().map(|l| l.resource.as_str()).collect()),
        f64s(lines.iter().map(|l| l.amount).collect()),
        s(lines.iter().map(|l| l.unit).collect()),
        rate_col,
        f64s(lines.iter().map(|l| l.cost).collect()),
    ];
    let fields: Vec<Field> = names
        .iter()
        .zip(&cols)
        .map(|(n, c)| Field::new(*n, c.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(std::io::Error::other)
}
