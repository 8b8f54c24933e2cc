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
//! ingest (`hours::split_hours`, itself property-tested), so the equality is exact.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::hours::{hour_floor, split_hours, HOUR};

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
}

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
fn write_metrics(
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

/// SplitMix64: tiny, fast, and good enough for synthetic data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn hex(&mut self, n: usize) -> String {
        let mut s = String::new();
        while s.len() < n {
            let _ = write!(s, "{:016x}", self.next());
        }
        s.truncate(n);
        s
    }
}

const TEAMS: &[&str] = &[
    "payments",
    "search",
    "checkout",
    "ledger",
    "fraud",
    "identity",
    "ads",
    "analytics",
    "ml-platform",
    "notifications",
    "inventory",
    "shipping",
    "pricing",
    "catalog",
    "reviews",
    "messaging",
    "billing",
    "risk",
    "reporting",
    "data-lake",
    "mobile-api",
    "web",
    "partner-api",
    "observability",
    "recommendations",
    "loyalty",
    "support",
    "warehouse-ops",
    "returns",
    "tax",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Endpoint,
    Client,
    Both,
}

struct ClusterSpec {
    name: &'static str,
    schemes: &'static [&'static str],
    azs: &'static [&'static str],
    brokers: u16,
    uuid: String,
}

struct Conn {
    arn: String,
    account: usize,
    cluster: usize,
    auth: &'static str,
    vpc: String,
    endpoint: String,
    /// (eni id, az id, ip)
    enis: Vec<(String, &'static str, Ipv4Addr)>,
    /// (eni id, ip, index into enis of the endpoint ENI it uses)
    clients: Vec<(String, Ipv4Addr, usize)>,
    mode: Mode,
    created: i64,
    deleted: Option<i64>,
    produce_heavy: bool,
}

/// One line to write into an account's hourly file.
struct Line {
    end: i64,
    text: String,
}

/// One account's hourly flow-log file, handed to the writer thread.
struct FileJob {
    hour: i64,
    account: usize,
    lines: Vec<Line>,
}

/// Even-numbered accounts deliver a custom log format (v5 fields); odd ones the default.
fn custom_format(account: usize) -> bool {
    account % 2 == 0
}

/// Hands finished files to the writer thread, counting them.
fn queue_files(
    tx: &std::sync::mpsc::SyncSender<FileJob>,
    files: BTreeMap<(i64, usize), Vec<Line>>,
    sum: &mut GenSummary,
) -> std::io::Result<()> {
    for ((hour, account), lines) in files {
        sum.files += 1;
        sum.lines += lines.len() as u64;
        tx.send(FileJob {
            hour,
            account,
            lines,
        })
        .map_err(|_| std::io::Error::other("the flow-log writer thread stopped"))?;
    }
    Ok(())
}

/// Writes one hourly file the way AWS lays out S3 delivery, gzipped, lines in end-time order.
fn write_file(root: &Path, region: &str, names: &mut Rng, job: FileJob) -> std::io::Result<()> {
    let FileJob {
        hour,
        account: a,
        mut lines,
    } = job;
    lines.sort_by_key(|l| l.end);
    let t = DateTime::<Utc>::from_timestamp(hour, 0).unwrap_or_default();
    let acct = account_id(a);
    let sub = root.join(format!(
        "AWSLogs/{acct}/vpcflowlogs/{region}/{}",
        t.format("%Y/%m/%d")
    ));
    std::fs::create_dir_all(&sub)?;
    let name = format!(
        "{acct}_vpcflowlogs_{region}_fl-{:017x}_{}_{}.log.gz",
        a as u64 * 7 + 0xabc,
        t.format("%Y%m%dT%H%MZ"),
        names.hex(8)
    );
    let mut gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::with_capacity(1 << 16, std::fs::File::create(sub.join(name))?),
        flate2::Compression::default(),
    );
    gz.write_all(
        if custom_format(a) {
            CUSTOM_HEADER
        } else {
            V2_HEADER
        }
        .as_bytes(),
    )?;
    gz.write_all(b"\n")?;
    for l in &lines {
        gz.write_all(l.text.as_bytes())?;
        gz.write_all(b"\n")?;
    }
    gz.finish()?.flush()
}

fn account_id(i: usize) -> String {
    format!("{:012}", 210_000_000_000u64 + i as u64 * 1_010_101)
}

const OWNER: &str = "900000000001";

