//! What the estate is, in the files a user keeps: the inventory (written through the same
//! serde types ingest reads it with), the ground truth, and a config that runs it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use linkmeter_ingest::inventory::{Account, Cluster, Connection, Connectivity, Eni, Inventory};

use crate::estate::{Estate, TEAMS};
use crate::records::{account_id, iso, OWNER};

fn auth(s: &str) -> linkmeter_ingest::inventory::AuthScheme {
    serde::Deserialize::deserialize(toml::Value::String(s.to_string()))
        .expect("the generator names only MSK's auth schemes")
}

/// `inventory.toml`: the owner, every tenant with a name and cost center, the clusters with
/// connectivity on a month before the traffic starts, and every connection with its ENIs.
pub(crate) fn write_inventory(dir: &Path, e: &Estate) -> std::io::Result<()> {
    let mut inv = Inventory::default();
    inv.accounts.push(Account {
        id: OWNER.into(),
        name: "platform".into(),
        cost_center: Some("CC-100".into()),
    });
    for a in 0..e.n_acc {
        let team = TEAMS[a % TEAMS.len()];
        let name = match a < TEAMS.len() {
            true => team.to_string(),
            false => format!("{team}-{}", a / TEAMS.len() + 1),
        };
        inv.accounts.push(Account {
            id: account_id(a),
            name,
            cost_center: Some(format!("CC-{}", 200 + a * 10 % 90)),
        });
    }
    for c in &e.clusters {
        inv.clusters.push(Cluster {
            arn: e.cluster_arn(c),
            name: None,
            connectivity: c
                .schemes
                .iter()
                .map(|s| Connectivity {
                    auth: auth(s),
                    on: iso(e.start - 30 * 86_400),
                    off: None,
                })
                .collect(),
        });
    }
    for c in &e.conns {
        inv.connections.push(Connection {
            arn: c.arn.clone(),
            cluster: e.clusters[c.cluster].name.into(),
            auth: auth(c.auth),
            client_account: account_id(c.account),
            vpc_id: c.vpc.clone(),
            endpoint_id: c.endpoint.clone(),
            created: iso(c.created),
            deleted: c.deleted.map(iso),
            enis: c
                .enis
                .iter()
                .map(|(id, z, ip)| Eni {
                    id: id.clone(),
                    az_id: z.to_string(),
                    ips: vec![std::net::IpAddr::V4(*ip)],
                })
                .collect(),
        });
    }
    let text = toml::to_string_pretty(&inv).map_err(std::io::Error::other)?;
    let text = format!("# Inventory written by `linkmeter generate` (synthetic estate).\n\n{text}");
    std::fs::write(dir.join("inventory.toml"), text)
}

/// `ground_truth.csv`: bytes per hour, connection and direction.
pub(crate) fn write_truth(
    dir: &Path,
    truth: &BTreeMap<(i64, String, &'static str), u64>,
) -> std::io::Result<()> {
    let mut csv = String::from("hour,connection_arn,direction,bytes\n");
    for ((hour, arn, dir), bytes) in truth {
        let _ = writeln!(csv, "{},{arn},{dir},{bytes}", iso(*hour));
    }
    std::fs::write(dir.join("ground_truth.csv"), csv)
}

/// `linkmeter.toml` for the estate.
pub(crate) fn write_config(dir: &Path) -> std::io::Result<()> {
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
               uri = \"metrics\"\n\n\
               # The AWS bill (CUR 2.0 export; bill/focus holds the same lines as FOCUS).\n\
               [[sources]]\n\
               name = \"bill\"\n\
               uri = \"bill/cur2\"\n\
               content = \"cur2\"\n";
    std::fs::write(dir.join("linkmeter.toml"), cfg)
}
