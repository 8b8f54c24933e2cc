//! Reads one bill export file (Parquet): CUR 2.0 (`line_item_*` columns) or FOCUS with AWS
//! columns (`x_UsageType`, `BilledCost`, …), keeping the lines linkmeter meters.
//!
//! The file is checked before the parquet crate reads it, as flow-log Parquet is (claimed
//! sizes, column-chunk offsets, every page header), and panics inside the crate end the file
//! with an error instead of the run. Only the columns below are read.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::file::reader::ChunkReader;
use rust_decimal::Decimal;

use crate::decode::flow_parquet::{batch_rows, chunk_problem};
use crate::decode::{panic_text, parquet_pages};
use crate::limits::Bounds;

/// Which export a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BillFormat {
    /// AWS Data Exports, table `COST_AND_USAGE_REPORT` (CUR 2.0).
    #[default]
    Cur2,
    /// AWS Data Exports, a FOCUS table with AWS columns.
    Focus,
}

impl BillFormat {
    /// The name stored in `bill_lines.bill_format`.
    pub fn as_str(self) -> &'static str {
        match self {
            BillFormat::Cur2 => "cur2",
            BillFormat::Focus => "focus",
        }
    }
}

/// The fields linkmeter reads, in [`Row`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Payer,
    UsageAccount,
    LineType,
    Product,
    UsageType,
    Operation,
    Resource,
    Zone,
    Start,
    End,
    Amount,
    Unit,
    Rate,
    Cost,
    Currency,
    Invoice,
    Period,
}

const COLS: [Col; 17] = [
    Col::Payer,
    Col::UsageAccount,
    Col::LineType,
    Col::Product,
    Col::UsageType,
    Col::Operation,
    Col::Resource,
    Col::Zone,
    Col::Start,
    Col::End,
    Col::Amount,
    Col::Unit,
    Col::Rate,
    Col::Cost,
    Col::Currency,
    Col::Invoice,
    Col::Period,
];

/// The column a field is read from, and whether a file without it is refused.
fn column(f: BillFormat, c: Col) -> (&'static str, bool) {
    use Col::*;
    match f {
        BillFormat::Cur2 => match c {
            Payer => ("bill_payer_account_id", false),
            UsageAccount => ("line_item_usage_account_id", true),
            LineType => ("line_item_line_item_type", false),
            Product => ("line_item_product_code", true),
            UsageType => ("line_item_usage_type", true),
            Operation => ("line_item_operation", false),
            Resource => ("line_item_resource_id", true),
            Zone => ("line_item_availability_zone", false),
            Start => ("line_item_usage_start_date", true),
            End => ("line_item_usage_end_date", false),
            Amount => ("line_item_usage_amount", true),
            Unit => ("pricing_unit", false),
            Rate => ("line_item_unblended_rate", false),
            Cost => ("line_item_unblended_cost", true),
            Currency => ("line_item_currency_code", false),
            Invoice => ("bill_invoice_id", false),
            Period => ("bill_billing_period_start_date", false),
        },
        BillFormat::Focus => match c {
            Payer => ("BillingAccountId", false),
            UsageAccount => ("SubAccountId", true),
            LineType => ("ChargeCategory", false),
            Product => ("x_ServiceCode", true),
            UsageType => ("x_UsageType", true),
            Operation => ("x_Operation", false),
            Resource => ("ResourceId", true),
            Zone => ("AvailabilityZone", false),
            Start => ("ChargePeriodStart", true),
            End => ("ChargePeriodEnd", false),
            Amount => ("ConsumedQuantity", true),
            Unit => ("PricingUnit", false),
            Rate => ("ContractedUnitPrice", false),
            Cost => ("BilledCost", true),
            Currency => ("BillingCurrency", false),
            Invoice => ("InvoiceId", false),
            Period => ("BillingPeriodStart", false),
        },
    }
}

/// Which export a schema is, by its column names.
pub fn detect(names: &[&str]) -> Option<BillFormat> {
    if names.contains(&"line_item_usage_type") {
        Some(BillFormat::Cur2)
    } else if names.contains(&"x_UsageType") && names.contains(&"BilledCost") {
        Some(BillFormat::Focus)
    } else {
        None
    }
}