fn iso(t: i64) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Fields of one record, written in the account's header order.
struct Rec<'a> {
    account: &'a str,
    iface: &'a str,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    proto: u8,
    packets: u64,
    bytes: u64,
    start: i64,
    end: i64,
    action: &'a str,
    vpc: &'a str,
    az: &'a str,
}

const V2_HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
const CUSTOM_HEADER: &str = "version vpc-id az-id interface-id account-id srcaddr dstaddr srcport dstport protocol bytes packets start end action tcp-flags region log-status";

fn fmt_rec(custom: bool, r: &Rec<'_>, region: &str) -> String {
    if custom {
        format!(
            "5 {} {} {} {} {} {} {} {} {} {} {} {} {} {} 19 {} OK",
            r.vpc,
            r.az,
            r.iface,
            r.account,
            r.src,
            r.dst,
            r.sport,
            r.dport,
            r.proto,
            r.bytes,
            r.packets,
            r.start,
            r.end,
            r.action,
            region
        )
    } else {
        format!(
            "2 {} {} {} {} {} {} {} {} {} {} {} {} OK",
            r.account,
            r.iface,
            r.src,
            r.dst,
            r.sport,
            r.dport,
            r.proto,
            r.packets,
            r.bytes,
            r.start,
            r.end,
            r.action
        )
    }
}

// A private formatting helper called from three places; a struct would only rename the list.
#[allow(clippy::too_many_arguments)]
fn fmt_coverage(
    custom: bool,
    account: &str,
    iface: &str,
    vpc: &str,
    az: &str,
    start: i64,
    end: i64,
    status: &str,
    region: &str,
) -> String {
    if custom {
        format!("5 {vpc} {az} {iface} {account} - - - - - - - {start} {end} - - {region} {status}")
    } else {
        format!("2 {account} {iface} - - - - - - - {start} {end} - {status}")
    }
}

