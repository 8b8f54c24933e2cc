//! Loads bill exports into `bill_lines`: files are grouped by billing period (the
//! `BILLING_PERIOD=YYYY-MM` directory AWS Data Exports write), each group is read only when
//! its files changed, and the periods it holds are replaced whole in one commit each.
//!
//! A group with a file that cannot be read replaces nothing: the previous delivery's lines stay
//! until a readable one arrives, and the summary names the file and the reason.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use arrow::array::{ArrayRef, Decimal128Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;
use linkmeter_warehouse::registry::{BILL_LINES, BILL_SCALE};
use linkmeter_warehouse::table::{Add, Change};
use linkmeter_warehouse::Warehouse;
use xxhash_rust::xxh3::Xxh3;

use super::decode::{self, BillFormat, Row};
use crate::limits::Limits;
use crate::source::{Fetch, InputRef, Location};

/// One export file to load.
#[derive(Debug, Clone)]
pub struct BillJob {
    /// The file or object.
    pub input: InputRef,
    /// Opens it when it is not a local file.
    pub fetch: Option<Arc<dyn Fetch>>,
    /// What its source says it is (the columns decide when they are recognizable).
    pub declared: BillFormat,
}

/// What loading the bills did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BillSummary {
    /// Export files listed.
    pub files: usize,
    /// Files left alone because they are not Parquet (export manifests).
    pub not_parquet: usize,
    /// Groups of files unchanged since they were loaded (not read).
    pub unchanged: usize,
    /// Billing periods replaced, with their kept lines.
    pub periods: Vec<(String, u64)>,
    /// Rows read from the files read.
    pub rows: u64,
    /// Rows kept.
    pub kept: u64,
    /// Usage types taken for `msk_connectivity_gb` by their shape, with their line counts.
    pub assumed: BTreeMap<String, u64>,
    /// Related usage types kept without a meter, with their line counts.
    pub related: BTreeMap<String, u64>,
    /// Files that could not be used (their group replaced nothing), with the reason.
    pub failed: Vec<(String, String)>,
}

impl BillSummary {
    /// The lines the run summary prints.
    pub fn text(&self) -> String {
        let mut s = format!(
            "bill exports: {} Parquet files ({} other files left alone), {} billing-period groups unchanged; {} rows read, {} kept\n",
            self.files, self.not_parquet, self.unchanged, self.rows, self.kept
        );
        for (p, n) in &self.periods {
            s.push_str(&format!("  billing period {p}: {n} lines loaded\n"));
        }
        for (u, n) in &self.assumed {
            s.push_str(&format!("  usage type {u} ({n} lines) taken as msk_connectivity_gb by its shape; check it is MSK private connectivity data processing\n"));
        }
        for (u, n) in &self.related {
            s.push_str(&format!(
                "  usage type {u} ({n} lines) looks related but is no linkmeter meter; kept in bill_lines\n"
            ));
        }
        for (f, why) in &self.failed {
            s.push_str(&format!(
                "  BILL FILE NOT USED {f}: {why}; its billing period keeps its previous lines\n"
            ));
        }
        s
    }
}

/// Errors that stop loading (the warehouse failing); a bad file is not one.
pub type LoadError = linkmeter_warehouse::Error;

/// Rows of one period held before they are written out as a file.
const FLUSH_ROWS: usize = 100_000;

/// The billing period a key names (`…/BILLING_PERIOD=2026-10/…`), if any.
pub fn period_of_key(key: &str) -> Option<String> {
    key.split(['/', '\\'])
        .find_map(|seg| seg.strip_prefix("BILLING_PERIOD="))
        .filter(|p| p.len() == 7 && p.as_bytes()[4] == b'-')
        .map(str::to_string)
}

