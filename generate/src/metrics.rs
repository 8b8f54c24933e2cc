//! Broker metrics consistent with the flow logs: CloudWatch Metric Streams JSON made from the
//! same per-broker bytes, scaled by the share of Kafka payload in IP bytes and of private
//! connectivity in each broker's traffic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use linkmeter_ingest::hours::HOUR;

use crate::estate::ClusterSpec;
use crate::records::OWNER;
use crate::rng::Rng;
use crate::GenOptions;

/// Kafka payload bytes per flow-log (IP) byte on private connectivity: headers and TLS
/// records make flow logs count a few percent more than the brokers do.
const KAFKA_PER_IP_BYTE: f64 = 0.94;
/// Share of each broker's client traffic that comes through multi-VPC private connectivity
/// (the rest comes from clients inside the cluster's own VPC, which flow logs on the endpoint
/// and tenant ENIs never see).
const PRIVATE_SHARE: f64 = 0.8;
/// Topics the per-topic datapoints split a broker's bytes over, with their shares.
const TOPICS: [(&str, f64); 2] = [("orders", 0.7), ("audit", 0.3)];

/// Writes CloudWatch Metric Streams JSON (gzip, one object per hour, Firehose's key layout)
/// for every broker: per minute, `BytesInPerSec`/`BytesOutPerSec` per broker and per topic,
/// and `ReplicationBytesInPerSec`. Returns the datapoints written.
pub(crate) fn write_metrics(
    dir: &Path,
    o: &GenOptions,
    clusters: &[ClusterSpec],
    per_broker: &BTreeMap<(i64, usize, u16, &'static str), u64>,
    start: i64,
    end_t: i64,
    rng: &mut Rng,
) -> std::io::Result<u64> {
    let root = dir.join("metrics");
    let mut points = 0u64;
    let mut hour = start;
    // Flows that end after the last hour put bytes into the next one; brokers saw them too.
    let last = per_broker
        .keys()
        .map(|k| k.0 + HOUR)
        .max()
        .unwrap_or(end_t)
        .max(end_t);
    while hour < last {
        let mut out = String::new();
        for (ci, c) in clusters.iter().enumerate() {
            for b in 1..=c.brokers {
                // A steady ratio with a little hour-to-hour wobble (±2 %), as real traffic has.
                let wobble = 1.0 + (rng.below(41) as f64 - 20.0) / 1000.0;
                for (dir_, metric) in [
                    ("to_cluster", "BytesInPerSec"),
                    ("from_cluster", "BytesOutPerSec"),
                ] {
                    let private = per_broker.get(&(hour, ci, b, dir_)).copied().unwrap_or(0);
                    let kafka = private as f64 * KAFKA_PER_IP_BYTE / PRIVATE_SHARE * wobble;
                    for m in 0..60 {
                        let t = hour + m * 60;
                        let rate = kafka / 3600.0;
                        let mut line = |topic: Option<&str>, metric: &str, rate: f64| {
                            let topic = topic
                                .map(|t| format!(",\"Topic\":\"{t}\""))
                                .unwrap_or_default();
                            let _ = writeln!(
                                out,
                                "{{\"metric_stream_name\":\"msk-metrics\",\"account_id\":\"{OWNER}\",\"region\":\"{}\",\"namespace\":\"AWS/Kafka\",\"metric_name\":\"{metric}\",\"dimensions\":{{\"Cluster Name\":\"{}\",\"Broker ID\":\"{b}\"{topic}}},\"timestamp\":{},\"value\":{{\"count\":1.0,\"sum\":{rate},\"max\":{rate},\"min\":{rate}}},\"unit\":\"Bytes/Second\"}}",
                                o.region,
                                c.name,
                                t * 1000
                            );
                            points += 1;
                        };
                        line(None, metric, rate);
                        for (topic, share) in TOPICS {
                            line(Some(topic), metric, rate * share);
                        }
                        if dir_ == "to_cluster" {
                            line(None, "ReplicationBytesInPerSec", rate * 2.0);
                        }
                    }
                }
            }
        }
        let t = DateTime::<Utc>::from_timestamp(hour, 0).unwrap_or_default();
        let d = root.join(t.format("%Y/%m/%d/%H").to_string());
        std::fs::create_dir_all(&d)?;
        let name = format!(
            "msk-metrics-1-{}-{}.gz",
            t.format("%Y-%m-%d-%H-%M-%S"),
            rng.hex(8)
        );
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(d.join(name))?,
            flate2::Compression::fast(),
        );
        gz.write_all(out.as_bytes())?;
        gz.finish()?;
        hour += HOUR;
    }
    Ok(points)
}