/// Writes the estate into `dir`: `inventory.toml`, `linkmeter.toml`, `flowlogs/…`,
/// `ground_truth.csv` and `generated.toml`.
pub fn generate(dir: &Path, o: &GenOptions) -> std::io::Result<GenSummary> {
    let mut rng = Rng(o.seed ^ 0x6c69_6e6b_6d65_7465);
    let start = hour_floor(o.start);
    let hours = o.days.max(1) as i64 * 24;
    let end_t = start + hours * HOUR;
    let region = o.region.as_str();
    let azp = match region {
        "us-east-1" => "use1",
        "us-west-2" => "usw2",
        "eu-west-1" => "euw1",
        _ => "az",
    };
    let az = |n: u8| -> &'static str { Box::leak(format!("{azp}-az{n}").into_boxed_str()) };
    let clusters = vec![
        ClusterSpec {
            name: "orders-prod",
            schemes: &["SASL_IAM", "SASL_SCRAM", "TLS"],
            azs: vec![az(1), az(2), az(4)].leak(),
            brokers: 3,
            uuid: rng.hex(8),
        },
        ClusterSpec {
            name: "events-prod",
            schemes: &["SASL_IAM", "TLS"],
            azs: vec![az(1), az(2), az(4)].leak(),
            brokers: 6,
            uuid: rng.hex(8),
        },
        ClusterSpec {
            name: "analytics-prod",
            schemes: &["SASL_SCRAM"],
            azs: vec![az(1), az(2)].leak(),
            brokers: 4,
            uuid: rng.hex(8),
        },
    ];
    let cluster_arn = |c: &ClusterSpec| {
        format!(
            "arn:aws:kafka:{region}:{OWNER}:cluster/{}/{}-{}-4a1e-9c1d-{}-{}",
            c.name,
            c.uuid,
            &c.uuid[..4],
            &c.uuid[4..],
            c.uuid
        )
    };
    let n_acc = o.accounts.clamp(2, TEAMS.len() * 4);

    // Connections: every account one, every fourth a second one to another cluster.
    let mut conns: Vec<Conn> = Vec::new();
    for a in 0..n_acc {
        let n_conn = if a % 4 == 1 { 2 } else { 1 };
        let vpc = format!("vpc-{}", rng.hex(17));
        // Several VPCs share a CIDR, so endpoint IPs repeat across VPCs like real estates.
        let net = (a % 6) as u8;
        for k in 0..n_conn {
            let ci = (a + k * 2) % clusters.len();
            let c = &clusters[ci];
            let auth = c.schemes[(a / 3 + k) % c.schemes.len()];
            let enis: Vec<_> = c
                .azs
                .iter()
                .enumerate()
                .map(|(zi, z)| {
                    (
                        format!("eni-{}", rng.hex(17)),
                        *z,
                        Ipv4Addr::new(10, net, 16 * zi as u8 + 1, 10 + 5 * k as u8),
                    )
                })
                .collect();
            let n_inst = o.instances.max(1) + (a % 2);
            let clients = (0..n_inst)
                .map(|i| {
                    let zi = i % enis.len();
                    (
                        format!("eni-{}", rng.hex(17)),
                        Ipv4Addr::new(10, net, 100 + zi as u8, 20 + (k * 16 + i) as u8),
                        zi,
                    )
                })
                .collect();
            let mode = match conns.len() % 4 {
                0 | 2 => Mode::Both,
                1 => Mode::Endpoint,
                _ => Mode::Client,
            };
            conns.push(Conn {
                arn: format!(
                    "arn:aws:kafka:{region}:{}:vpc-connection/{OWNER}/{}/{}",
                    account_id(a),
                    c.name,
                    rng.hex(12)
                ),
                account: a,
                cluster: ci,
                auth,
                vpc: vpc.clone(),
                endpoint: format!("vpce-{}", rng.hex(17)),
                enis,
                clients,
                mode,
                created: start - 20 * 86_400,
                deleted: None,
                produce_heavy: rng.chance(0.5),
            });
        }
    }
    // One connection (endpoint-observed) is deleted mid-period at HH:20.
    let deleted_conn = conns.iter().position(|c| c.mode == Mode::Both).unwrap_or(0);
    let deleted_at = start + (hours / 2 / 24) * 86_400 + 10 * HOUR + 20 * 60;
    let deleted_at = deleted_at.min(end_t - HOUR + 20 * 60);
    conns[deleted_conn].deleted = Some(deleted_at);
    // One SKIPDATA hour on an endpoint ENI of a both-observed connection.
    let skip_conn = conns
        .iter()
        .rposition(|c| c.mode == Mode::Both)
        .unwrap_or(0);
    let skip_eni = conns[skip_conn].clients[0].2;
    let skip_hour = start + (hours / 3) * HOUR + 5 * HOUR;

    // Per (hour, account) file: lines. Keyed hour-first so that finished hours can be split off
    // and written while later hours are generated: memory stays one or two hours of lines.
    let mut files: BTreeMap<(i64, usize), Vec<Line>> = BTreeMap::new();
    let mut truth: BTreeMap<(i64, String, &'static str), u64> = BTreeMap::new();
    // Private-connectivity bytes per (hour, cluster, broker, direction): the brokers' metrics
    // are made from these, so flow logs and metrics agree (up to the ratio of IP to Kafka bytes).
    let mut per_broker: BTreeMap<(i64, usize, u16, &'static str), u64> = BTreeMap::new();
    let mut sum = GenSummary {
        connections: conns.len() as u64,
        ..Default::default()
    };
    let custom_of = custom_format;
    let push = |files: &mut BTreeMap<(i64, usize), Vec<Line>>, a: usize, end: i64, text: String| {
        files
            .entry((hour_floor(end), a))
            .or_default()
            .push(Line { end, text });
    };

    // Stale clients keep trying the deleted connection (seen on their own ENIs).
    {
        let c = &conns[deleted_conn];
        let (ceni, cip, ei) = &c.clients[0];
        let (_, eaz, eip) = &c.enis[*ei];
        let acct = account_id(c.account);
        let mut t = deleted_at + 40 * 60;
        for _ in 0..5 {
            if t + 30 >= end_t {
                break;
            }
            push(
                &mut files,
                c.account,
                t + 30,
                fmt_rec(
                    custom_of(c.account),
                    &Rec {
                        account: &acct,
                        iface: ceni,
                        src: *cip,
                        dst: *eip,
                        sport: 47000,
                        dport: 14001,
                        proto: 6,
                        packets: 5,
                        bytes: 900,
                        start: t,
                        end: t + 30,
                        action: "ACCEPT",
                        vpc: &c.vpc,
                        az: eaz,
                    },
                    region,
                ),
            );
            sum.unattributed_records += 1;
            t += 1800;
        }
    }
    // The SKIPDATA window.
    {
        let c = &conns[skip_conn];
        let (eeni, eaz, _) = &c.enis[skip_eni];
        push(
            &mut files,
            c.account,
            skip_hour + HOUR - 1,
            fmt_coverage(
                custom_of(c.account),
                "unknown",
                eeni,
                &c.vpc,
                eaz,
                skip_hour,
                skip_hour + HOUR - 1,
                "SKIPDATA",
                region,
            ),
        );
        sum.coverage_rows += 1;
    }
    // Malformed lines, spread over a few files of accounts with the default format.
    let malformed = [
        "2 123456789012 eni-0badbadbadbadbad0 10.1.1.1 10.1.1.2 443",
        "2 123456789012 eni-0badbadbadbadbad0 10.1.1.1 10.1.1.2 443 14001 6 10 12x 1790812800 1790812860 ACCEPT OK",
        "2 123456789012 eni-0badbadbadbadbad0 10.1.1.1 10.1.1.2 443 14001 6 10 99999999999999999999999 1790812800 1790812860 ACCEPT OK",
        "2 123456789012 eni-0badbadbadbadbad0 10.1.1.1 10.1.1.2 443 14001 6 10 100 1790812900 1790812860 ACCEPT OK",
        "2 123456789012 eni-0badbadbadbadbad0 10.1.1.1 10.1.300.2 443 14001 6 10 100 1790812800 1790812860 ACCEPT OK",
        "<html><body>AccessDenied</body></html>",
    ];
    let plain_accounts: Vec<usize> = (0..n_acc).filter(|a| !custom_of(*a)).collect();
    for (i, m) in malformed.iter().enumerate() {
        let a = plain_accounts[(i * 13) % plain_accounts.len()];
        let hour = start + ((i as i64 * 7919) % hours) * HOUR;
        push(&mut files, a, hour + HOUR - 1, m.to_string());
        sum.malformed_lines += 1;
    }

    // Files are gzipped and written on a second thread while traffic is generated.
    let fl_root = dir.join("flowlogs");
    let (tx, rx) = std::sync::mpsc::sync_channel::<FileJob>(4);
    let writer = {
        let region = region.to_string();
        let mut names = Rng(o.seed ^ 0x6e61_6d65_7321);
        std::thread::spawn(move || -> std::io::Result<()> {
            for job in rx {
                write_file(&fl_root, &region, &mut names, job)?;
            }
            Ok(())
        })
    };

    let mut failed = None;
    for h in 0..hours {
        let hour = start + h * HOUR;
        for c in &conns {
            let acct = account_id(c.account);
            let custom = custom_of(c.account);
            let brokers = clusters[c.cluster].brokers;
            let alive = |t: i64| c.deleted.is_none_or(|d| t < d);
            let near_skip = |eni: usize| {
                c.enis.len() > eni
                    && std::ptr::eq(c, &conns[skip_conn])
                    && eni == skip_eni
                    && (hour - skip_hour).abs() <= HOUR
            };
            for (ci, (ceni, cip, ei)) in c.clients.iter().enumerate() {
                let (eeni, eaz, eip) = &c.enis[*ei];
                for b in 1..=brokers {
                    // Each client keeps a connection to a few brokers, not all of them.
                    if (b as usize + ci) % 2 == 1 && brokers > 3 {
                        continue;
                    }
                    let port = 14000 + b;
                    let cport = 40000 + (rng.below(20000) as u16);
                    for w in 0..6 {
                        let jitter = if near_skip(*ei) {
                            0
                        } else {
                            rng.below(300) as i64
                        };
                        let s = hour + w * 600 + jitter;
                        let len = rng.range(30, 599) as i64;
                        let mut e = s + len;
                        if near_skip(*ei) {
                            e = e.min(hour + HOUR - 1);
                        }
                        if !alive(e) {
                            continue;
                        }
                        let heavy = if c.produce_heavy { 1 } else { 0 };
                        for (dir, (src, dst, sp, dp)) in [
                            ("to_cluster", (*cip, *eip, cport, port)),
                            ("from_cluster", (*eip, *cip, port, cport)),
                        ] {
                            let big = (dir == "to_cluster") == (heavy == 1);
                            let bytes = if big {
                                rng.range(200_000, 40_000_000)
                            } else {
                                rng.range(2_000, 400_000)
                            };
                            let packets = (bytes / 1200).max(1) + rng.below(10);
                            split_hours(s, e, bytes, packets, |sh| {
                                *truth.entry((sh.hour, c.arn.clone(), dir)).or_default() +=
                                    sh.bytes;
                                *per_broker.entry((sh.hour, c.cluster, b, dir)).or_default() +=
                                    sh.bytes;
                            });
                            sum.truth_bytes += bytes;
                            let r = |iface: &str, account: &str| -> String {
                                fmt_rec(
                                    custom,
                                    &Rec {
                                        account,
                                        iface,
                                        src,
                                        dst,
                                        sport: sp,
                                        dport: dp,
                                        proto: 6,
                                        packets,
                                        bytes,
                                        start: s,
                                        end: e,
                                        action: "ACCEPT",
                                        vpc: &c.vpc,
                                        az: eaz,
                                    },
                                    region,
                                )
                            };
                            let skip_here = near_skip(*ei) && hour_floor(s) == skip_hour;
                            if matches!(c.mode, Mode::Endpoint | Mode::Both) && !skip_here {
                                push(&mut files, c.account, e, r(eeni, "unknown"));
                                sum.msk_records += 1;
                            }
                            if matches!(c.mode, Mode::Client | Mode::Both) {
                                push(&mut files, c.account, e, r(ceni, &acct));
                                sum.msk_records += 1;
                            }
                        }
                        // Noise from the same client instance.
                        for _ in 0..o.noise * 2 {
                            let (port, proto) = [
                                (443u16, 6u8),
                                (5432, 6),
                                (6379, 6),
                                (53, 17),
                                (9092, 6),
                                (22, 6),
                                (8080, 6),
                            ][rng.below(7) as usize];
                            let other = Ipv4Addr::new(
                                10,
                                200 + rng.below(50) as u8,
                                rng.below(250) as u8,
                                1 + rng.below(250) as u8,
                            );
                            let bytes = rng.range(40, 2_000_000);
                            let ns = hour + rng.below(3000) as i64;
                            let ne = ns + rng.range(1, 599) as i64;
                            let out = rng.chance(0.5);
                            let (src, dst, sp, dp) = if out {
                                (*cip, other, 30000 + rng.below(30000) as u16, port)
                            } else {
                                (other, *cip, port, 30000 + rng.below(30000) as u16)
                            };
                            let line = fmt_rec(
                                custom,
                                &Rec {
                                    account: &acct,
                                    iface: ceni,
                                    src,
                                    dst,
                                    sport: sp,
                                    dport: dp,
                                    proto,
                                    packets: bytes / 1000 + 1,
                                    bytes,
                                    start: ns,
                                    end: ne,
                                    action: if rng.chance(0.02) { "REJECT" } else { "ACCEPT" },
                                    vpc: &c.vpc,
                                    az: eaz,
                                },
                                region,
                            );
                            push(&mut files, c.account, ne, line);
                            sum.noise_records += 1;
                        }
                    }
                }
            }
            // Idle endpoint ENIs (an AZ with no client) log NODATA each hour.
            if matches!(c.mode, Mode::Endpoint | Mode::Both) {
                for (ei, (eeni, eaz, _)) in c.enis.iter().enumerate() {
                    if !c.clients.iter().any(|cl| cl.2 == ei)
                        && c.deleted.is_none_or(|d| hour + HOUR <= d)
                    {
                        push(
                            &mut files,
                            c.account,
                            hour + 599,
                            fmt_coverage(
                                custom,
                                "unknown",
                                eeni,
                                &c.vpc,
                                eaz,
                                hour,
                                hour + 599,
                                "NODATA",
                                region,
                            ),
                        );
                        sum.coverage_rows += 1;
                    }
                }
            }
            // Traffic that must stay unattributed, a little of it every few hours.
            if h % 5 == (c.account as i64) % 5 && c.deleted.is_none_or(|d| hour + HOUR <= d) {
                let (ceni, cip, ei) = &c.clients[0];
                let (_, eaz, eip) = &c.enis[*ei];
                let s = hour + 1800 + rng.below(600) as i64;
                let e = s + 60;
                let planted = |dst: Ipv4Addr,
                               sport: u16,
                               dport: u16,
                               packets: u64,
                               bytes: u64,
                               action: &str| {
                    let r = Rec {
                        account: &acct,
                        iface: ceni,
                        src: *cip,
                        dst,
                        sport,
                        dport,
                        proto: 6,
                        packets,
                        bytes,
                        start: s,
                        end: e,
                        action,
                        vpc: &c.vpc,
                        az: eaz,
                    };
                    fmt_rec(custom, &r, region)
                };
                // A security group blocks a client: REJECT (seen from the client side).
                push(
                    &mut files,
                    c.account,
                    e,
                    planted(*eip, 45000, 14001, 3, 180, "REJECT"),
                );
                // Someone points a client at the IAM listener port through the endpoint.
                push(
                    &mut files,
                    c.account,
                    e,
                    planted(*eip, 45001, 9098, 4, 240, "ACCEPT"),
                );
                // An endpoint nobody registered in the inventory.
                push(
                    &mut files,
                    c.account,
                    e,
                    planted(
                        Ipv4Addr::new(10, 250, 1, 77),
                        45002,
                        14002,
                        40,
                        52_000,
                        "ACCEPT",
                    ),
                );
                sum.unattributed_records += 3;
            }
        }
        // Every record generated for hour h ends in hour h or h + 1, so hours up to h are done.
        let later = files.split_off(&(hour + HOUR, 0));
        let done = std::mem::replace(&mut files, later);
        if let Err(e) = queue_files(&tx, done, &mut sum) {
            failed = Some(e);
            break;
        }
    }
    let queued = match failed {
        Some(e) => Err(e),
        None => queue_files(&tx, std::mem::take(&mut files), &mut sum),
    };
    drop(tx);
    // The writer's own error is the cause of a failed send, so it is reported first.
    writer
        .join()
        .map_err(|_| std::io::Error::other("the flow-log writer thread panicked"))??;
    queued?;

    // A generator of its own, so that adding metrics changed nothing else of the estate.
    let mut mrng = Rng(o.seed ^ 0x6d65_7472_6963);
    sum.metric_points = write_metrics(dir, o, &clusters, &per_broker, start, end_t, &mut mrng)?;

    // Inventory.
    let mut inv =
        String::from("# Inventory written by `linkmeter generate` (synthetic estate).\n\n");
    let _ = writeln!(
        inv,
        "[[accounts]]\nid = \"{OWNER}\"\nname = \"platform\"\ncost_center = \"CC-100\"\n"
    );
    for a in 0..n_acc {
        let team = TEAMS[a % TEAMS.len()];
        let name = if a < TEAMS.len() {
            team.to_string()
        } else {
            format!("{team}-{}", a / TEAMS.len() + 1)
        };
        let _ = writeln!(
            inv,
            "[[accounts]]\nid = \"{}\"\nname = \"{name}\"\ncost_center = \"CC-{}\"\n",
            account_id(a),
            200 + a * 10 % 90
        );
    }
    for c in &clusters {
        let _ = writeln!(
            inv,
            "[[clusters]]\narn = \"{}\"\nconnectivity = [",
            cluster_arn(c)
        );
        for s in c.schemes {
            let _ = writeln!(
                inv,
                "  {{ auth = \"{s}\", on = \"{}\" }},",
                iso(start - 30 * 86_400)
            );
        }
        let _ = writeln!(inv, "]\n");
    }
    for c in &conns {
        let _ = writeln!(
            inv,
            "[[connections]]\narn = \"{}\"\ncluster = \"{}\"\nauth = \"{}\"\nclient_account = \"{}\"\nvpc_id = \"{}\"\nendpoint_id = \"{}\"\ncreated = \"{}\"",
            c.arn, clusters[c.cluster].name, c.auth, account_id(c.account), c.vpc, c.endpoint, iso(c.created)
        );
        if let Some(d) = c.deleted {
            let _ = writeln!(inv, "deleted = \"{}\"", iso(d));
        }
        let _ = writeln!(inv, "enis = [");
        for (id, z, ip) in &c.enis {
            let _ = writeln!(
                inv,
                "  {{ id = \"{id}\", az_id = \"{z}\", ips = [\"{ip}\"] }},"
            );
        }
        let _ = writeln!(inv, "]\n");
    }
    std::fs::write(dir.join("inventory.toml"), inv)?;

    // Ground truth.
    let mut csv = String::from("hour,connection_arn,direction,bytes\n");
    for ((hour, arn, dir), bytes) in &truth {
        let _ = writeln!(csv, "{},{arn},{dir},{bytes}", iso(*hour));
    }
    std::fs::write(dir.join("ground_truth.csv"), csv)?;

    let cfg = "# linkmeter configuration written by `linkmeter generate`.\n\
               # Paths are relative to this file.\n\
               warehouse = \"warehouse\"\n\
               inventory = \"inventory.toml\"\n\
               prices = \"prices.toml\"\n\n\
               [[sources]]\n\
               name = \"flowlogs\"\n\
               uri = \"flowlogs\"\n\n\
               [[sources]]\n\
               name = \"metrics\"\n\
               uri = \"metrics\"\n";
    std::fs::write(dir.join("linkmeter.toml"), cfg)?;
    std::fs::write(
        dir.join("generated.toml"),
        toml::to_string(&sum).unwrap_or_default(),
    )?;
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;

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