/// What a bill line is to linkmeter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relevance {
    /// A line of one of linkmeter's meters.
    Meter(&'static str),
    /// A line of the MSK private-connectivity per-GB charge, recognized by shape: its usage-type
    /// string is not documented anywhere we could find, so the summary lists what was taken.
    AssumedMskGb,
    /// PrivateLink or MSK private connectivity, but no meter of linkmeter's (gateway load
    /// balancer endpoints, endpoint services): kept and listed, never billed against.
    Related,
    /// Anything else on the bill: read and left out.
    Other,
}

/// Classifies a line by product code, usage type, operation and pricing unit.
pub fn relevance(product: &str, usage_type: &str, operation: &str, unit: &str) -> Relevance {
    if product == "AmazonVPC" && (operation == "VpcEndpoint" || usage_type.contains("VpcEndpoint"))
    {
        return if usage_type.ends_with("-VpcEndpoint-Hours") || usage_type == "VpcEndpoint-Hours" {
            Relevance::Meter("endpoint_az_hours")
        } else if usage_type.ends_with("-VpcEndpoint-Bytes") || usage_type == "VpcEndpoint-Bytes" {
            Relevance::Meter("endpoint_gb")
        } else {
            Relevance::Related
        };
    }
    if product == "AmazonMSK" && usage_type.contains("PrivateConnectivity") {
        let gb_unit = matches!(unit, "GB" | "GiB" | "GB-Mo");
        return if usage_type.ends_with("PrivateConnectivityHours") {
            Relevance::Meter("msk_connectivity_hours")
        } else if gb_unit
            || ["Bytes", "GB", "Data"]
                .iter()
                .any(|w| usage_type.contains(w))
        {
            Relevance::AssumedMskGb
        } else {
            Relevance::Related
        };
    }
    Relevance::Other
}

/// The short resource name linkmeter's tables use: `vpce-…` for an endpoint ARN, else the id
/// as billed (an MSK cluster or VPC connection ARN).
pub fn short_resource(id: &str) -> &str {
    match id.rsplit_once("vpc-endpoint/") {
        Some((_, vpce)) => vpce,
        None => id,
    }
}

/// One kept bill line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    /// The export it came from.
    pub format: BillFormat,
    pub payer: Option<String>,
    pub usage_account: Option<String>,
    pub line_type: Option<String>,
    pub product: String,
    pub usage_type: String,
    pub operation: Option<String>,
    /// linkmeter's meter, `None` for related lines.
    pub meter: Option<&'static str>,
    pub resource_id: Option<String>,
    pub zone: Option<String>,
    /// Usage start and end, µs since the epoch.
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub amount: Option<Decimal>,
    pub unit: Option<String>,
    pub rate: Option<Decimal>,
    pub cost: Option<Decimal>,
    pub currency: Option<String>,
    /// Blank until the bill is final.
    pub invoice: Option<String>,
    /// `YYYY-MM` of the billing period (from the period column, else the usage start).
    pub period: Option<String>,
    /// 1-based row in the file.
    pub row: u64,
}

/// What one file held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileStats {
    /// Rows read.
    pub rows: u64,
    /// Rows kept (a meter's or related).
    pub kept: u64,
    /// Kept rows whose usage type was taken for `msk_connectivity_gb` by shape, by usage type.
    pub assumed: Vec<(String, u64)>,
    /// Kept related rows without a meter, by usage type.
    pub related: Vec<(String, u64)>,
}

