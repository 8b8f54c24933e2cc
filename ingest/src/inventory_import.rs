//! `inventory import`: builds the inventory from the JSON the AWS CLI prints, so nobody types
//! ENI lists by hand. Each file is recognized by its top-level key:
//!
//! | command | key |
//! |---|---|
//! | `kafka list-clusters-v2` / `describe-cluster-v2` | `ClusterInfoList` / `ClusterInfo` |
//! | `kafka list-vpc-connections` / `describe-vpc-connection` | `VpcConnections` / `VpcConnectionArn` |
//! | `ec2 describe-vpc-endpoints` | `VpcEndpoints` |
//! | `ec2 describe-network-interfaces` | `NetworkInterfaces` |
//! | `ec2 describe-subnets` (AZ ids) | `Subnets` |
//!
//! What AWS cannot say is merged from the inventory the user keeps: account names and cost
//! centers, when a scheme's connectivity was turned on and off, and when a connection was
//! deleted. A connection's endpoint is the interface endpoint in its VPC whose subnets are the
//! connection's (MSK creates it there); when that is ambiguous the hand-kept `endpoint_id`
//! decides, or the import says which to pick.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::Value;

use crate::inventory::{
    parse_arn, Account, AuthScheme, Cluster, Connection, Connectivity, Eni, Inventory,
};

/// Why an import cannot produce an inventory.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A file is not JSON, or not a shape the import knows.
    #[error("{path}: {message}")]
    Shape { path: String, message: String },
    /// The pieces do not fit together (each problem names its resource).
    #[error("the AWS JSON does not make a complete inventory:\n  - {}", .0.join("\n  - "))]
    Incomplete(Vec<String>),
}

/// What an import found, kept, and could not decide (shown to the user).
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Notes for the user: guesses made, entries kept from the hand-kept inventory.
    pub notes: Vec<String>,
}

/// Everything the JSON files held, by id.
#[derive(Default)]
struct Seen {
    clusters: BTreeMap<String, Value>,
    connections: BTreeMap<String, Value>,
    endpoints: BTreeMap<String, Value>,
    enis: BTreeMap<String, Value>,
    subnet_az: BTreeMap<String, String>,
    /// (owner account, AZ name) → AZ id: names differ between accounts, ids do not.
    az_name_to_id: BTreeMap<(String, String), String>,
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn arr<'a>(v: &'a Value, k: &str) -> impl Iterator<Item = &'a Value> {
    v.get(k).and_then(Value::as_array).into_iter().flatten()
}

