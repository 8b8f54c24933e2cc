//! The inventory (`inventory.toml`, DESIGN §3): accounts, clusters with their connectivity
//! per auth scheme, and managed VPC connections with their endpoint ENIs. Loaded once,
//! validated as a whole (every problem reported together, each naming its entry), then
//! indexed for attribution.

use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod lookup;

/// Why an inventory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The file could not be read.
    #[error("cannot read inventory {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for the inventory schema.
    #[error("inventory {path} is not valid: {message}")]
    Parse { path: String, message: String },
    /// The file parsed but its entries contradict each other or the rules.
    #[error("inventory {path} has {} problem(s):\n  - {}\nFix these entries and run again.", problems.len(), problems.join("\n  - "))]
    Invalid { path: String, problems: Vec<String> },
}

/// An MSK client authentication scheme that multi-VPC connectivity can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum AuthScheme {
    /// IAM access control (SASL/OAUTHBEARER with AWS_MSK_IAM).
    #[serde(rename = "SASL_IAM")]
    SaslIam,
    /// SASL/SCRAM-SHA-512.
    #[serde(rename = "SASL_SCRAM")]
    SaslScram,
    /// Mutual TLS.
    #[serde(rename = "TLS")]
    Tls,
}

impl AuthScheme {
    /// The name AWS uses (`SASL_IAM`, `SASL_SCRAM`, `TLS`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthScheme::SaslIam => "SASL_IAM",
            AuthScheme::SaslScram => "SASL_SCRAM",
            AuthScheme::Tls => "TLS",
        }
    }
}

