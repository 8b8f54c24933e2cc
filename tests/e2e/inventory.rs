//! `inventory import` and `inventory check` through the real binary. The generated estate's
//! inventory is turned into the JSON the AWS CLI would print for it (the shapes of
//! `ingest/tests/fixtures/aws-cli/`), imported with only what people keep by hand (account
//! names, connectivity times, the deleted connection), and ingest with the imported inventory
//! must still equal the ground truth.

use std::path::Path;

use linkmeter_test_support::*;
use serde_json::{json, Value};

/// The AWS CLI JSON of a generated inventory, one file per command, in `dir`.
fn aws_json(inv: &toml::Table, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let arr = |k: &str| {
        inv.get(k)
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default()
    };
    let st = |v: &toml::Value, k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let clusters: Vec<Value> = arr("clusters")
        .iter()
        .map(|c| {
            let on = |s: &str| {
                c.get("connectivity").and_then(|x| x.as_array()).into_iter().flatten().any(|p| st(p, "auth") == s)
            };
            json!({
                "ClusterArn": st(c, "arn"),
                "ClusterName": st(c, "arn").split('/').nth(1).unwrap(),
                "ClusterType": "PROVISIONED",
                "CreationTime": "2026-01-01T00:00:00.000000+00:00",
                "State": "ACTIVE",
                "Provisioned": {"BrokerNodeGroupInfo": {"ConnectivityInfo": {"VpcConnectivity": {"ClientAuthentication": {
                    "Sasl": {"Iam": {"Enabled": on("SASL_IAM")}, "Scram": {"Enabled": on("SASL_SCRAM")}},
                    "Tls": {"Enabled": on("TLS")}
                }}}}}
            })
        })
        .collect();
    let write = |name: &str, v: Value| {
        std::fs::write(dir.join(name), serde_json::to_string_pretty(&v).unwrap()).unwrap()
    };
    write("clusters.json", json!({ "ClusterInfoList": clusters }));
    let (mut conns, mut endpoints, mut enis, mut subnets) = (vec![], vec![], vec![], vec![]);
    for (i, c) in arr("connections").iter().enumerate() {
        let account = st(c, "client_account");
        let mut subnet_ids = vec![];
        let mut eni_ids = vec![];
        for (k, e) in c
            .get("enis")
            .and_then(|x| x.as_array())
            .into_iter()
            .flatten()
            .enumerate()
        {
            let subnet = format!("subnet-{i:08}{k:08}");
            let az = st(e, "az_id");
            subnets.push(json!({"SubnetId": subnet, "AvailabilityZone": format!("zone-{az}"), "AvailabilityZoneId": az, "VpcId": st(c, "vpc_id"), "OwnerId": account}));
            let ips: Vec<Value> = e
                .get("ips")
                .and_then(|x| x.as_array())
                .into_iter()
                .flatten()
                .map(|ip| json!({"PrivateIpAddress": ip.as_str().unwrap(), "Primary": true}))
                .collect();
            enis.push(json!({"NetworkInterfaceId": st(e, "id"), "AvailabilityZone": format!("zone-{az}"), "SubnetId": subnet, "VpcId": st(c, "vpc_id"), "InterfaceType": "vpc_endpoint", "OwnerId": account, "PrivateIpAddresses": ips}));
            subnet_ids.push(subnet);
            eni_ids.push(st(e, "id"));
        }
        endpoints.push(json!({"VpcEndpointId": st(c, "endpoint_id"), "VpcEndpointType": "Interface", "VpcId": st(c, "vpc_id"), "ServiceName": format!("com.amazonaws.vpce.us-east-1.vpce-svc-{i:017}"), "State": "available", "SubnetIds": subnet_ids, "NetworkInterfaceIds": eni_ids, "OwnerId": account}));
        let cluster_arn = arr("clusters")
            .iter()
            .map(|k| st(k, "arn"))
            .find(|a| a.contains(&format!("/{}/", st(c, "cluster"))))
            .unwrap();
        conns.push(json!({"VpcConnectionArn": st(c, "arn"), "TargetClusterArn": cluster_arn, "CreationTime": st(c, "created"), "Authentication": st(c, "auth"), "VpcId": st(c, "vpc_id"), "Subnets": subnet_ids, "State": if c.get("deleted").is_some() { "DELETING" } else { "AVAILABLE" }}));
    }
    write("connections.json", json!({ "VpcConnections": conns }));
    write("endpoints.json", json!({ "VpcEndpoints": endpoints }));
    write("enis.json", json!({ "NetworkInterfaces": enis }));
    write("subnets.json", json!({ "Subnets": subnets }));
}

#[test]
fn imported_inventory_meters_like_the_original_and_check_finds_the_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "estate", "--days 1 --accounts 8 --instances 1 --noise 1");
    let estate = d.join("estate");
    let inv: toml::Table =
        toml::from_str(&std::fs::read_to_string(estate.join("inventory.toml")).unwrap()).unwrap();
    aws_json(&inv, &estate.join("aws"));
    // What people keep: names, the clusters' connectivity history, the deleted connection.
    let mut kept = toml::Table::new();
    kept.insert("accounts".into(), inv["accounts"].clone());
    kept.insert("clusters".into(), inv["clusters"].clone());
    let deleted: Vec<toml::Value> = inv["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.get("deleted").is_some())
        .cloned()
        .collect();
    assert_eq!(deleted.len(), 1);
    kept.insert("connections".into(), toml::Value::Array(deleted));
    std::fs::write(estate.join("people.toml"), toml::to_string(&kept).unwrap()).unwrap();

    let out = ok(
        &estate,
        &[
            "inventory",
            "import",
            "aws",
            "--merge",
            "people.toml",
            "--out",
            "imported.toml",
        ],
    );
    assert!(out.contains("connections"), "{out}");
    let imported: toml::Table =
        toml::from_str(&std::fs::read_to_string(estate.join("imported.toml")).unwrap()).unwrap();
    assert_eq!(
        imported["connections"].as_array().unwrap().len(),
        inv["connections"].as_array().unwrap().len()
    );

    let cfg = std::fs::read_to_string(estate.join("linkmeter.toml"))
        .unwrap()
        .replace("inventory.toml", "imported.toml");
    std::fs::write(estate.join("imported-config.toml"), cfg).unwrap();
    let out = ok(&estate, &["ingest", "--config", "imported-config.toml"]);
    assert!(out.contains("[balanced]"), "{out}");
    assert_matches_truth(&estate, &estate.join("warehouse"));

    // check: the generator plants traffic to an unregistered endpoint and leaves AZs without
    // clients, so both lists are non-empty, and the exit code says so.
    let o = linkmeter(
        &estate,
        &["inventory", "check", "--config", "imported-config.toml"],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{text}");
    let count = |what: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(what))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    let unknown = scalar(&estate.join("warehouse"), "SELECT CAST(COUNT(DISTINCT CASE direction WHEN 'to_cluster' THEN dstaddr ELSE srcaddr END || '|' || COALESCE(log_account_id, '') || '|' || COALESCE(log_vpc_id, '')) AS BIGINT) FROM flows WHERE reason = 'unknown_endpoint'");
    assert!(unknown > 0);
    assert_eq!(
        count("endpoint addresses on MSK multi-VPC ports"),
        unknown,
        "{text}"
    );
    let idle = count("endpoint ENIs in the inventory that never carried traffic");
    assert!(idle > 0 && idle < 200, "{text}");
}
