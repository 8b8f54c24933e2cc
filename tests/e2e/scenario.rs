//! A scenario small enough to price by hand (issue #3), run through the real binary:
//! ingest → invoice, and every amount checked against the arithmetic in the comments.
//!
//! Estate: cluster c1 (owner 999999999999) with SASL_IAM and TLS on all October.
//! - A (111111111111): SASL_IAM connection, endpoint vpce-a in two AZs, all month; its flows
//!   are logged on the endpoint ENI *and* on the client ENI (seen on both sides).
//! - B (222222222222): TLS connection created 09:40 and deleted 10:20 on Oct 1, logged on the
//!   client ENI only.
//!
//! Prices: endpoint hours 0.01 until Oct 16 00:00, then 0.02; endpoint GB tiers 0.01 for the
//! first 10 GB of the organization's month, 0.005 after; connectivity 0.5/hour; 0.003/GB.

use linkmeter_test_support::*;

const INVENTORY: &str = r#"
[[accounts]]
id = "999999999999"
name = "platform"
cost_center = "CC-1"
[[accounts]]
id = "111111111111"
name = "payments"
cost_center = "CC-2"
[[accounts]]
id = "222222222222"
name = "search"
cost_center = "CC-3"

[[clusters]]
arn = "arn:aws:kafka:us-east-1:999999999999:cluster/c1/0001"
connectivity = [
  { auth = "SASL_IAM", on = "2026-09-01T00:00:00Z" },
  { auth = "TLS", on = "2026-09-01T00:00:00Z" },
]

[[connections]]
arn = "arn:aws:kafka:us-east-1:111111111111:vpc-connection/999999999999/c1/a"
cluster = "c1"
auth = "SASL_IAM"
client_account = "111111111111"
vpc_id = "vpc-a"
endpoint_id = "vpce-a"
created = "2026-10-01T00:00:00Z"
enis = [
  { id = "eni-a1", az_id = "use1-az1", ips = ["10.1.1.10"] },
  { id = "eni-a2", az_id = "use1-az2", ips = ["10.1.2.10"] },
]

[[connections]]
arn = "arn:aws:kafka:us-east-1:222222222222:vpc-connection/999999999999/c1/b"
cluster = "c1"
auth = "TLS"
client_account = "222222222222"
vpc_id = "vpc-b"
endpoint_id = "vpce-b"
created = "2026-10-01T09:40:00Z"
deleted = "2026-10-01T10:20:00Z"
enis = [{ id = "eni-b1", az_id = "use1-az1", ips = ["10.2.1.10"] }]
"#;

const PRICES: &str = r#"
currency = "USD"
[[rates]]
meter = "endpoint_az_hours"
region = "us-east-1"
from = "2026-01-01T00:00:00Z"
price = "0.01"
[[rates]]
meter = "endpoint_az_hours"
region = "us-east-1"
from = "2026-10-16T00:00:00Z"
price = "0.02"
[[rates]]
meter = "endpoint_gb"
region = "us-east-1"
from = "2026-01-01T00:00:00Z"
tiers = [{ up_to_gb = "10", price = "0.01" }, { price = "0.005" }]
[[rates]]
meter = "msk_connectivity_hours"
region = "us-east-1"
from = "2026-01-01T00:00:00Z"
price = "0.5"
[[rates]]
meter = "msk_connectivity_gb"
region = "us-east-1"
from = "2026-01-01T00:00:00Z"
price = "0.003"
"#;

// 2 GiB, 1 GiB and 9 GiB; Oct 1 00:00 = 1790812800, Oct 1 10:00 = 1790848800,
// Oct 20 12:00 = 1792497600.
const FLOWS: &str = "version vpc-id interface-id account-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status
5 vpc-a eni-a1 unknown 10.1.9.9 10.1.1.10 40000 14001 6 100 2147483648 1790812800 1790813399 ACCEPT OK
5 vpc-a eni-ca 111111111111 10.1.9.9 10.1.1.10 40000 14001 6 100 2147483648 1790812800 1790813399 ACCEPT OK
5 vpc-b eni-cb 222222222222 10.2.9.9 10.2.1.10 40001 14002 6 50 1073741824 1790848800 1790849099 ACCEPT OK
5 vpc-a eni-a2 unknown 10.1.2.10 10.1.9.9 14003 40002 6 900 9663676416 1792497600 1792498199 ACCEPT OK
";

fn amounts(wh: &std::path::Path, view: &str) -> Vec<String> {
    let b = query(
        wh,
        &format!(
            "SELECT account_id || ' ' || meter || ' ' || auth_scheme || ' ' || allocation_basis || ' ' || CAST(quantity AS VARCHAR) || ' ' || CAST(exact_amount AS VARCHAR) || ' ' || CAST(amount AS VARCHAR) \
             FROM invoice_lines WHERE month = '2026-10' AND invoice_view = '{view}' ORDER BY 1"
        ),
    );
    strings(&b, 0)
}