/// Reads a bill file, handing each kept line to `sink`. `Err` says why the file cannot be
/// used at all (it is then left out whole: a bill is never half-read).
pub fn read<T: ChunkReader + 'static>(
    input: T,
    declared: Option<BillFormat>,
    bounds: &Bounds,
    sink: &mut dyn FnMut(Row),
) -> Result<(BillFormat, FileStats), String> {
    let guarded = |what: &str, p: Box<dyn std::any::Any + Send>| {
        format!(
            "the parquet crate failed {what}: {}",
            panic_text(p.as_ref())
        )
    };
    let file_len = input.len();
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let meta = catch_unwind(AssertUnwindSafe(|| {
        ArrowReaderMetadata::load(&input, options).map_err(|e| e.to_string())
    }))
    .unwrap_or_else(|p| Err(guarded("on its footer", p)))
    .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let (batch, claimed) = batch_rows(meta.metadata());
    if claimed > bounds.decompressed {
        return Err(format!("holds {claimed} bytes uncompressed, more than the {}-byte limit for this input (max_decompressed_ratio, max_decompressed_bytes)", bounds.decompressed));
    }
    if let Some(p) = chunk_problem(meta.metadata(), file_len) {
        return Err(p);
    }
    parquet_pages::check(&input, meta.metadata(), bounds.decompressed)?;
    let schema = meta.schema().clone();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let format = match (declared, detect(&names)) {
        (_, Some(f)) | (Some(f), None) => f,
        (None, None) => return Err("neither a CUR 2.0 nor a FOCUS export: no `line_item_usage_type` or `x_UsageType` column".into()),
    };
    let mut index = Vec::with_capacity(COLS.len());
    let mut missing = Vec::new();
    for c in COLS {
        let (name, required) = column(format, c);
        let at = names.iter().position(|n| *n == name);
        if at.is_none() && required {
            missing.push(name);
        }
        index.push(at);
    }
    if !missing.is_empty() {
        return Err(format!(
            "a {} export needs the columns {}; this file has none of them under those names (export it with INCLUDE_RESOURCES and hourly granularity)",
            format.as_str(),
            missing.join(", ")
        ));
    }
    let mut leaves: Vec<usize> = index.iter().flatten().copied().collect();
    leaves.sort_unstable();
    leaves.dedup();
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(input, meta);
    let mask = ProjectionMask::roots(builder.parquet_schema(), leaves.iter().copied());
    let mut reader = catch_unwind(AssertUnwindSafe(|| {
        builder
            .with_projection(mask)
            .with_batch_size(batch)
            .build()
            .map_err(|e| e.to_string())
    }))
    .unwrap_or_else(|p| Err(guarded("opening it", p)))?;
    // Projected batches hold the chosen columns in file order.
    let pos: Vec<Option<usize>> = index
        .iter()
        .map(|i| i.and_then(|i| leaves.iter().position(|l| *l == i)))
        .collect();
    let mut stats = FileStats::default();
    let mut assumed = std::collections::BTreeMap::<String, u64>::new();
    let mut related = std::collections::BTreeMap::<String, u64>::new();
    loop {
        let next = catch_unwind(AssertUnwindSafe(|| {
            reader.next().map(|b| b.map_err(|e| e.to_string()))
        }))
        .unwrap_or_else(|p| Some(Err(guarded("reading it", p))));
        let b = match next {
            None => break,
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                return Err(format!(
                    "Parquet data unreadable after row {}: {e}",
                    stats.rows
                ))
            }
        };
        let col = |c: Col| pos[c as usize].map(|i| b.column(i).clone());
        let text = |c: Col| -> Result<Option<ArrayRef>, String> {
            col(c)
                .map(|a| {
                    cast(&a, &DataType::Utf8)
                        .map_err(|e| format!("column `{}`: {e}", column(format, c).0))
                })
                .transpose()
        };
        let t: Vec<Option<ArrayRef>> = [
            Col::Payer,
            Col::UsageAccount,
            Col::LineType,
            Col::Product,
            Col::UsageType,
            Col::Operation,
            Col::Resource,
            Col::Zone,
            Col::Unit,
            Col::Currency,
            Col::Invoice,
        ]
        .into_iter()
        .map(text)
        .collect::<Result<_, _>>()?;
        let view = |k: usize, r: usize| -> &str {
            t[k].as_ref()
                .filter(|a| a.is_valid(r))
                .map(|a| a.as_string::<i32>().value(r))
                .unwrap_or("")
        };
        let s = |k: usize, r: usize| -> Option<String> {
            Some(view(k, r))
                .filter(|v| !v.is_empty())
                .map(|v| crate::limits::cut_text(v, bounds.text.max(256)).into_owned())
        };
        let time_cols = [Col::Start, Col::End, Col::Period].map(|c| times(col(c)));
        let num_cols = [Col::Amount, Col::Rate, Col::Cost].map(|c| numbers(col(c)));
        for r in 0..b.num_rows() {
            stats.rows += 1;
            // Most lines of a bill are other services: classified without copying anything.
            let meter = match relevance(view(3, r), view(4, r), view(5, r), view(8, r)) {
                Relevance::Other => continue,
                Relevance::Meter(m) => Some(m),
                Relevance::AssumedMskGb => {
                    *assumed.entry(view(4, r).to_string()).or_default() += 1;
                    Some("msk_connectivity_gb")
                }
                Relevance::Related => {
                    *related.entry(view(4, r).to_string()).or_default() += 1;
                    None
                }
            };
            let product = s(3, r).unwrap_or_default();
            let usage_type = s(4, r).unwrap_or_default();
            let operation = s(5, r);
            let unit = s(8, r);
            stats.kept += 1;
            let start = time_at(time_cols[0].as_ref(), r);
            let period = time_at(time_cols[2].as_ref(), r)
                .or(start)
                .and_then(chrono::DateTime::from_timestamp_micros)
                .map(|t| t.format("%Y-%m").to_string());
            sink(Row {
                format,
                payer: s(0, r),
                usage_account: s(1, r),
                line_type: s(2, r),
                product,
                usage_type,
                operation,
                meter,
                resource_id: s(6, r),
                zone: s(7, r),
                start,
                end: time_at(time_cols[1].as_ref(), r),
                amount: number_at(num_cols[0].as_ref(), r),
                unit,
                rate: number_at(num_cols[1].as_ref(), r),
                cost: number_at(num_cols[2].as_ref(), r),
                currency: s(9, r),
                invoice: s(10, r),
                period,
                row: stats.rows,
            });
        }
    }
    stats.assumed = assumed.into_iter().collect();
    stats.related = related.into_iter().collect();
    Ok((format, stats))
}