impl fmt::Display for AuthScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The inventory file as written by a user or `linkmeter generate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// AWS accounts that own clusters or connections.
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// MSK clusters with multi-VPC private connectivity.
    #[serde(default)]
    pub clusters: Vec<Cluster>,
    /// Managed VPC connections (one per cluster, auth scheme and client VPC).
    #[serde(default)]
    pub connections: Vec<Connection>,
}

/// An AWS account and who pays for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// 12-digit account id.
    pub id: String,
    /// Human name shown on invoices.
    pub name: String,
    /// Cost center finance books the account's charges to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_center: Option<String>,
}

/// An MSK cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Cluster ARN (`arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID`).
    pub arn: String,
    /// Short name; defaults to the name in the ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When multi-VPC connectivity was on, per auth scheme.
    #[serde(default)]
    pub connectivity: Vec<Connectivity>,
}

/// One period in which an auth scheme's multi-VPC connectivity was turned on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connectivity {
    /// The auth scheme.
    pub auth: AuthScheme,
    /// When it was turned on (RFC 3339, UTC).
    pub on: String,
    /// When it was turned off, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off: Option<String>,
}

/// A managed VPC connection from a client VPC to a cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// VPC connection ARN (`arn:aws:kafka:REGION:ACCOUNT:vpc-connection/...`).
    pub arn: String,
    /// The target cluster, by ARN or name.
    pub cluster: String,
    /// The connection's single auth scheme.
    pub auth: AuthScheme,
    /// The client account that owns the connection and its endpoint.
    pub client_account: String,
    /// The client VPC.
    pub vpc_id: String,
    /// The interface VPC endpoint id (`vpce-…`).
    pub endpoint_id: String,
    /// When the connection was created (RFC 3339, UTC).
    pub created: String,
    /// When it was deleted, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<String>,
    /// The endpoint's network interfaces, one per Availability Zone.
    #[serde(default)]
    pub enis: Vec<Eni>,
}

/// An endpoint network interface in one Availability Zone.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eni {
    /// ENI id (`eni-…`).
    pub id: String,
    /// Availability Zone id (`use1-az1`), the same across accounts unlike AZ names.
    pub az_id: String,
    /// Private IP addresses of the ENI in the client VPC.
    pub ips: Vec<IpAddr>,
}

/// A connection resolved against its cluster, with times as Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub arn: String,
    pub cluster_arn: String,
    pub cluster_name: String,
    pub region: String,
    pub cluster_owner: String,
    pub auth: AuthScheme,
    pub client_account: String,
    pub vpc_id: String,
    pub endpoint_id: String,
    pub created: i64,
    pub deleted: Option<i64>,
}

/// An endpoint ENI with the index of its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EniInfo {
    pub id: String,
    pub az_id: String,
    pub ips: Vec<IpAddr>,
    pub conn: usize,
}

/// The validated inventory, indexed for attribution.
#[derive(Debug, Clone, Default)]
pub struct Index {
    /// The inventory as loaded (for the warehouse's inventory tables).
    pub inventory: Inventory,
    /// Connections, resolved.
    pub conns: Vec<ConnInfo>,
    /// Endpoint ENIs.
    pub enis: Vec<EniInfo>,
    /// Hash of the inventory's text (names the warehouse's inventory tables).
    pub hash: u64,
    /// Hash of what attribution reads (clusters and connections, not account names or cost
    /// centers, which are joined at invoice time): rows attributed under another are stale.
    pub attribution: u64,
    by_eni: FxHashMap<String, usize>,
    by_vpc_ip: FxHashMap<String, FxHashMap<IpAddr, usize>>,
    by_account_ip: FxHashMap<String, FxHashMap<IpAddr, Vec<usize>>>,
    by_ip: FxHashMap<IpAddr, Vec<usize>>,
    regions: FxHashSet<String>,
}

/// Result of looking an IP address up within a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpMatch {
    /// Not an endpoint ENI address in this scope.
    None,
    /// Exactly one endpoint ENI.
    One(usize),
    /// Several endpoint ENIs share the address and the scope cannot tell them apart.
    Ambiguous,
}

/// Parses an RFC 3339 time into Unix seconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc).timestamp())
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2026-10-01T00:00:00Z ({e})"))
}

/// The parts of an MSK ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn {
    pub region: String,
    pub account: String,
    /// Resource type (`cluster`, `vpc-connection`).
    pub kind: String,
    /// Everything after the resource type.
    pub rest: String,
}

/// Parses `arn:PARTITION:kafka:REGION:ACCOUNT:KIND/...`.
pub fn parse_arn(s: &str) -> Result<Arn, String> {
    let bad = |why: &str| {
        format!("{s:?} is not an MSK ARN ({why}); expected arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID")
    };
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" {
        return Err(bad("not six ':'-separated parts starting with arn"));
    }
    if !parts[1].starts_with("aws") {
        return Err(bad("unknown partition"));
    }
    if parts[2] != "kafka" {
        return Err(bad("service is not kafka"));
    }
    if parts[3].is_empty()
        || !parts[3]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad("bad region"));
    }
    if !is_account_id(parts[4]) {
        return Err(bad("account is not 12 digits"));
    }
    let (kind, rest) = parts[5]
        .split_once('/')
        .ok_or_else(|| bad("no resource path"))?;
    if rest.is_empty() {
        return Err(bad("empty resource path"));
    }
    Ok(Arn {
        region: parts[3].into(),
        account: parts[4].into(),
        kind: kind.into(),
        rest: rest.into(),
    })
}

/// Whether `s` is a 12-digit AWS account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

impl Inventory {
    /// Reads and validates an inventory file.
    pub fn load(path: &Path) -> Result<Index, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates inventory TOML; `name` is used in errors.
    pub fn from_toml(text: &str, name: &str) -> Result<Index, InventoryError> {
        let inv: Inventory = toml::from_str(text).map_err(|e| InventoryError::Parse {
            path: name.to_string(),
            message: e.to_string(),
        })?;
        let mut index = inv.index().map_err(|problems| InventoryError::Invalid {
            path: name.to_string(),
            problems,
        })?;
        index.hash = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
        Ok(index)
    }

    /// Validates the whole inventory and builds the attribution index; every problem found is
    /// returned, each naming its entry.
    pub fn index(self) -> Result<Index, Vec<String>> {
        let mut p: Vec<String> = Vec::new();
        let accounts = account_ids(&self.accounts, &mut p);
        let clusters = cluster_specs(&self.clusters, &mut p);
        let mut index = Index::default();
        let mut conn_arns = HashSet::new();
        for c in &self.connections {
            if !conn_arns.insert(c.arn.as_str()) {
                p.push(format!("connection {}: listed twice", c.arn));
            }
            index_connection(&mut index, c, &clusters, &accounts, &mut p);
        }
        if !p.is_empty() {
            return Err(p);
        }
        let attributed = serde_json::to_vec(&(&self.clusters, &self.connections))
            .expect("inventory types serialize");
        index.attribution = xxhash_rust::xxh3::xxh3_64(&attributed);
        index.inventory = self;
        Ok(index)
    }
}

/// The account ids, checked (12 digits, each once).
fn account_ids<'a>(list: &'a [Account], p: &mut Vec<String>) -> HashSet<&'a str> {
    let mut accounts = HashSet::new();
    for a in list {
        if !is_account_id(&a.id) {
            p.push(format!("account {:?}: id is not 12 digits", a.id));
        }
        if !accounts.insert(a.id.as_str()) {
            p.push(format!("account {}: listed twice", a.id));
        }
    }
    accounts
}

/// A cluster as connections need it: its ARN parts and the schemes turned on, when.
struct C {
    arn: String,
    name: String,
    region: String,
    owner: String,
    schemes: Vec<(AuthScheme, i64, Option<i64>)>,
}

/// The clusters, checked (ARNs, connectivity times).
fn cluster_specs(list: &[Cluster], p: &mut Vec<String>) -> Vec<C> {
    let mut clusters: Vec<C> = Vec::new();
    for c in list {
        let arn = match parse_arn(&c.arn) {
            Ok(a) if a.kind == "cluster" => a,
            Ok(_) => {
                p.push(format!("cluster {}: the ARN is not a cluster ARN", c.arn));
                continue;
            }
            Err(e) => {
                p.push(format!("cluster {}: {e}", c.arn));
                continue;
            }
        };
        let name = c
            .name
            .clone()
            .unwrap_or_else(|| arn.rest.split('/').next().unwrap_or("").to_string());
        if clusters.iter().any(|o| o.arn == c.arn) {
            p.push(format!("cluster {}: listed twice", c.arn));
        }
        let mut schemes = Vec::new();
        for k in &c.connectivity {
            let on = parse_time(&k.on)
                .map_err(|e| p.push(format!("cluster {name}, {} on: {e}", k.auth)))
                .ok();
            let off = k
                .off
                .as_deref()
                .map(parse_time)
                .transpose()
                .map_err(|e| p.push(format!("cluster {name}, {} off: {e}", k.auth)))
                .ok()
                .flatten();
            if let (Some(on), Some(off)) = (on, off) {
                if off <= on {
                    p.push(format!(
                        "cluster {name}: {} is turned off ({}) before it is turned on ({})",
                        k.auth,
                        k.off.as_deref().unwrap_or(""),
                        k.on
                    ));
                }
            }
            if let Some(on) = on {
                schemes.push((k.auth, on, off));
            }
        }
        clusters.push(C {
            arn: c.arn.clone(),
            name,
            region: arn.region,
            owner: arn.account,
            schemes,
        });
    }

    clusters
}

/// Checks a connection and adds it, with its ENIs and their addresses, to the index.
fn index_connection(
    index: &mut Index,
    c: &Connection,
    clusters: &[C],
    accounts: &HashSet<&str>,
    p: &mut Vec<String>,
) {
    let who = format!("connection {}", c.arn);
    match parse_arn(&c.arn) {
        Ok(a) if a.kind == "vpc-connection" => {}
        Ok(_) => p.push(format!("{who}: the ARN is not a vpc-connection ARN")),
        Err(e) => p.push(format!("{who}: {e}")),
    }
    let cluster = clusters
        .iter()
        .find(|k| k.arn == c.cluster || k.name == c.cluster);
    let Some(cluster) = cluster else {
        p.push(format!(
            "{who}: cluster {:?} is not in [[clusters]]",
            c.cluster
        ));
        return;
    };
    if !cluster.schemes.iter().any(|(a, _, _)| *a == c.auth) {
        p.push(format!("{who}: auth scheme {} is not turned on for cluster {} (add it to that cluster's connectivity)", c.auth, cluster.name));
    }
    if !accounts.contains(c.client_account.as_str()) {
        p.push(format!(
            "{who}: client account {:?} is not in [[accounts]]",
            c.client_account
        ));
    }
    if !c.endpoint_id.starts_with("vpce-") {
        p.push(format!(
            "{who}: endpoint_id {:?} is not a VPC endpoint id (vpce-…)",
            c.endpoint_id
        ));
    }
    if !c.vpc_id.starts_with("vpc-") {
        p.push(format!(
            "{who}: vpc_id {:?} is not a VPC id (vpc-…)",
            c.vpc_id
        ));
    }
    let created = parse_time(&c.created)
        .map_err(|e| p.push(format!("{who}: created: {e}")))
        .ok();
    let deleted = c
        .deleted
        .as_deref()
        .map(parse_time)
        .transpose()
        .map_err(|e| p.push(format!("{who}: deleted: {e}")))
        .ok()
        .flatten();
    if let (Some(cr), Some(de)) = (created, deleted) {
        if de < cr {
            p.push(format!(
                "{who}: deleted ({}) before it was created ({})",
                c.deleted.as_deref().unwrap_or(""),
                c.created
            ));
        }
    }
    let conn = index.conns.len();
    index.conns.push(ConnInfo {
        arn: c.arn.clone(),
        cluster_arn: cluster.arn.clone(),
        cluster_name: cluster.name.clone(),
        region: cluster.region.clone(),
        cluster_owner: cluster.owner.clone(),
        auth: c.auth,
        client_account: c.client_account.clone(),
        vpc_id: c.vpc_id.clone(),
        endpoint_id: c.endpoint_id.clone(),
        created: created.unwrap_or(0),
        deleted,
    });
    index.regions.insert(cluster.region.clone());
    index_enis(index, c, conn, p);
}

/// Adds a connection's ENIs to the index; an ENI or an IP within a VPC listed twice is a
/// problem.
fn index_enis(index: &mut Index, c: &Connection, conn: usize, p: &mut Vec<String>) {
    let who = format!("connection {}", c.arn);
    for e in &c.enis {
        if !e.id.starts_with("eni-") {
            p.push(format!("{who}: ENI {:?} is not an ENI id (eni-…)", e.id));
        }
        if e.az_id.is_empty() {
            p.push(format!("{who}: ENI {} has no az_id", e.id));
        }
        let eni = index.enis.len();
        if let Some(&other) = index.by_eni.get(&e.id) {
            p.push(format!(
                "{who}: ENI {} is also listed under connection {}",
                e.id, index.conns[index.enis[other].conn].arn
            ));
        }
        index.by_eni.insert(e.id.clone(), eni);
        for ip in &e.ips {
            let vpc = index.by_vpc_ip.entry(c.vpc_id.clone()).or_default();
            if let Some(&other) = vpc.get(ip) {
                p.push(format!(
                    "{who}: IP {ip} of ENI {} is also used by ENI {} in VPC {}",
                    e.id, index.enis[other].id, c.vpc_id
                ));
            }
            vpc.insert(*ip, eni);
            index
                .by_account_ip
                .entry(c.client_account.clone())
                .or_default()
                .entry(*ip)
                .or_default()
                .push(eni);
            index.by_ip.entry(*ip).or_default().push(eni);
        }
        index.enis.push(EniInfo {
            id: e.id.clone(),
            az_id: e.az_id.clone(),
            ips: e.ips.clone(),
            conn,
        });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SAMPLE: &str = r#"
[[accounts]]
id = "999999999999"
name = "platform"
cost_center = "CC-1"
[[accounts]]
id = "111111111111"
name = "payments"
[[accounts]]
id = "222222222222"
name = "search"

[[clusters]]
arn = "arn:aws:kafka:us-east-1:999999999999:cluster/shared-a/0f1e2d3c-1"
connectivity = [
  { auth = "SASL_IAM", on = "2026-01-01T00:00:00Z" },
  { auth = "TLS", on = "2026-01-01T00:00:00Z", off = "2026-12-01T00:00:00Z" },
]

[[connections]]
arn = "arn:aws:kafka:us-east-1:111111111111:vpc-connection/999999999999/shared-a/aaaa"
cluster = "shared-a"
auth = "SASL_IAM"
client_account = "111111111111"
vpc_id = "vpc-111"
endpoint_id = "vpce-111"
created = "2026-01-02T00:00:00Z"
enis = [
  { id = "eni-1a", az_id = "use1-az1", ips = ["10.0.1.10"] },
  { id = "eni-1b", az_id = "use1-az2", ips = ["10.0.2.10"] },
]

[[connections]]
arn = "arn:aws:kafka:us-east-1:222222222222:vpc-connection/999999999999/shared-a/bbbb"
cluster = "arn:aws:kafka:us-east-1:999999999999:cluster/shared-a/0f1e2d3c-1"
auth = "TLS"
client_account = "222222222222"
vpc_id = "vpc-222"
endpoint_id = "vpce-222"
created = "2026-01-02T00:00:00Z"
deleted = "2026-10-15T10:20:00Z"
enis = [
  { id = "eni-2a", az_id = "use1-az1", ips = ["10.0.1.10"] },
]
"#;

    #[test]
    fn sample_loads_and_indexes() {
        let ix = Inventory::from_toml(SAMPLE, "t").unwrap();
        assert_eq!(ix.conns.len(), 2);
        assert_eq!(ix.conns[0].cluster_name, "shared-a");
        assert_eq!(ix.conns[0].region, "us-east-1");
        assert_eq!(
            ix.conns[1].deleted,
            Some(parse_time("2026-10-15T10:20:00Z").unwrap())
        );
        assert_eq!(ix.eni_by_id("eni-1b"), Some(1));
        let ip: IpAddr = "10.0.1.10".parse().unwrap();
        // The same private IP in two VPCs: only a scope tells them apart.
        assert_eq!(ix.eni_by_ip(&ip, Some("vpc-222"), None), IpMatch::One(2));
        assert_eq!(
            ix.eni_by_ip(&ip, None, Some("111111111111")),
            IpMatch::One(0)
        );
        assert_eq!(
            ix.eni_by_ip(&ip, None, None),
            IpMatch::None,
            "no scope, no match"
        );
        assert_eq!(ix.eni_by_ip(&ip, Some("vpc-999"), None), IpMatch::None);
        assert!(ix.has_region("us-east-1") && !ix.has_region("eu-west-1"));
    }

    fn problems(text: &str) -> String {
        match Inventory::from_toml(text, "inv.toml") {
            Err(e) => e.to_string(),
            Ok(_) => panic!("expected an error for:\n{text}"),
        }
    }

    #[test]
    fn each_rule_names_its_entry() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "ips = [\"10.0.2.10\"] }",
                "ips = [\"10.0.1.10\"] }",
                "IP 10.0.1.10 of ENI eni-1b is also used by ENI eni-1a in VPC vpc-111",
            ),
            (
                "id = \"eni-2a\"",
                "id = \"eni-1a\"",
                "ENI eni-1a is also listed under connection",
            ),
            (
                "cluster = \"shared-a\"",
                "cluster = \"shared-b\"",
                "cluster \"shared-b\" is not in [[clusters]]",
            ),
            (
                "auth = \"SASL_IAM\"\nclient",
                "auth = \"SASL_SCRAM\"\nclient",
                "auth scheme SASL_SCRAM is not turned on for cluster shared-a",
            ),
            (
                "deleted = \"2026-10-15T10:20:00Z\"",
                "deleted = \"2025-10-15T10:20:00Z\"",
                "deleted (2025-10-15T10:20:00Z) before it was created",
            ),
            (
                "cluster/shared-a/0f1e2d3c-1\"\nconn",
                "cluster-shared-a\"\nconn",
                "is not an MSK ARN",
            ),
            (
                "created = \"2026-01-02T00:00:00Z\"\nenis",
                "created = \"yesterday\"\nenis",
                "created: \"yesterday\" is not an RFC 3339 time",
            ),
            (
                "client_account = \"222222222222\"",
                "client_account = \"333333333333\"",
                "client account \"333333333333\" is not in [[accounts]]",
            ),
        ];
        for (from, to, want) in cases {
            assert!(SAMPLE.contains(from), "fixture lacks {from:?}");
            let msg = problems(&SAMPLE.replacen(from, to, 1));
            assert!(msg.contains(want), "want {want:?} in:\n{msg}");
            assert!(msg.contains("inv.toml"), "{msg}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let msg = problems(&SAMPLE.replace(
            "name = \"payments\"",
            "name = \"payments\"\ncolour = \"red\"",
        ));
        assert!(msg.contains("unknown field `colour`"), "{msg}");
    }

    #[test]
    fn several_problems_are_reported_together() {
        let text = SAMPLE.replace("created = \"2026-01-02T00:00:00Z\"", "created = \"nope\"");
        let msg = problems(&text);
        assert!(msg.contains("2 problem(s)"), "{msg}");
    }
}
