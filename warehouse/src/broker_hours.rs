//! `broker_hours`: the byte datapoints of `broker_metrics` that the reconciliation reads,
//! summed per source file, hour, cluster, broker, topic, metric and source, written per
//! segment and day beside the `broker_metrics` files (see [`crate::summaries`]).
//!
//! A row sums the datapoints **of one file**, so that summing rows across files is exact only
//! when no two files hold the same datapoint (relays deliver at least once). Each row keeps the
//! span of its datapoints (`first_at`..`last_at`): rows of one key whose spans do not overlap
//! share no datapoint, and the reconciliation sums them; where spans overlap it reads those
//! hours' datapoints instead (`sql/views/reconciliation.sql`). Prometheus counters are kept as
//! the steps between consecutive scrapes inside the file (a smaller value is a restart and
//! counts from zero; a step over a gap of more than 15 minutes is left out), plus the first
//! and last scrape, so that the step across two files is taken at query time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};

use crate::registry::BROKER_HOURS;
use crate::Error;

/// The longest gap between two scrapes whose counter difference still counts (µs).
pub const MAX_SCRAPE_GAP_MICROS: i64 = 15 * 60 * 1_000_000;

/// (usage hour, cluster ARN, cluster name, broker, topic, metric, source).
type Key = (
    i64,
    String,
    Option<String>,
    i32,
    Option<String>,
    String,
    &'static str,
);

/// CloudWatch datapoints (period start, bytes) or Prometheus scrapes (period start, counter
/// bits), distinct, in time order.
type Points = BTreeSet<(i64, i64)>;

/// The `broker_hours` rows of some `broker_metrics` rows (one batch, sorted by key). `at`
/// names the rows' file in errors.
pub fn summarize(batches: &[RecordBatch], at: &str) -> Result<RecordBatch, Error> {
    let corrupt = |message: String| Error::Corrupt {
        path: at.to_string(),
        message,
    };
    let mut groups: BTreeMap<Key, Points> = BTreeMap::new();
    for b in batches {
        let col = |name: &str| {
            b.column_by_name(name)
                .ok_or_else(|| corrupt(format!("broker_metrics rows without column {name}")))
        };
        let text = |name: &str| -> Result<StringArray, Error> {
            col(name)?
                .as_string_opt::<i32>()
                .cloned()
                .ok_or_else(|| corrupt(format!("broker_metrics column {name} is not text")))
        };
        let time = |name: &str| -> Result<TimestampMicrosecondArray, Error> {
            col(name)?
                .as_primitive_opt::<TimestampMicrosecondType>()
                .cloned()
                .ok_or_else(|| corrupt(format!("broker_metrics column {name} is not a time")))
        };
        let (period, hour) = (time("period_start")?, time("usage_hour")?);
        let (arn, name, topic, metric) = (
            text("cluster_arn")?,
            text("cluster_name")?,
            text("topic")?,
            text("metric")?,
        );
        let broker = col("broker_id")?
            .as_primitive_opt::<Int32Type>()
            .cloned()
            .ok_or_else(|| corrupt("broker_metrics column broker_id is not Int32".into()))?;
        let counter = col("counter")?
            .as_primitive_opt::<Float64Type>()
            .cloned()
            .ok_or_else(|| corrupt("broker_metrics column counter is not Float64".into()))?;
        let bytes = col("bytes")?
            .as_primitive_opt::<Int64Type>()
            .cloned()
            .ok_or_else(|| corrupt("broker_metrics column bytes is not Int64".into()))?;
        let opt = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
        for i in 0..b.num_rows() {
            let m = metric.value(i);
            if !(m == "BytesInPerSec" || m == "BytesOutPerSec")
                || arn.is_null(i)
                || broker.is_null(i)
            {
                continue;
            }
            let (source, point) = if counter.is_valid(i) {
                ("prometheus", counter.value(i).to_bits() as i64)
            } else if bytes.is_valid(i) {
                ("cloudwatch", bytes.value(i))
            } else {
                continue;
            };
            let key = (
                hour.value(i),
                arn.value(i).to_string(),
                opt(&name, i),
                broker.value(i),
                opt(&topic, i),
                m.to_string(),
                source,
            );
            groups
                .entry(key)
                .or_default()
                .insert((period.value(i), point));
        }
    }
    Ok(rows(groups))
}

/// A counter value from its bits.
fn counter(bits: i64) -> f64 {
    f64::from_bits(bits as u64)
}

/// The bytes a Prometheus counter moved from `prev` to `next` scrape, as the reconciliation
/// counts them (`None`: the step is left out).
pub fn counter_step(prev: (i64, f64), next: (i64, f64)) -> Option<i64> {
    if next.0 - prev.0 > MAX_SCRAPE_GAP_MICROS {
        return None;
    }
    let step = if next.1 >= prev.1 {
        next.1 - prev.1
    } else {
        next.1
    };
    // As SQL's CAST(round(x) AS BIGINT): half away from zero, saturating.
    Some(step.round() as i64)
}

