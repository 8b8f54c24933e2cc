//! `inventory import` on AWS CLI JSON written after the documented response shapes
//! (`tests/fixtures/aws-cli/README.md` says where each comes from).

use std::path::PathBuf;

use linkmeter_ingest::inventory::{AuthScheme, Inventory};
use linkmeter_ingest::inventory_import::{import, json_files, to_toml, ImportError};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aws-cli")
}

const KEPT: &str = r#"
[[accounts]]
id = "111111111111"
name = "search"
cost_center = "CC-210"

[[clusters]]
arn = "arn:aws:kafka:us-east-1:999999999999:cluster/orders/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-2"
name = "orders-prod"
connectivity = [{ auth = "SASL_IAM", on = "2026-04-01T00:00:00Z" }, { auth = "TLS", on = "2026-03-01T00:00:00Z", off = "2026-03-20T00:00:00Z" }]
"#;

#[test]
fn aws_cli_json_becomes_a_valid_inventory_merged_with_what_people_keep() {
    let files = json_files(&[fixtures()]).unwrap();
    assert_eq!(files.len(), 6, "every fixture but the README");
    let kept: Inventory = toml::from_str(KEPT).unwrap();
    let (inv, report) = import(&files, Some(&kept)).unwrap();

    // The cluster: IAM's on-time from the kept file, SCRAM's from the creation time (noted),
    // TLS's past period kept.
    assert_eq!(inv.clusters.len(), 1);
    let c = &inv.clusters[0];
    assert_eq!(c.name.as_deref(), Some("orders-prod"));
    let on: Vec<(AuthScheme, &str, Option<&str>)> = c
        .connectivity
        .iter()
        .map(|p| (p.auth, p.on.as_str(), p.off.as_deref()))
        .collect();
    assert!(on.contains(&(AuthScheme::SaslIam, "2026-04-01T00:00:00Z", None)));
    assert!(on.contains(&(AuthScheme::SaslScram, "2026-03-01T09:30:12Z", None)));
    assert!(on.contains(&(
        AuthScheme::Tls,
        "2026-03-01T00:00:00Z",
        Some("2026-03-20T00:00:00Z")
    )));
    assert!(report
        .notes
        .iter()
        .any(|n| n.contains("SASL_SCRAM connectivity taken as on since")));

    // Two connections: the IAM one from the list output (its endpoint is the MSK one, not the
    // S3 interface endpoint in the same VPC), the SCRAM one from describe (subnets match).
    assert_eq!(inv.connections.len(), 2);
    let iam = inv
        .connections
        .iter()
        .find(|c| c.auth == AuthScheme::SaslIam)
        .unwrap();
    assert_eq!(iam.client_account, "111111111111");
    assert_eq!(iam.endpoint_id, "vpce-0111aaaaaaaaaaaa1");
    assert_eq!(iam.created, "2026-04-02T10:00:00Z");
    let enis: Vec<(&str, &str, String)> = iam
        .enis
        .iter()
        .map(|e| (e.id.as_str(), e.az_id.as_str(), e.ips[0].to_string()))
        .collect();
    assert_eq!(
        enis,
        vec![
            ("eni-0111aaaaaaaaaaaa1", "use1-az1", "10.1.1.10".to_string()),
            ("eni-0111aaaaaaaaaaaa2", "use1-az2", "10.1.2.10".to_string()),
        ]
    );
    let scram = inv
        .connections
        .iter()
        .find(|c| c.auth == AuthScheme::SaslScram)
        .unwrap();
    assert_eq!(scram.client_account, "222222222222");
    assert_eq!(scram.endpoint_id, "vpce-0222aaaaaaaaaaaa1");
    // us-east-1a is use1-az4 in this account: AZ ids come from its own subnets.
    assert_eq!(scram.enis[0].az_id, "use1-az4");
    assert!(report.notes.iter().any(|n| n.contains("is DELETING")));

    // Accounts: the kept name stays; the others are added, named by id, and noted.
    let names: Vec<(&str, &str)> = inv
        .accounts
        .iter()
        .map(|a| (a.id.as_str(), a.name.as_str()))
        .collect();
    assert!(names.contains(&("111111111111", "search")));
    assert!(names.contains(&("222222222222", "222222222222")));
    assert!(names.contains(&("999999999999", "999999999999")));

    // What is written is an inventory ingest accepts.
    let text = to_toml(&inv, &files);
    let ix = Inventory::from_toml(&text, "imported").unwrap();
    assert_eq!(ix.enis.len(), 4);
}

#[test]
fn missing_pieces_are_named_with_what_to_run() {
    let f = fixtures();
    // Without the subnets, the second account's AZ ids are unknown; without the ENIs, the
    // endpoints' interfaces are.
    let files: Vec<PathBuf> = [
        "list-clusters-v2.json",
        "describe-vpc-connection.json",
        "describe-vpc-endpoints.json",
        "describe-network-interfaces.json",
    ]
    .iter()
    .map(|n| f.join(n))
    .collect();
    let err = import(&files, None).unwrap_err().to_string();
    assert!(
        err.contains("no Availability Zone id for ENI eni-0222aaaaaaaaaaaa1"),
        "{err}"
    );
    assert!(err.contains("ec2 describe-subnets"), "{err}");
    let files: Vec<PathBuf> = ["list-vpc-connections.json", "describe-vpc-endpoints.json"]
        .iter()
        .map(|n| f.join(n))
        .collect();
    let err = import(&files, None).unwrap_err().to_string();
    assert!(
        err.contains("is not in the describe-network-interfaces output"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("odd.json");
    std::fs::write(&odd, r#"{"Reservations": []}"#).unwrap();
    match import(&[odd], None) {
        Err(ImportError::Shape { message, .. }) => {
            assert!(message.contains("Reservations"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_ambiguous_endpoint_is_settled_by_the_kept_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures();
    // A second MSK-looking endpoint in the IAM connection's VPC: the list output has no
    // subnets to tell them apart.
    let text = std::fs::read_to_string(f.join("describe-vpc-endpoints.json"))
        .unwrap()
        .replace(
            "com.amazonaws.us-east-1.s3",
            "com.amazonaws.vpce.us-east-1.vpce-svc-0aaaaaaaaaaaaaaaa",
        );
    std::fs::write(dir.path().join("describe-vpc-endpoints.json"), text).unwrap();
    let mut files: Vec<PathBuf> = [
        "list-clusters-v2.json",
        "list-vpc-connections.json",
        "describe-network-interfaces.json",
        "describe-subnets.json",
    ]
    .iter()
    .map(|n| f.join(n))
    .collect();
    files.push(dir.path().join("describe-vpc-endpoints.json"));
    let err = import(&files, None).unwrap_err().to_string();
    assert!(
        err.contains("several endpoints") && err.contains("set endpoint_id"),
        "{err}"
    );
    let kept: Inventory = toml::from_str(
        r#"
[[connections]]
arn = "arn:aws:kafka:us-east-1:111111111111:vpc-connection/999999999999/orders/1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d-3"
cluster = "orders"
auth = "SASL_IAM"
client_account = "111111111111"
vpc_id = "vpc-0111111111111111a"
endpoint_id = "vpce-0111aaaaaaaaaaaa1"
created = "2026-04-02T10:00:00Z"
"#,
    )
    .unwrap();
    let (inv, _) = import(&files, Some(&kept)).unwrap();
    assert_eq!(inv.connections[0].endpoint_id, "vpce-0111aaaaaaaaaaaa1");
}