/// The JSON files of `paths` (a directory means every `*.json` in it).
pub fn json_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ImportError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| ImportError::Read {
                path: p.display().to_string(),
                source: e,
            })?;
            let mut v: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "json"))
                .collect();
            v.sort();
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn collect(files: &[PathBuf]) -> Result<Seen, ImportError> {
    let mut seen = Seen::default();
    for f in files {
        let path = f.display().to_string();
        let text = std::fs::read_to_string(f).map_err(|e| ImportError::Read {
            path: path.clone(),
            source: e,
        })?;
        let v: Value = serde_json::from_str(&text).map_err(|e| ImportError::Shape {
            path: path.clone(),
            message: format!("not JSON ({e}); save the AWS CLI's output with --output json"),
        })?;
        let mut known = false;
        for c in arr(&v, "ClusterInfoList").chain(v.get("ClusterInfo")) {
            known = true;
            if let Some(a) = s(c, "ClusterArn") {
                seen.clusters.insert(a.to_string(), c.clone());
            }
        }
        for c in arr(&v, "VpcConnections").chain(v.get("VpcConnectionArn").map(|_| &v)) {
            known = true;
            if let Some(a) = s(c, "VpcConnectionArn") {
                // A describe output has the subnets a list output lacks: keep the richer one.
                let e = seen.connections.entry(a.to_string()).or_insert(c.clone());
                if e.get("Subnets").is_none() {
                    *e = c.clone();
                }
            }
        }
        for e in arr(&v, "VpcEndpoints") {
            known = true;
            if let Some(id) = s(e, "VpcEndpointId") {
                seen.endpoints.insert(id.to_string(), e.clone());
            }
        }
        for n in arr(&v, "NetworkInterfaces") {
            known = true;
            if let Some(id) = s(n, "NetworkInterfaceId") {
                seen.enis.insert(id.to_string(), n.clone());
            }
        }
        for sn in arr(&v, "Subnets") {
            known = true;
            if let (Some(id), Some(az)) = (s(sn, "SubnetId"), s(sn, "AvailabilityZoneId")) {
                seen.subnet_az.insert(id.to_string(), az.to_string());
            }
            if let (Some(o), Some(n), Some(az)) = (
                s(sn, "OwnerId"),
                s(sn, "AvailabilityZone"),
                s(sn, "AvailabilityZoneId"),
            ) {
                seen.az_name_to_id
                    .insert((o.to_string(), n.to_string()), az.to_string());
            }
        }
        if !known {
            let keys: Vec<&String> = v
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            return Err(ImportError::Shape {
                path,
                message: format!(
                    "not output of a command the import reads (top-level keys {keys:?}); use kafka list-clusters-v2, kafka list-vpc-connections / describe-vpc-connection, ec2 describe-vpc-endpoints, ec2 describe-network-interfaces, ec2 describe-subnets"
                ),
            });
        }
    }
    Ok(seen)
}