/// Loads every changed group of bill files into `bill_lines`. A group that cannot be used
/// is quarantined: one `quarantine` row per file that failed, written once per content of the
/// group (file `bill-PERIOD-HASH`) and dropped when the period next loads.
pub fn load(
    jobs: &[BillJob],
    wh: &Warehouse,
    rt: &tokio::runtime::Handle,
    limits: &Limits,
    run_id: &str,
) -> Result<BillSummary, LoadError> {
    let mut groups: BTreeMap<String, Vec<&BillJob>> = BTreeMap::new();
    // Exports hold data files and manifests (`metadata/…-Manifest.json`): only Parquet is read.
    let (jobs, others): (Vec<&BillJob>, Vec<&BillJob>) = jobs
        .iter()
        .partition(|j| j.input.key.to_ascii_lowercase().ends_with(".parquet"));
    for j in &jobs {
        groups
            .entry(period_of_key(&j.input.key).unwrap_or_default())
            .or_default()
            .push(*j);
    }
    let mut sum = BillSummary {
        files: jobs.len(),
        not_parquet: others.len(),
        ..Default::default()
    };
    let table = rt.block_on(wh.table(&BILL_LINES))?;
    for (period, mut group) in groups {
        group.sort_by(|a, b| a.input.key.cmp(&b.input.key));
        let qkey = if period.is_empty() {
            "unknown".to_string()
        } else {
            period
        };
        // Two exports of one period (CUR 2.0 and FOCUS, say) would be added together.
        let sources: std::collections::BTreeSet<&str> = group
            .iter()
            .map(|j| j.input.key.split(':').next().unwrap_or_default())
            .collect();
        if sources.len() > 1 {
            let names: Vec<&str> = sources.into_iter().collect();
            let why = format!(
                "billing period {qkey} is delivered by more than one bill source ({}); keep one bill source per warehouse",
                names.join(", ")
            );
            let failed: Vec<(String, String)> = group
                .iter()
                .map(|j| (j.input.uri.clone(), why.clone()))
                .collect();
            let id = xxhash_rust::xxh3::xxh3_64(why.as_bytes());
            quarantine(wh, rt, &qkey, id, &failed, run_id)?;
            sum.failed.extend(failed);
            continue;
        }
        let id = match identity(&group) {
            Ok(id) => id,
            Err((file, why)) => {
                let id = xxhash_rust::xxh3::xxh3_64(format!("{file}\n{why}").as_bytes());
                quarantine(wh, rt, &qkey, id, &[(file.clone(), why.clone())], run_id)?;
                sum.failed.push((file, why));
                continue;
            }
        };
        let stem = format!("bill-{id:016x}");
        let files = rt.block_on(async {
            let mut t = table.lock().await;
            t.refresh().await?;
            t.files()
        })?;
        if files.iter().any(|f| f.path.contains(&stem)) {
            sum.unchanged += 1;
            // Back to a delivery already loaded (a broken file removed): no failure stands.
            quarantine(wh, rt, &qkey, id, &[], run_id)?;
            continue;
        }
        let failed = load_group(&group, &stem, &qkey, wh, rt, limits, &mut sum)?;
        quarantine(wh, rt, &qkey, id, &failed, run_id)?;
        sum.failed.extend(failed);
    }
    Ok(sum)
}

/// Makes the quarantine hold this group's failures and nothing older of its period: one file
/// `bill-PERIOD-HASH` (kept when already there), none when `failed` is empty.
fn quarantine(
    wh: &Warehouse,
    rt: &tokio::runtime::Handle,
    period: &str,
    id: u64,
    failed: &[(String, String)],
    run_id: &str,
) -> Result<(), LoadError> {
    use linkmeter_warehouse::registry::QUARANTINE;
    use linkmeter_warehouse::segment::BILL_QUARANTINE;
    let prefix = format!("{BILL_QUARANTINE}{period}-");
    let name = format!("{prefix}{id:016x}.parquet");
    rt.block_on(async {
        let t = wh.table(&QUARANTINE).await?;
        let mut t = t.lock().await;
        t.refresh().await?;
        let files = t.files()?;
        let have = files.iter().any(|f| f.name() == name);
        let removes: Vec<_> = files
            .into_iter()
            .filter(|f| f.name().starts_with(&prefix) && (failed.is_empty() || f.name() != name))
            .collect();
        let mut adds = Vec::new();
        if !failed.is_empty() && !have {
            let n = failed.len();
            let now = chrono::Utc::now().timestamp_micros();
            let s = |v: Vec<String>| Arc::new(StringArray::from(v)) as ArrayRef;
            let cols: Vec<ArrayRef> = vec![
                s(failed.iter().map(|f| f.0.clone()).collect()),
                Arc::new(Int64Array::from(vec![0; n])),
                Arc::new(Int64Array::from(vec![0; n])),
                s(failed
                    .iter()
                    .map(|f| format!("bill export not used: {}", f.1))
                    .collect()),
                s(vec![String::new(); n]),
                // Bill files hold no flow-log records: they are outside the run's balance.
                Arc::new(Int64Array::from(vec![0; n])),
                s(vec![format!("bill:{id:016x}"); n]),
                s(vec![run_id.to_string(); n]),
                Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
            ];
            let b = RecordBatch::try_new(QUARANTINE.schema(), cols).map_err(|e| {
                linkmeter_warehouse::Error::Schema {
                    table: "quarantine".into(),
                    message: e.to_string(),
                }
            })?;
            adds.push(t.write(&[], &name, &[b]).await?);
        }
        t.commit(Change {
            adds,
            removes,
            info: vec![("bill", name.clone())],
            predicate: None,
        })
        .await?;
        Ok(())
    })
}

