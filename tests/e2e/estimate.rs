//! `linkmeter estimate` through the real binary, against figures worked out by hand from
//! `aggregate/prices.example.toml` (us-east-1, 730 h):
//! - msk_connectivity_hours: 3 clusters × 2 schemes × 730 h = 4,380 h × 0.0225 = 98.55
//! - msk_connectivity_gb: 1,500,000 GB × 0.006 = 9,000.00
//! - endpoint_az_hours: 12 connections × 2 AZs × 730 h = 17,520 h × 0.01 = 175.20
//! - endpoint_gb: 1,048,576 × 0.01 + 451,424 × 0.006 = 10,485.76 + 2,708.544 = 13,194.30
//! - total 98.55 + 9,000.00 + 175.20 + 13,194.30 = 22,468.05

use linkmeter_test_support::*;

#[test]
fn estimate_matches_hand_computed_figures() {
    let dir = &root();
    // The plan of the figures above.
    const PLAN: [&str; 15] = [
        "estimate",
        "--prices",
        "aggregate/prices.example.toml",
        "--month",
        "2026-10",
        "--clusters",
        "3",
        "--schemes",
        "2",
        "--client-vpcs",
        "4",
        "--azs",
        "2",
        "--gb",
        "1500000",
    ];
    let out = ok(dir, &[&PLAN[..], &["--format", "csv"]].concat());
    let amounts: Vec<(String, String)> = out
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[4].to_string())
        })
        .collect();
    let want = [
        ("msk_connectivity_hours", "98.55"),
        ("msk_connectivity_gb", "9000.00"),
        ("endpoint_az_hours", "175.20"),
        ("endpoint_gb", "13194.30"),
        ("total", "22468.05"),
    ];
    assert_eq!(
        amounts,
        want.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>(),
        "{out}"
    );
    let table = ok(dir, &PLAN);
    assert!(
        table.contains("the largest layer is endpoint_gb"),
        "{table}"
    );
    assert!(
        table.contains("12 endpoints × 2 AZs × 730 h = 17,520 h"),
        "{table}"
    );
    // A region the price book has no rate for is a config error naming it.
    let o = linkmeter(
        dir,
        &[
            "estimate",
            "--prices",
            "aggregate/prices.example.toml",
            "--region",
            "eu-west-1",
            "--clusters",
            "1",
            "--schemes",
            "1",
            "--client-vpcs",
            "1",
            "--gb",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("eu-west-1"));
}