#[test]
fn hand_priced_month() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("inventory.toml"), INVENTORY).unwrap();
    std::fs::write(d.join("prices.toml"), PRICES).unwrap();
    std::fs::create_dir_all(d.join("logs")).unwrap();
    std::fs::write(d.join("logs/flows.log"), FLOWS).unwrap();
    std::fs::write(
        d.join("linkmeter.toml"),
        "warehouse = \"wh\"\ninventory = \"inventory.toml\"\nprices = \"prices.toml\"\n[[sources]]\nname = \"logs\"\nuri = \"logs\"\n",
    )
    .unwrap();
    ok(d, &["ingest", "--config", "linkmeter.toml", "--strict"]);
    let out = ok(
        d,
        &[
            "invoice",
            "--config",
            "linkmeter.toml",
            "--month",
            "2026-10",
        ],
    );
    let wh = d.join("wh");

    // Billable bytes: A's 2 GiB counted once (endpoint side wins), B's client-only 1 GiB, A's 9 GiB.
    assert_eq!(
        scalar(
            &wh,
            "SELECT CAST(SUM(bytes) AS BIGINT) FROM usage_hourly WHERE account_id = '111111111111'"
        ),
        11 << 30
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT CAST(SUM(bytes) AS BIGINT) FROM usage_hourly WHERE account_id = '222222222222'"
        ),
        1 << 30
    );
    // B was provisioned 09:40–10:20: hours 09 and 10, each billed in full.
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM endpoint_hours WHERE account_id = '222222222222'"
        ),
        2
    );

    // aws view, by hand:
    // A endpoint_az_hours: 2 ENIs × (360 h × 0.01 + 384 h × 0.02) = 2 × 11.28 = 22.56
    // A endpoint_gb: 2 GiB × 0.01 = 0.02; then B's 1 GiB × 0.01 = 0.01 (running 3 GB); then
    //   A's 9 GiB: 7 × 0.01 + 2 × 0.005 = 0.08 → A 0.10, B 0.01
    // B endpoint_az_hours: 2 h × 0.01 = 0.02
    // owner msk_connectivity_hours: 744 h × 0.5 per scheme = 372 each
    // owner msk_connectivity_gb: SASL_IAM 11 × 0.003 = 0.033, TLS 1 × 0.003 = 0.003
    // Total 766.726 → 766.73; cents floor to 766.72, and the spare cent goes to the largest
    // remainder, a tie of 0.3 cent between the two GB lines: the first (SASL_IAM) gets it.
    assert_eq!(
        amounts(&wh, "aws"),
        vec![
            "111111111111 endpoint_az_hours SASL_IAM owner 1488.000000000 22.560000000000 22.56",
            "111111111111 endpoint_gb SASL_IAM owner 11.000000000 0.100000000000 0.10",
            "222222222222 endpoint_az_hours TLS owner 2.000000000 0.020000000000 0.02",
            "222222222222 endpoint_gb TLS owner 1.000000000 0.010000000000 0.01",
            "999999999999 msk_connectivity_gb SASL_IAM owner 11.000000000 0.033000000000 0.04",
            "999999999999 msk_connectivity_gb TLS owner 1.000000000 0.003000000000 0.00",
            "999999999999 msk_connectivity_hours SASL_IAM owner 744.000000000 372.000000000000 372.00",
            "999999999999 msk_connectivity_hours TLS owner 744.000000000 372.000000000000 372.00",
        ]
    );
    assert!(out.contains("total 766.73 USD"), "{out}");

    // chargeback view: SASL_IAM hours go evenly to the one endpoint provisioned each hour (A);
    // TLS hours 09 and 10 of Oct 1 go to B (1.00), the other 742 have nobody and stay with
    // the owner as unallocated (371.00); GB goes to whoever moved the bytes.
    assert_eq!(
        amounts(&wh, "chargeback"),
        vec![
            "111111111111 endpoint_az_hours SASL_IAM owner 1488.000000000 22.560000000000 22.56",
            "111111111111 endpoint_gb SASL_IAM owner 11.000000000 0.100000000000 0.10",
            "111111111111 msk_connectivity_gb SASL_IAM bytes 11.000000000 0.033000000000 0.04",
            "111111111111 msk_connectivity_hours SASL_IAM even 744.000000000 372.000000000000 372.00",
            "222222222222 endpoint_az_hours TLS owner 2.000000000 0.020000000000 0.02",
            "222222222222 endpoint_gb TLS owner 1.000000000 0.010000000000 0.01",
            "222222222222 msk_connectivity_gb TLS bytes 1.000000000 0.003000000000 0.00",
            "222222222222 msk_connectivity_hours TLS even 2.000000000 1.000000000000 1.00",
            "999999999999 msk_connectivity_hours TLS unallocated 742.000000000 371.000000000000 371.00",
        ]
    );
}