/// A time column cast once per batch: any timestamp unit, a date, or RFC 3339 text (CUR's
/// legacy CSV-shaped exports write times as text).
enum Times {
    Micros(ArrayRef),
    Days(ArrayRef),
    Text(ArrayRef),
}

fn times(a: Option<ArrayRef>) -> Option<Times> {
    let a = a?;
    Some(match a.data_type() {
        // Out of range after the cast (a hostile unit) is null, never a wrapped value.
        DataType::Timestamp(..) => {
            Times::Micros(cast(&a, &DataType::Timestamp(TimeUnit::Microsecond, None)).ok()?)
        }
        DataType::Date32 | DataType::Date64 => Times::Days(cast(&a, &DataType::Date32).ok()?),
        _ => Times::Text(cast(&a, &DataType::Utf8).ok()?),
    })
}

/// A time cell as µs since the epoch.
fn time_at(t: Option<&Times>, r: usize) -> Option<i64> {
    match t? {
        Times::Micros(a) => a.is_valid(r).then(|| {
            a.as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .value(r)
        }),
        Times::Days(a) if a.is_valid(r) => {
            i64::from(a.as_primitive::<arrow::datatypes::Date32Type>().value(r))
                .checked_mul(86_400_000_000)
        }
        Times::Days(_) => None,
        Times::Text(a) => {
            if !a.is_valid(r) {
                return None;
            }
            let v = a.as_string::<i32>().value(r);
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_micros())
                .ok()
                .or_else(|| {
                    chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S")
                        .ok()
                        .map(|t| t.and_utc().timestamp_micros())
                })
        }
    }
}

/// A number column cast once per batch.
enum Numbers {
    F64(ArrayRef),
    F32(ArrayRef),
    Text(ArrayRef),
}

fn numbers(a: Option<ArrayRef>) -> Option<Numbers> {
    let a = a?;
    Some(match a.data_type() {
        DataType::Float64 => Numbers::F64(a),
        DataType::Float32 => Numbers::F32(a),
        _ => Numbers::Text(cast(&a, &DataType::Utf8).ok()?),
    })
}

/// A number cell as an exact decimal: a float is taken as the shortest decimal that reads
/// back as the same float (what the bill shows), decimals and text as written; rounded to
/// 12 places. `None` for nulls, blanks, and values that are not finite numbers.
fn number_at(n: Option<&Numbers>, r: usize) -> Option<Decimal> {
    let text = match n? {
        Numbers::F64(a) => {
            let v = a.as_primitive::<arrow::datatypes::Float64Type>();
            (v.is_valid(r) && v.value(r).is_finite()).then(|| format!("{}", v.value(r)))?
        }
        Numbers::F32(a) => {
            let v = a.as_primitive::<arrow::datatypes::Float32Type>();
            (v.is_valid(r) && v.value(r).is_finite()).then(|| format!("{}", v.value(r)))?
        }
        Numbers::Text(a) => {
            if !a.is_valid(r) {
                return None;
            }
            a.as_string::<i32>().value(r).trim().to_string()
        }
    };
    parse_decimal(&text)
}

/// Parses `1.5`, `-0.01`, `1e-7` or `2.5E+3` into a decimal rounded to 12 places.
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    let d = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).ok()?
    } else {
        Decimal::from_str(text).ok()?
    };
    Some(d.round_dp(crate::bill::SCALE))
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
