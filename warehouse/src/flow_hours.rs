//! `flow_hours`: the `flows` rows summed per hour, endpoint ENI, observation point, direction,
//! verdict and cluster, so that the month close and the reconciliation read thousands of rows
//! where `flows` holds millions. The observation-point rule stays a query-time decision over
//! these sums (`sql/views/billable_hours.sql`), so a late file still changes the answer.
//!
//! Written per segment and day beside the `flows` files they sum (see [`crate::summaries`]).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, Decimal128Array, Int64Array, RecordBatch, RecordBatchOptions,
};
use arrow::datatypes::{Decimal128Type, Int64Type};
use arrow::row::{RowConverter, SortField};

use crate::registry::FLOW_HOURS;
use crate::Error;

/// The `flows` columns a summary row is keyed by (in `flow_hours` order).
pub const KEYS: &[&str] = &[
    "usage_hour",
    "endpoint_eni",
    "observed_at",
    "direction",
    "status",
    "reason",
    "cluster_arn",
    "cluster_name",
    "auth_scheme",
    "connection_arn",
    "client_account_id",
];

/// Sums of one key: rows, bytes, packets.
#[derive(Default, Clone, Copy)]
struct Sums(i64, i128, i128);

/// The `flow_hours` rows of some `flows` rows (one batch, sorted by key). `at` names the
/// rows' file in errors.
pub fn summarize(batches: &[RecordBatch], at: &str) -> Result<RecordBatch, Error> {
    group(batches, at, |b, corrupt| {
        let (bytes, packets) = (int(b, "bytes", corrupt)?, int(b, "packets", corrupt)?);
        Ok((0..b.num_rows())
            .map(|i| Sums(1, i128::from(bytes.value(i)), i128::from(packets.value(i))))
            .collect())
    })
}

/// The `flow_hours` rows of `flows` rows a writer has already summed: `keys` holds the
/// [`KEYS`] columns with one row per group of rows, `sums` each group's (rows, bytes,
/// packets). The same rows in the same order as [`summarize`] of the rows themselves, at a
/// cost per group rather than per row (encoding every row's ~400-byte key was 5% of ingest).
pub fn from_groups(
    keys: &RecordBatch,
    sums: &[(i64, i128, i128)],
    at: &str,
) -> Result<RecordBatch, Error> {
    if keys.num_rows() != sums.len() {
        return Err(Error::Corrupt {
            path: at.to_string(),
            message: format!("{} key rows for {} sums", keys.num_rows(), sums.len()),
        });
    }
    group(std::slice::from_ref(keys), at, |_, _| {
        Ok(sums.iter().map(|&(n, b, p)| Sums(n, b, p)).collect())
    })
}

/// `flow_hours` rows with one row per key: the sums of several files' summaries (a segment
/// writes one summary per day, whatever number of `flows` files it wrote that day).
pub fn merge(summaries: &[RecordBatch], at: &str) -> Result<RecordBatch, Error> {
    group(summaries, at, |b, corrupt| {
        let n = int(b, "flow_rows", corrupt)?;
        let dec = |name: &str| -> Result<Decimal128Array, Error> {
            b.column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Decimal128Type>().cloned())
                .ok_or_else(|| corrupt(format!("flow_hours column {name} is not a decimal")))
        };
        let (bytes, packets) = (dec("bytes")?, dec("packets")?);
        Ok((0..b.num_rows())
            .map(|i| Sums(n.value(i), bytes.value(i), packets.value(i)))
            .collect())
    })
}

fn int(
    b: &RecordBatch,
    name: &str,
    corrupt: &dyn Fn(String) -> Error,
) -> Result<Int64Array, Error> {
    b.column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Int64Type>().cloned())
        .ok_or_else(|| corrupt(format!("column {name} is missing or not Int64")))
}