/// A group's identity: its files' keys, sizes and versions (an S3 ETag), or for local files
/// their content's hash (a file rewritten in place keeps its name and maybe its size).
fn identity(group: &[&BillJob]) -> Result<u64, (String, String)> {
    let mut h = Xxh3::new();
    for j in group {
        h.update(j.input.key.as_bytes());
        h.update(&j.input.size.to_le_bytes());
        match (&j.input.version, &j.input.location) {
            (Some(v), _) => h.update(v.as_bytes()),
            (None, Location::File(p)) => {
                let mut f =
                    std::fs::File::open(p).map_err(|e| (j.input.uri.clone(), e.to_string()))?;
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = f
                        .read(&mut buf)
                        .map_err(|e| (j.input.uri.clone(), e.to_string()))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            }
            (None, _) => {}
        }
    }
    Ok(h.digest())
}

/// Rows of one period waiting to be written, with the file each came from.
#[derive(Default)]
struct Pending {
    rows: Vec<(Row, usize)>,
    files: Vec<Add>,
    lines: u64,
}

#[allow(clippy::too_many_arguments)]
fn load_group(
    group: &[&BillJob],
    stem: &str,
    key_period: &str,
    wh: &Warehouse,
    rt: &tokio::runtime::Handle,
    limits: &Limits,
    sum: &mut BillSummary,
) -> Result<Vec<(String, String)>, LoadError> {
    let table = rt.block_on(wh.table(&BILL_LINES))?;
    let uris: Vec<&str> = group.iter().map(|j| j.input.uri.as_str()).collect();
    let mut periods: BTreeMap<String, Pending> = BTreeMap::new();
    let mut n_file = 0usize;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%6fZ").to_string();
    let mut flush = |period: &str, p: &mut Pending| -> Result<(), LoadError> {
        if p.rows.is_empty() {
            return Ok(());
        }
        let batch = batch(&p.rows, &uris)?;
        n_file += 1;
        let name = format!("{stem}.{stamp}-{n_file:04}.parquet");
        let part = [("billing_period", period.to_string())];
        let add = rt.block_on(async { table.lock().await.write(&part, &name, &[batch]).await })?;
        p.files.push(add);
        p.rows.clear();
        Ok(())
    };
    for (fi, j) in group.iter().enumerate() {
        let bounds = limits.bounds(j.input.size);
        // Rows go to their period as they are read and out to a file every FLUSH_ROWS, so
        // memory stays flat whatever a file holds.
        let mut failed: Option<LoadError> = None;
        let read = open(j, limits).and_then(|file| {
            decode::read(file, Some(j.declared), &bounds, &mut |r| {
                if failed.is_some() {
                    return;
                }
                let period = r.period.clone().unwrap_or_else(|| "unknown".into());
                let p = periods.entry(period.clone()).or_default();
                p.lines += 1;
                p.rows.push((r, fi));
                if p.rows.len() >= FLUSH_ROWS {
                    if let Err(e) = flush(&period, p) {
                        failed = Some(e);
                    }
                }
            })
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let stats = match read {
            Ok((_, stats)) => stats,
            Err(why) => return Ok(vec![(j.input.uri.clone(), why)]),
        };
        sum.rows += stats.rows;
        sum.kept += stats.kept;
        for (u, n) in stats.assumed {
            *sum.assumed.entry(u).or_default() += n;
        }
        for (u, n) in stats.related {
            *sum.related.entry(u).or_default() += n;
        }
    }
    for (period, p) in periods.iter_mut() {
        flush(period, p)?;
    }
    // A delivery of the period in the key with none of linkmeter's lines left in it empties
    // the period (its previous lines are no longer on the bill).
    if key_period.len() == 7 && !periods.contains_key(key_period) {
        periods.insert(key_period.to_string(), Pending::default());
    }
    for (period, p) in periods {
        rt.block_on(async {
            let mut t = table.lock().await;
            t.refresh().await?;
            let removes = t
                .files()?
                .into_iter()
                .filter(|f| {
                    f.partition
                        .get("billing_period")
                        .cloned()
                        .flatten()
                        .as_deref()
                        == Some(period.as_str())
                })
                .collect();
            t.commit(Change {
                adds: p.files,
                removes,
                info: vec![("bill", stem.to_string())],
                predicate: Some(format!("billing_period = '{period}'")),
            })
            .await
        })?;
        sum.periods.push((period, p.lines));
    }
    Ok(Vec::new())
}

/// The file of a job, local or downloaded into an unlinked temporary file (Parquet needs
/// random access), held to the input-size limit.
fn open(j: &BillJob, limits: &Limits) -> Result<std::fs::File, String> {
    match (&j.input.location, &j.fetch) {
        (Location::File(p), _) => std::fs::File::open(p).map_err(|e| e.to_string()),
        (_, Some(fetch)) => {
            let cap = limits.max_decompressed_bytes;
            let mut tmp = tempfile::tempfile().map_err(|e| e.to_string())?;
            let n = std::io::copy(&mut fetch.open(&j.input).take(cap + 1), &mut tmp)
                .map_err(|e| format!("cannot download it: {e}"))?;
            if n > cap {
                return Err(format!(
                    "larger than the {cap}-byte limit (max_decompressed_bytes)"
                ));
            }
            Ok(tmp)
        }
        (_, None) => Err("no way to open it (not a file, and its source gave no fetcher)".into()),
    }
}

fn batch(rows: &[(Row, usize)], uris: &[&str]) -> Result<RecordBatch, LoadError> {
    let text = |f: &dyn Fn(&Row) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(|(r, _)| f(r)).collect::<StringArray>())
    };
    let dec = |f: &dyn Fn(&Row) -> Option<rust_decimal::Decimal>| -> ArrayRef {
        let v: Decimal128Array = rows.iter().map(|(r, _)| f(r).and_then(scaled)).collect();
        Arc::new(
            v.with_precision_and_scale(38, BILL_SCALE)
                .expect("38 digits hold scale 12"),
        )
    };
    let ts = |f: &dyn Fn(&Row) -> Option<i64>| -> ArrayRef {
        Arc::new(
            rows.iter()
                .map(|(r, _)| f(r))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            rows.iter()
                .map(|(r, _)| Some(r.format.as_str()))
                .collect::<StringArray>(),
        ),
        text(&|r| r.payer.as_deref()),
        text(&|r| r.usage_account.as_deref()),
        text(&|r| r.line_type.as_deref()),
        text(&|r| Some(r.product.as_str())),
        text(&|r| Some(r.usage_type.as_str())),
        text(&|r| r.operation.as_deref()),
        text(&|r| r.meter),
        text(&|r| r.resource_id.as_deref()),
        text(&|r| r.resource_id.as_deref().map(decode::short_resource)),
        text(&|r| r.zone.as_deref()),
        ts(&|r| r.start),
        ts(&|r| r.end),
        dec(&|r| r.amount),
        text(&|r| r.unit.as_deref()),
        dec(&|r| r.rate),
        dec(&|r| r.cost),
        text(&|r| r.currency.as_deref()),
        text(&|r| r.invoice.as_deref()),
        Arc::new(
            rows.iter()
                .map(|(_, i)| Some(uris[*i]))
                .collect::<StringArray>(),
        ),
        Arc::new(
            rows.iter()
                .map(|(r, _)| Some(i64::try_from(r.row).unwrap_or(i64::MAX)))
                .collect::<Int64Array>(),
        ),
    ];
    RecordBatch::try_new(BILL_LINES.schema(), columns).map_err(|e| {
        linkmeter_warehouse::Error::Schema {
            table: "bill_lines".into(),
            message: e.to_string(),
        }
    })
}

/// A decimal as the column's unscaled integer at scale 12 (`None` if it does not fit).
fn scaled(d: rust_decimal::Decimal) -> Option<i128> {
    let mut d = d.round_dp(super::SCALE);
    d.rescale(super::SCALE);
    (d.scale() == super::SCALE).then(|| d.mantissa())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_come_from_the_export_layout() {
        assert_eq!(
            period_of_key("bills/cur2/data/BILLING_PERIOD=2026-10/cur2-00001.snappy.parquet"),
            Some("2026-10".into())
        );
        assert_eq!(period_of_key("bills/x.parquet"), None);
        assert_eq!(period_of_key("BILLING_PERIOD=October/x.parquet"), None);
        assert_eq!(
            scaled(rust_decimal::Decimal::new(15, 1)),
            Some(1_500_000_000_000)
        );
    }
}