fn rows(groups: BTreeMap<Key, Points>) -> RecordBatch {
    let n = groups.len();
    let mut hour = Vec::with_capacity(n);
    let (mut arn, mut name, mut broker, mut topic, mut metric, mut source) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut steps, mut bytes, mut first_at, mut last_at) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut first_counter, mut last_counter) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for ((h, a, nm, b, t, m, s), points) in groups {
        let (first, last) = (
            *points.first().expect("a group has a point"),
            *points.last().expect("a group has a point"),
        );
        let (count, sum): (i64, i128) = if s == "prometheus" {
            let mut count = 0;
            let mut sum = 0i128;
            let mut prev: Option<(i64, f64)> = None;
            for &(at, bits) in &points {
                let next = (at, counter(bits));
                if let Some(step) = prev.and_then(|p| counter_step(p, next)) {
                    count += 1;
                    sum += i128::from(step);
                }
                prev = Some(next);
            }
            first_counter.push(Some(counter(first.1)));
            last_counter.push(Some(counter(last.1)));
            (count, sum)
        } else {
            first_counter.push(None);
            last_counter.push(None);
            let sum = points.iter().map(|p| i128::from(p.1)).sum();
            (points.len() as i64, sum)
        };
        hour.push(h);
        arn.push(a);
        name.push(nm);
        broker.push(b);
        topic.push(t);
        metric.push(m);
        source.push(s);
        steps.push(count);
        bytes.push(sum);
        first_at.push(first.0);
        last_at.push(last.0);
    }
    let ts = |v: Vec<i64>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
    };
    let columns: Vec<ArrayRef> = vec![
        ts(hour),
        Arc::new(StringArray::from(arn)),
        Arc::new(StringArray::from(name)),
        Arc::new(Int32Array::from(broker)),
        Arc::new(StringArray::from(topic)),
        Arc::new(StringArray::from(metric)),
        Arc::new(StringArray::from(source)),
        Arc::new(Int64Array::from(steps)),
        Arc::new(
            Decimal128Array::from(bytes)
                .with_precision_and_scale(38, 0)
                .expect("38, 0 is a valid decimal"),
        ),
        ts(first_at),
        ts(last_at),
        Arc::new(Float64Array::from(first_counter)),
        Arc::new(Float64Array::from(last_counter)),
    ];
    RecordBatch::try_new(BROKER_HOURS.schema(), columns).expect("columns match broker_hours")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Datapoints (minute, broker, bytes or counter) of one hour of cluster "c": the columns
    /// the summary reads.
    fn points(rows: &[(i64, i32, Option<i64>, Option<f64>)]) -> RecordBatch {
        let n = rows.len();
        let hour = 1_790_812_800_000_000i64;
        let ts = |v: Vec<i64>| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
        };
        let text = |v: Option<&str>| -> ArrayRef { Arc::new(StringArray::from(vec![v; n])) };
        RecordBatch::try_from_iter(vec![
            (
                "period_start",
                ts(rows.iter().map(|r| hour + r.0 * 60_000_000).collect()),
            ),
            ("usage_hour", ts(vec![hour; n])),
            ("cluster_arn", text(Some("arn:c"))),
            ("cluster_name", text(Some("c"))),
            ("topic", text(None)),
            ("metric", text(Some("BytesInPerSec"))),
            (
                "broker_id",
                Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1))) as ArrayRef,
            ),
            (
                "bytes",
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
            ),
            (
                "counter",
                Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.3))),
            ),
        ])
        .unwrap()
    }

    fn column<'a>(b: &'a RecordBatch, name: &str) -> &'a ArrayRef {
        b.column_by_name(name).unwrap()
    }

    #[test]
    fn datapoints_delivered_twice_in_a_file_count_once() {
        let b = points(&[
            (0, 1, Some(10), None),
            (1, 1, Some(20), None),
            (0, 1, Some(10), None),
        ]);
        let s = summarize(&[b], "t").unwrap();
        assert_eq!(s.num_rows(), 1);
        let bytes = column(&s, "bytes").as_primitive::<arrow::datatypes::Decimal128Type>();
        assert_eq!(bytes.value(0), 30);
        assert_eq!(column(&s, "steps").as_primitive::<Int64Type>().value(0), 2);
    }

    #[test]
    fn counter_steps_count_restarts_from_zero_and_leave_out_gaps() {
        // 100 → 150 (+50), restart → 30 (+30), then 20 minutes without a scrape → 90 (left
        // out), → 100 (+10).
        let b = points(&[
            (0, 2, None, Some(100.0)),
            (1, 2, None, Some(150.0)),
            (2, 2, None, Some(30.0)),
            (22, 2, None, Some(90.0)),
            (23, 2, None, Some(100.0)),
        ]);
        let s = summarize(&[b], "t").unwrap();
        assert_eq!(s.num_rows(), 1);
        let bytes = column(&s, "bytes").as_primitive::<arrow::datatypes::Decimal128Type>();
        assert_eq!(bytes.value(0), 90);
        assert_eq!(column(&s, "steps").as_primitive::<Int64Type>().value(0), 3);
        let first = column(&s, "first_counter").as_primitive::<Float64Type>();
        let last = column(&s, "last_counter").as_primitive::<Float64Type>();
        assert_eq!((first.value(0), last.value(0)), (100.0, 100.0));
        assert_eq!(
            counter_step((0, 5.0), (MAX_SCRAPE_GAP_MICROS, 7.0)),
            Some(2)
        );
        assert_eq!(
            counter_step((0, 5.0), (MAX_SCRAPE_GAP_MICROS + 1, 7.0)),
            None
        );
    }
}
