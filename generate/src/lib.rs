//! A synthetic but realistic estate: clusters, tenants, endpoints, client instances, MSK and
//! noise traffic as VPC Flow Log files laid out like AWS's S3 delivery, plus the ground truth
//! of the bytes put on each connection per hour, so ingest can be checked exactly.
//!
//! What the estate contains (all deterministic from the seed):
//! - 3 clusters in one region with all three auth schemes between them, 2–3 AZs each;
//! - tens of client accounts, some with two connections; private IPs repeat across VPCs;
//! - per connection 1–3 client instances; flow logs on the endpoint ENIs, on the client
//!   instances, or on both (the observation-point rule decides what counts);
//! - traffic in 10-minute aggregation windows, some crossing clock-hour boundaries;
//! - noise on other ports (HTTPS, PostgreSQL, DNS, in-VPC Kafka on 9092…);
//! - REJECTed, wrong-port and unregistered-endpoint records (unattributed, never billed);
//! - one connection deleted mid-period, with stale client records after it (outside lifetime);
//! - a SKIPDATA hour on one endpoint ENI (its client-side records then count), NODATA rows;
//! - a few malformed lines (quarantined).
//!
//! The ground truth counts each logical flow once, split across hours with the same rule as
//! ingest (`linkmeter_ingest::hours::split_hours`, itself property-tested), so the equality is
//! exact. It is a tool for the demo, the tests and the benchmarks, not part of ingest.

mod bill;
mod estate;
mod files;
mod metrics;
mod outputs;
mod records;
mod rng;
mod traffic;

use std::path::Path;

use linkmeter_ingest::hours::HOUR;

use crate::rng::Rng;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// PRNG seed; the same seed gives the same files.
    pub seed: u64,
    /// First hour (Unix seconds, rounded down to the hour).
    pub start: i64,
    /// Number of days of traffic.
    pub days: u32,
    /// Client accounts (tenants).
    pub accounts: usize,
    /// Client instances per connection (scales MSK traffic).
    pub instances: usize,
    /// Noise records per MSK record (scales filtered traffic).
    pub noise: u32,
    /// Region of the clusters.
    pub region: String,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            seed: 42,
            start: 1_790_812_800, // 2026-10-01T00:00:00Z
            days: 3,
            accounts: 24,
            instances: 2,
            noise: 4,
            region: "us-east-1".into(),
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GenSummary {
    /// Flow-log files written.
    pub files: u64,
    /// Data lines written (every record, coverage row and malformed line).
    pub lines: u64,
    /// Records on MSK private connectivity, both observation points.
    pub msk_records: u64,
    /// Records of other traffic.
    pub noise_records: u64,
    /// Records that must end up unattributed (rejected, wrong port, unknown endpoint, stale).
    pub unattributed_records: u64,
    /// NODATA and SKIPDATA rows.
    pub coverage_rows: u64,
    /// Malformed lines (must be quarantined).
    pub malformed_lines: u64,
    /// Connections in the inventory.
    pub connections: u64,
    /// Sum of the ground truth's bytes.
    pub truth_bytes: u64,
    /// Broker-metric datapoints written (CloudWatch Metric Streams JSON under `metrics/`).
    pub metric_points: u64,
    /// The bill's planted differences (`bill/`), which `reconcile` must find.
    pub planted: bill::Planted,
}

/// Writes the estate into `dir`: `inventory.toml`, `linkmeter.toml`, `flowlogs/…`,
/// `metrics/…`, `bill/…` (CUR 2.0 and FOCUS exports), `ground_truth.csv` and `generated.toml`.
pub fn generate(dir: &Path, o: &GenOptions) -> std::io::Result<GenSummary> {
    let mut rng = Rng(o.seed ^ 0x6c69_6e6b_6d65_7465);
    let e = estate::build(o, &mut rng);
    let mut t = traffic::Traffic::new(&e);
    t.stale_clients();
    t.skipdata();
    t.malformed();
    // Files are gzipped and written on a second thread while traffic is generated; every
    // record of hour h ends in hour h or h + 1, so hours up to h are done after it.
    let writer = files::Writer::start(&dir.join("flowlogs"), &e.region, o.seed);
    let mut failed = None;
    for h in 0..e.hours {
        t.hour(h, &mut rng, o.noise);
        let done = t.take_before(e.start + (h + 1) * HOUR);
        if let Err(err) = writer.queue(done, &mut t.sum) {
            failed = Some(err);
            break;
        }
    }
    let queued = match failed {
        Some(err) => Err(err),
        None => writer.queue(std::mem::take(&mut t.files), &mut t.sum),
    };
    // The writer's own error is the cause of a failed send, so it is reported first.
    writer.finish()?;
    queued?;
    let mut sum = t.sum;
    // A generator of its own, so that adding metrics changed nothing else of the estate.
    let mut mrng = Rng(o.seed ^ 0x6d65_7472_6963);
    sum.metric_points = metrics::write_metrics(
        dir,
        o,
        &e.clusters,
        &t.per_broker,
        e.start,
        e.end_t,
        &mut mrng,
    )?;
    outputs::write_inventory(dir, &e)?;
    outputs::write_truth(dir, &t.truth)?;
    sum.planted = bill::write_bill(dir, &e, &t.truth)?;
    outputs::write_config(dir)?;
    std::fs::write(
        dir.join("generated.toml"),
        toml::to_string(&sum).unwrap_or_default(),
    )?;
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkmeter_ingest::inventory::Inventory;

    #[test]
    fn small_estate_is_valid_and_deterministic() {
        let o = GenOptions {
            days: 1,
            accounts: 6,
            noise: 1,
            ..Default::default()
        };
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let s1 = generate(d1.path(), &o).unwrap();
        let s2 = generate(d2.path(), &o).unwrap();
        assert_eq!(s1.lines, s2.lines);
        assert_eq!(
            std::fs::read(d1.path().join("ground_truth.csv")).unwrap(),
            std::fs::read(d2.path().join("ground_truth.csv")).unwrap()
        );
        let ix = Inventory::load(&d1.path().join("inventory.toml")).unwrap();
        assert_eq!(ix.conns.len() as u64, s1.connections);
        assert!(ix.conns.iter().any(|c| c.deleted.is_some()));
        let schemes: std::collections::BTreeSet<_> = ix.conns.iter().map(|c| c.auth).collect();
        assert!(schemes.len() >= 2, "{schemes:?}");
        assert_eq!(s1.malformed_lines, 6);
        assert!(s1.msk_records > 0 && s1.noise_records > s1.msk_records / 2);
    }
}
