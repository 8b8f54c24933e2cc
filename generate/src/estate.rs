//! The estate: three clusters, tens of tenants with one or two managed VPC connections each,
//! endpoint ENIs per AZ, client instances, and the few special cases the tests look for (a
//! connection deleted mid-period, a SKIPDATA hour).

use std::net::Ipv4Addr;

use linkmeter_ingest::hours::{hour_floor, HOUR};

use crate::records::{account_id, OWNER};
use crate::rng::Rng;
use crate::GenOptions;

pub(crate) const TEAMS: &[&str] = &[
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
pub(crate) enum Mode {
    Endpoint,
    Client,
    Both,
}

pub(crate) struct ClusterSpec {
    pub(crate) name: &'static str,
    pub(crate) schemes: &'static [&'static str],
    pub(crate) azs: &'static [&'static str],
    pub(crate) brokers: u16,
    pub(crate) uuid: String,
}

pub(crate) struct Conn {
    pub(crate) arn: String,
    pub(crate) account: usize,
    pub(crate) cluster: usize,
    pub(crate) auth: &'static str,
    pub(crate) vpc: String,
    pub(crate) endpoint: String,
    /// (eni id, az id, ip)
    pub(crate) enis: Vec<(String, &'static str, Ipv4Addr)>,
    /// (eni id, ip, index into enis of the endpoint ENI it uses)
    pub(crate) clients: Vec<(String, Ipv4Addr, usize)>,
    pub(crate) mode: Mode,
    pub(crate) created: i64,
    pub(crate) deleted: Option<i64>,
    pub(crate) produce_heavy: bool,
}

/// Everything about the estate that the traffic and the inventory are made from.
pub(crate) struct Estate {
    pub(crate) region: String,
    /// First hour, Unix seconds.
    pub(crate) start: i64,
    /// Hours of traffic.
    pub(crate) hours: i64,
    /// End of the last hour.
    pub(crate) end_t: i64,
    /// Client accounts.
    pub(crate) n_acc: usize,
    pub(crate) clusters: Vec<ClusterSpec>,
    pub(crate) conns: Vec<Conn>,
    /// The connection deleted mid-period, and when.
    pub(crate) deleted_conn: usize,
    pub(crate) deleted_at: i64,
    /// The connection, endpoint ENI and hour of the SKIPDATA window.
    pub(crate) skip_conn: usize,
    pub(crate) skip_eni: usize,
    pub(crate) skip_hour: i64,
}

impl Estate {
    /// The ARN of a cluster.
    pub(crate) fn cluster_arn(&self, c: &ClusterSpec) -> String {
        format!(
            "arn:aws:kafka:{}:{OWNER}:cluster/{}/{}-{}-4a1e-9c1d-{}-{}",
            self.region,
            c.name,
            c.uuid,
            &c.uuid[..4],
            &c.uuid[4..],
            c.uuid
        )
    }
}

fn clusters(rng: &mut Rng, region: &str) -> Vec<ClusterSpec> {
    let azp = match region {
        "us-east-1" => "use1",
        "us-west-2" => "usw2",
        "eu-west-1" => "euw1",
        _ => "az",
    };
    let az = |n: u8| -> &'static str { Box::leak(format!("{azp}-az{n}").into_boxed_str()) };
    vec![
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
    ]
}

/// Connections: every account one, every fourth a second one to another cluster.
fn connections(
    rng: &mut Rng,
    o: &GenOptions,
    clusters: &[ClusterSpec],
    n_acc: usize,
    start: i64,
) -> Vec<Conn> {
    let region = o.region.as_str();
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
    conns
}

/// Builds the estate (the random numbers it draws come first, in a fixed order).
pub(crate) fn build(o: &GenOptions, rng: &mut Rng) -> Estate {
    let start = hour_floor(o.start);
    let hours = o.days.max(1) as i64 * 24;
    let end_t = start + hours * HOUR;
    let clusters = clusters(rng, &o.region);
    let n_acc = o.accounts.clamp(2, TEAMS.len() * 4);
    let mut conns = connections(rng, o, &clusters, n_acc, start);
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
    Estate {
        region: o.region.clone(),
        start,
        hours,
        end_t,
        n_acc,
        clusters,
        conns,
        deleted_conn,
        deleted_at,
        skip_conn,
        skip_eni,
        skip_hour,
    }
}