/// Rows of `batches` grouped by [`KEYS`], sorted by key, with the sums `sums_of` gives each row.
fn group(
    batches: &[RecordBatch],
    at: &str,
    sums_of: impl Fn(&RecordBatch, &dyn Fn(String) -> Error) -> Result<Vec<Sums>, Error>,
) -> Result<RecordBatch, Error> {
    let schema = FLOW_HOURS.schema();
    let corrupt = |message: String| Error::Corrupt {
        path: at.to_string(),
        message,
    };
    let fields = KEYS
        .iter()
        .map(|k| {
            let f = schema.field_with_name(k).expect("summary keys are columns");
            SortField::new(f.data_type().clone())
        })
        .collect();
    let conv = RowConverter::new(fields).map_err(|e| corrupt(e.to_string()))?;
    // Fx, not SipHash: keys are ~150-byte rows, hashed once per row.
    let mut groups: rustc_hash::FxHashMap<Box<[u8]>, Sums> = Default::default();
    for b in batches {
        let keys = KEYS
            .iter()
            .map(|k| {
                b.column_by_name(k)
                    .cloned()
                    .ok_or_else(|| corrupt(format!("rows without column {k}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rows = conv
            .convert_columns(&keys)
            .map_err(|e| corrupt(format!("flow_hours key columns: {e}")))?;
        let sums = sums_of(b, &corrupt)?;
        for (row, s) in rows.iter().zip(sums) {
            let add = |t: &mut Sums| {
                t.0 += s.0;
                t.1 += s.1;
                t.2 += s.2;
            };
            match groups.get_mut(row.as_ref()) {
                Some(t) => add(t),
                None => add(groups.entry(row.as_ref().into()).or_default()),
            }
        }
    }
    // Sorted by key (row bytes order as the columns do): hour, then ENI, so readers prune.
    let mut groups: Vec<(Box<[u8]>, Sums)> = groups.into_iter().collect();
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let parser = conv.parser();
    let mut columns: Vec<ArrayRef> = conv
        .convert_rows(groups.iter().map(|(k, _)| parser.parse(k)))
        .map_err(|e| corrupt(format!("summing flows: {e}")))?;
    let sums = |pick: fn(&Sums) -> i128| -> Result<ArrayRef, Error> {
        let a = Decimal128Array::from_iter_values(groups.iter().map(|(_, s)| pick(s)))
            .with_precision_and_scale(38, 0)
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(Arc::new(a))
    };
    columns.push(Arc::new(Int64Array::from_iter_values(
        groups.iter().map(|(_, s)| s.0),
    )));
    columns.push(sums(|s| s.1)?);
    columns.push(sums(|s| s.2)?);
    let options = RecordBatchOptions::new().with_row_count(Some(groups.len()));
    RecordBatch::try_new_with_options(schema, columns, &options)
        .map_err(|e| corrupt(format!("summing flows: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::FLOWS;
    use crate::store::Warehouse;
    use crate::summaries::{repair, Repaired};
    use crate::table::Change;
    use arrow::array::{StringArray, TimestampMicrosecondArray};

    fn flows_batch(rows: &[(i64, &str, &str, i64)]) -> RecordBatch {
        // (hour, eni, observed_at, bytes): every other column fixed or null.
        let schema = FLOWS.schema();
        let n = rows.len();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match f.name().as_str() {
                    "usage_hour" | "flow_start" | "flow_end" => Arc::new(
                        TimestampMicrosecondArray::from_iter_values(
                            rows.iter().map(|r| r.0 * 3_600_000_000),
                        )
                        .with_timezone("UTC"),
                    ),
                    "endpoint_eni" => {
                        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1)))
                    }
                    "observed_at" => {
                        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2)))
                    }
                    "bytes" | "record_bytes" => {
                        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3)))
                    }
                    "packets" | "record_packets" | "source_line" | "source_offset" => {
                        Arc::new(Int64Array::from_iter_values(rows.iter().map(|_| 1)))
                    }
                    "status" => Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|_| "attributed"),
                    )),
                    "direction" => Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|_| "to_cluster"),
                    )),
                    "source_uri" | "input_id" | "run_id" => {
                        Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "x")))
                    }
                    _ => arrow::array::new_null_array(f.data_type(), n),
                }
            })
            .collect();
        RecordBatch::try_new(schema, columns).unwrap()
    }

    #[test]
    fn rows_of_a_key_are_summed_exactly_and_sorted() {
        let big = i64::MAX;
        let a = flows_batch(&[(5, "eni-b", "client", big), (5, "eni-a", "endpoint", 7)]);
        let b = flows_batch(&[(5, "eni-b", "client", big), (4, "eni-b", "client", 1)]);
        let s = summarize(&[a, b], "t").unwrap();
        assert_eq!(s.num_rows(), 3);
        let eni = s.column_by_name("endpoint_eni").unwrap().as_string::<i32>();
        let rows = s
            .column_by_name("flow_rows")
            .unwrap()
            .as_primitive::<Int64Type>();
        let bytes = s
            .column_by_name("bytes")
            .unwrap()
            .as_primitive::<arrow::datatypes::Decimal128Type>();
        // Hour 4 first, then hour 5's ENIs in order.
        assert_eq!(
            (0..3).map(|i| eni.value(i)).collect::<Vec<_>>(),
            ["eni-b", "eni-a", "eni-b"]
        );
        assert_eq!(rows.values().to_vec(), [1, 1, 2]);
        // Two records of 2^63-1 bytes: no wrap.
        assert_eq!(bytes.value(2), 2 * i128::from(big));
        assert_eq!(bytes.value(1), 7);
    }

    /// The (path, summed bytes) of every committed summary.
    async fn summaries(wh: &Warehouse) -> Vec<(String, i128)> {
        let t = wh.table(&FLOW_HOURS).await.unwrap();
        let mut t = t.lock().await;
        t.refresh().await.unwrap();
        let mut out = Vec::new();
        for f in t.files().unwrap() {
            let rows = t.read(std::slice::from_ref(&f)).await.unwrap();
            let bytes: i128 = rows
                .iter()
                .flat_map(|b| {
                    let c = b.column_by_name("bytes").unwrap();
                    let c = c.as_primitive::<arrow::datatypes::Decimal128Type>();
                    c.values().to_vec()
                })
                .sum();
            out.push((f.path.clone(), bytes));
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn repair_matches_summaries_to_the_flows_files_there_are() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::local(dir.path()).unwrap();
        let part = |h: &str| vec![("date", "2026-10-01".to_string()), ("hour", h.to_string())];
        // A segment writes flows files of two hours and one summary of its day.
        let mut seg = crate::segment::Segment::new("s1".into());
        let rows = flows_batch(&[(5, "eni-a", "endpoint", 10), (5, "eni-a", "endpoint", 5)]);
        seg.write(&wh, &FLOWS, &part("05"), &[rows]).await.unwrap();
        let rows = flows_batch(&[(6, "eni-a", "endpoint", 1)]);
        seg.write(&wh, &FLOWS, &part("06"), &[rows]).await.unwrap();
        seg.commit(&wh, &[]).await.unwrap();
        let before = summaries(&wh).await;
        assert_eq!(before.len(), 1, "{before:?}");
        assert_eq!(before[0].1, 16);
        assert_eq!(
            repair(&wh).await.unwrap(),
            Repaired::default(),
            "matching: nothing read or written"
        );
        // A rewrite of the hour-5 file whose summary commit never happened (a crash between).
        let flows = wh.table(&FLOWS).await.unwrap();
        let mut flows = flows.lock().await;
        flows.refresh().await.unwrap();
        let old: Vec<_> = flows
            .files()
            .unwrap()
            .into_iter()
            .filter(|f| f.path.contains("hour=05"))
            .collect();
        let name = crate::segment::rewritten_name(&old[0].path, "t1");
        let rows = flows_batch(&[(5, "eni-a", "endpoint", 7)]);
        let add = crate::table::write_file(&wh, &FLOWS, &part("05"), &name, &[rows])
            .await
            .unwrap();
        flows
            .commit(Change {
                adds: vec![add],
                removes: old,
                ..Default::default()
            })
            .await
            .unwrap();
        let names: Vec<String> = flows
            .files()
            .unwrap()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        drop(flows);
        let r = repair(&wh).await.unwrap();
        assert_eq!(
            r,
            Repaired {
                summed: 1,
                removed: 1
            }
        );
        let after = summaries(&wh).await;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(after.len(), 1);
        assert!(
            after[0]
                .0
                .ends_with(&crate::summaries::summary_name("s1", &names)),
            "{after:?}"
        );
        assert_eq!(after[0].1, 8, "the sums of the files there are now");
        // And a warehouse whose flow_hours is gone entirely gets it back the same.
        std::fs::remove_dir_all(dir.path().join("flow_hours")).unwrap();
        let wh = Warehouse::local(dir.path()).unwrap();
        let r = repair(&wh).await.unwrap();
        assert_eq!((r.summed, r.removed), (1, 0));
        assert_eq!(summaries(&wh).await, after);
    }

    #[test]
    fn folding_files_sums_equals_summing_their_rows_together() {
        let big = i64::MAX;
        let a = flows_batch(&[(5, "eni-b", "client", big), (5, "eni-a", "endpoint", 7)]);
        let b = flows_batch(&[(5, "eni-b", "client", big), (4, "eni-b", "client", 1)]);
        let c = flows_batch(&[(6, "eni-c", "client", 3)]);
        let whole = summarize(&[a.clone(), b.clone(), c.clone()], "t").unwrap();
        let each: Vec<RecordBatch> = [a, b, c]
            .iter()
            .map(|x| summarize(std::slice::from_ref(x), "t").unwrap())
            .collect();
        assert_eq!(each.iter().map(RecordBatch::num_rows).sum::<usize>(), 5);
        assert_eq!(
            merge(&each, "t").unwrap(),
            whole,
            "one row per key, same sums"
        );
        // Folding in steps (as a segment does while it writes) changes nothing either.
        let step = merge(&each[..2], "t").unwrap();
        assert_eq!(merge(&[step, each[2].clone()], "t").unwrap(), whole);
        let mut rows = each.clone();
        crate::summaries::PAIRS[0]
            .fold(&mut rows, true, "t")
            .unwrap();
        assert_eq!(rows, vec![whole]);
    }

    #[test]
    fn no_rows_sum_to_an_empty_batch() {
        let s = summarize(&[flows_batch(&[])], "t").unwrap();
        assert_eq!(s.num_rows(), 0);
        assert_eq!(s.schema(), FLOW_HOURS.schema());
    }
}