/// An AWS CLI time (`2026-10-01T12:00:00.123000+00:00`, or epoch seconds) as RFC 3339 UTC.
fn time(v: Option<&Value>) -> Option<String> {
    let t = match v? {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()?
            .with_timezone(&chrono::Utc),
        Value::Number(n) => chrono::DateTime::from_timestamp(n.as_f64()? as i64, 0)?,
        _ => return None,
    };
    Some(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn auth(s: &str) -> Option<AuthScheme> {
    match s {
        "SASL_IAM" => Some(AuthScheme::SaslIam),
        "SASL_SCRAM" => Some(AuthScheme::SaslScram),
        "TLS" => Some(AuthScheme::Tls),
        _ => None,
    }
}

/// The auth schemes a cluster has multi-VPC connectivity on for
/// (`…ConnectivityInfo.VpcConnectivity.ClientAuthentication`).
fn schemes(c: &Value) -> Vec<AuthScheme> {
    let ca = c
        .pointer("/Provisioned/BrokerNodeGroupInfo/ConnectivityInfo/VpcConnectivity/ClientAuthentication")
        .or_else(|| c.pointer("/BrokerNodeGroupInfo/ConnectivityInfo/VpcConnectivity/ClientAuthentication"));
    let Some(ca) = ca else { return Vec::new() };
    let on = |p: &str| ca.pointer(p).and_then(Value::as_bool) == Some(true);
    let mut v = Vec::new();
    if on("/Sasl/Iam/Enabled") {
        v.push(AuthScheme::SaslIam);
    }
    if on("/Sasl/Scram/Enabled") {
        v.push(AuthScheme::SaslScram);
    }
    if on("/Tls/Enabled") {
        v.push(AuthScheme::Tls);
    }
    v
}

/// Builds the inventory from AWS CLI JSON files, merged with the hand-kept one.
pub fn import(
    files: &[PathBuf],
    kept: Option<&Inventory>,
) -> Result<(Inventory, ImportReport), ImportError> {
    let seen = collect(files)?;
    let empty = Inventory::default();
    let mut im = Importer {
        seen: &seen,
        kept: kept.unwrap_or(&empty),
        report: ImportReport::default(),
        problems: Vec::new(),
        inv: Inventory::default(),
    };
    im.clusters();
    im.connections();
    im.accounts();
    if !im.problems.is_empty() {
        return Err(ImportError::Incomplete(im.problems));
    }
    Ok((im.inv, im.report))
}

/// The import in progress: what the JSON says, what the user keeps, and what came of it.
struct Importer<'a> {
    seen: &'a Seen,
    kept: &'a Inventory,
    report: ImportReport,
    /// What stops the import (all of them are reported together).
    problems: Vec<String>,
    inv: Inventory,
}

impl<'a> Importer<'a> {
    /// Clusters: the schemes AWS says are on; when each was turned on/off comes from the
    /// hand-kept inventory (AWS does not say), else the cluster's creation time.
    fn clusters(&mut self) {
        let mut imported = BTreeSet::new();
        let seen: &'a Seen = self.seen;
        for (arn, c) in &seen.clusters {
            imported.insert(arn.clone());
            let old = self.kept.clusters.iter().find(|k| &k.arn == arn);
            let connectivity = self.connectivity(arn, c, old);
            self.inv.clusters.push(Cluster {
                arn: arn.clone(),
                name: old.and_then(|o| o.name.clone()),
                connectivity,
            });
        }
        for k in &self.kept.clusters {
            if !imported.contains(&k.arn) {
                self.report.notes.push(format!(
                    "cluster {} kept from the kept inventory (not in the AWS JSON)",
                    k.arn
                ));
                self.inv.clusters.push(k.clone());
            }
        }
    }

    /// A cluster's connectivity periods per scheme.
    fn connectivity(&mut self, arn: &str, c: &Value, old: Option<&Cluster>) -> Vec<Connectivity> {
        let created = time(c.get("CreationTime"));
        let mut connectivity: Vec<Connectivity> = Vec::new();
        for sc in schemes(c) {
            let prior: Vec<Connectivity> = old
                .map(|o| {
                    o.connectivity
                        .iter()
                        .filter(|p| p.auth == sc)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            if !prior.is_empty() {
                if prior.iter().all(|p| p.off.is_some()) {
                    self.problems.push(format!("cluster {arn}: AWS says {sc} is on, but every period the kept inventory has for it is closed (`off`); add the period it was turned on again"));
                }
                connectivity.extend(prior);
                continue;
            }
            let Some(on) = created.clone() else {
                self.problems.push(format!("cluster {arn}: {sc} is on but neither CreationTime nor the kept inventory says since when; add `connectivity` to the kept inventory"));
                continue;
            };
            self.report.notes.push(format!(
                "cluster {arn}: {sc} connectivity taken as on since the cluster's creation ({on}); set the real time in the kept inventory if it was turned on later"
            ));
            connectivity.push(Connectivity {
                auth: sc,
                on,
                off: None,
            });
        }
        // Schemes turned off since: keep their history from the kept inventory.
        for p in old.map(|o| o.connectivity.as_slice()).unwrap_or_default() {
            if !connectivity.iter().any(|c| c.auth == p.auth) {
                if p.off.is_none() {
                    self.report.notes.push(format!(
                        "cluster {arn}: {} is off now but the kept inventory has no `off` time; set it",
                        p.auth
                    ));
                }
                connectivity.push(p.clone());
            }
        }
        connectivity
    }

    /// Connections, with their endpoint and its ENIs; kept ones AWS no longer lists stay.
    fn connections(&mut self) {
        let mut imported = BTreeSet::new();
        let seen: &'a Seen = self.seen;
        for (arn, c) in &seen.connections {
            imported.insert(arn.clone());
            if let Some(conn) = self.connection(arn, c) {
                self.inv.connections.push(conn);
            }
        }
        for k in &self.kept.connections {
            if !imported.contains(&k.arn) {
                if k.deleted.is_none() {
                    self.report.notes.push(format!("connection {} kept from the kept inventory but not in the AWS JSON: if it was deleted, set `deleted`", k.arn));
                }
                self.inv.connections.push(k.clone());
            }
        }
    }

    /// One connection, or `None` (with a problem or a note) when it cannot be imported.
    fn connection(&mut self, arn: &str, c: &Value) -> Option<Connection> {
        let old = self.kept.connections.iter().find(|k| k.arn == arn);
        let what = format!("connection {arn}");
        let Some(scheme) = s(c, "Authentication").and_then(auth) else {
            self.problems.push(format!(
                "{what}: Authentication is missing or not SASL_IAM, SASL_SCRAM or TLS"
            ));
            return None;
        };
        let (Some(cluster), Some(vpc)) = (s(c, "TargetClusterArn"), s(c, "VpcId")) else {
            self.problems
                .push(format!("{what}: TargetClusterArn or VpcId is missing"));
            return None;
        };
        let client_account = match parse_arn(arn) {
            Ok(a) => a.account,
            Err(e) => {
                self.problems.push(format!("{what}: {e}"));
                return None;
            }
        };
        let Some(created) = time(c.get("CreationTime")).or_else(|| old.map(|o| o.created.clone()))
        else {
            self.problems.push(format!("{what}: no CreationTime"));
            return None;
        };
        let endpoint = self.endpoint(&what, c, vpc, &client_account, old)?;
        let endpoint_id = s(endpoint, "VpcEndpointId").unwrap_or_default().to_string();
        let enis = self.enis(&what, endpoint, &endpoint_id);
        if let Some(st) = s(c, "State") {
            if matches!(
                st,
                "DELETING" | "INACTIVE" | "DEACTIVATING" | "REJECTED" | "FAILED"
            ) && old.and_then(|o| o.deleted.as_ref()).is_none()
            {
                self.report.notes.push(format!("{what} is {st}; set `deleted` in the kept inventory once you know when it stopped"));
            }
        }
        Some(Connection {
            arn: arn.to_string(),
            cluster: cluster.to_string(),
            auth: scheme,
            client_account,
            vpc_id: vpc.to_string(),
            endpoint_id,
            created,
            deleted: old.and_then(|o| o.deleted.clone()),
            enis,
        })
    }

    /// A connection's endpoint: the interface endpoint in its VPC with its subnets.
    fn endpoint(
        &mut self,
        what: &str,
        c: &Value,
        vpc: &str,
        client_account: &str,
        old: Option<&Connection>,
    ) -> Option<&'a Value> {
        let seen: &'a Seen = self.seen;
        let subnets: BTreeSet<&str> = arr(c, "Subnets")
            .chain(arr(c, "ClientSubnets"))
            .filter_map(Value::as_str)
            .collect();
        let candidates: Vec<&Value> = seen
            .endpoints
            .values()
            .filter(|e| {
                s(e, "VpcId") == Some(vpc)
                    && s(e, "VpcEndpointType").is_none_or(|t| t == "Interface")
                    && (subnets.is_empty()
                        || arr(e, "SubnetIds")
                            .filter_map(Value::as_str)
                            .collect::<BTreeSet<_>>()
                            == subnets)
            })
            .collect();
        // MSK's endpoints connect to a PrivateLink endpoint service (`….vpce-svc-…`), not to
        // an AWS service such as S3: prefer those when the VPC has both.
        let to_service: Vec<&Value> = candidates
            .iter()
            .copied()
            .filter(|e| s(e, "ServiceName").is_some_and(|n| n.contains(".vpce-svc-")))
            .collect();
        let candidates = if to_service.is_empty() {
            candidates
        } else {
            to_service
        };
        let kept_id = old.map(|o| o.endpoint_id.as_str());
        // A connection that is not (or no longer) available may have no endpoint at all: it is
        // kept as the kept inventory has it, or noted, never a reason to fail the import.
        let state = s(c, "State").unwrap_or("AVAILABLE");
        if candidates.is_empty() && kept_id.is_none() && state != "AVAILABLE" {
            self.report.notes.push(format!("{what} is {state} and has no endpoint in the JSON; left out (add it to the kept inventory if it carried traffic)"));
            return None;
        }
        match (candidates.as_slice(), kept_id) {
            (_, Some(id)) if seen.endpoints.contains_key(id) => Some(&seen.endpoints[id]),
            ([one], _) => Some(*one),
            ([], _) => {
                self.problems.push(format!("{what}: no interface endpoint in {vpc} with the connection's subnets among the describe-vpc-endpoints output (run it in the client account {client_account})"));
                None
            }
            (many, _) => {
                let ids: Vec<&str> = many.iter().filter_map(|e| s(e, "VpcEndpointId")).collect();
                self.problems.push(format!("{what}: several endpoints in {vpc} could be its own ({}); set endpoint_id for it in the kept inventory", ids.join(", ")));
                None
            }
        }
    }

    /// An endpoint's ENIs with their AZ ids and addresses.
    fn enis(&mut self, what: &str, endpoint: &Value, endpoint_id: &str) -> Vec<Eni> {
        let seen: &'a Seen = self.seen;
        let mut enis = Vec::new();
        for id in arr(endpoint, "NetworkInterfaceIds").filter_map(Value::as_str) {
            let Some(n) = seen.enis.get(id) else {
                self.problems.push(format!("{what}: endpoint {endpoint_id}'s ENI {id} is not in the describe-network-interfaces output"));
                continue;
            };
            let az_id = s(n, "AvailabilityZoneId")
                .map(str::to_string)
                .or_else(|| s(n, "SubnetId").and_then(|sn| seen.subnet_az.get(sn).cloned()))
                .or_else(|| {
                    let key = (
                        s(n, "OwnerId")?.to_string(),
                        s(n, "AvailabilityZone")?.to_string(),
                    );
                    seen.az_name_to_id.get(&key).cloned()
                });
            let Some(az_id) = az_id else {
                self.problems.push(format!("{what}: no Availability Zone id for ENI {id}; add the output of `ec2 describe-subnets` for its subnet"));
                continue;
            };
            let mut ips: Vec<IpAddr> = arr(n, "PrivateIpAddresses")
                .filter_map(|p| s(p, "PrivateIpAddress"))
                .chain(s(n, "PrivateIpAddress"))
                .filter_map(|ip| ip.parse().ok())
                .chain(
                    arr(n, "Ipv6Addresses")
                        .filter_map(|p| s(p, "Ipv6Address"))
                        .filter_map(|ip| ip.parse().ok()),
                )
                .collect();
            ips.sort();
            ips.dedup();
            enis.push(Eni {
                id: id.to_string(),
                az_id,
                ips,
            });
        }
        enis
    }

    /// Accounts: names and cost centers are the user's; new ones get their id as a name.
    fn accounts(&mut self) {
        self.inv.accounts = self.kept.accounts.clone();
        let mut ids: BTreeSet<String> = self
            .inv
            .connections
            .iter()
            .map(|c| c.client_account.clone())
            .collect();
        ids.extend(
            self.inv
                .clusters
                .iter()
                .filter_map(|c| parse_arn(&c.arn).ok().map(|a| a.account)),
        );
        for id in ids {
            if !self.inv.accounts.iter().any(|a| a.id == id) {
                self.report.notes.push(format!(
                    "account {id} has no name: add name and cost_center to the kept inventory"
                ));
                self.inv.accounts.push(Account {
                    id: id.clone(),
                    name: id,
                    cost_center: None,
                });
            }
        }
    }
}

/// The inventory as TOML, with a header saying where it came from.
pub fn to_toml(inv: &Inventory, sources: &[PathBuf]) -> String {
    let names: Vec<String> = sources
        .iter()
        .map(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    format!(
        "# Inventory written by `linkmeter inventory import` from {}.\n# Names, cost centers, connectivity times and deletions come from the kept inventory\n# (--merge); edit that file, not this one, and import again.\n\n{}",
        names.join(", "),
        toml::to_string(inv).unwrap_or_default()
    )
}
