//! Tests of the `flows` row builder.

use super::*;
use arrow::array::{Array, AsArray};

#[test]
fn groups_sum_as_the_rows_do() {
    use crate::attribute::{attribute, Outcome};
    use crate::inventory::{parse_time, Inventory};
    let ix = Inventory::from_toml(crate::inventory::tests::SAMPLE, "t").unwrap();
    let t = parse_time("2026-10-01T10:58:00Z").unwrap();
    let lineage = Lineage {
        source_uri: "u".into(),
        input_id: "i".into(),
        run_id: "r".into(),
        context_account: None,
    };
    // Endpoint-observed both ways, client-observed, unknown endpoint, rejected, an
    // ENI of a deleted connection; some spanning two hours, keys repeated.
    let recs = [
        (
            "eni-1a",
            "10.0.9.9",
            "10.0.1.10",
            40000,
            14001,
            "ACCEPT",
            100,
        ),
        ("eni-1a", "10.0.1.10", "10.0.9.9", 14001, 40000, "ACCEPT", 7),
        (
            "eni-1b",
            "10.0.9.9",
            "10.0.2.10",
            40000,
            14002,
            "ACCEPT",
            1 << 40,
        ),
        ("eni-c", "10.0.9.9", "10.0.2.10", 40000, 14002, "ACCEPT", 55),
        ("eni-x", "10.0.9.8", "10.9.9.9", 40000, 14003, "ACCEPT", 3),
        ("eni-x", "10.0.9.8", "10.9.9.9", 40000, 14003, "REJECT", 4),
        ("eni-2a", "10.0.9.9", "10.0.1.10", 40000, 14001, "ACCEPT", 9),
    ];
    let mut b = FlowsBuilder::default();
    for (k, &(eni, src, dst, sp, dp, action, bytes)) in recs.iter().cycle().take(40).enumerate() {
        let start = t + (k as i64 % 5) * 60;
        let rec = FlowRecord {
            account_id: Some("111111111111"),
            interface_id: Some(eni),
            srcaddr: Some(src.parse().unwrap()),
            dstaddr: Some(dst.parse().unwrap()),
            srcport: Some(sp),
            dstport: Some(dp),
            bytes: Some(bytes),
            packets: Some(k as u64),
            start: Some(start),
            end: Some(start + 120),
            action: Some(action),
            // A v5 record's own place: rows attributed to an ENI say the inventory's.
            vpc_id: Some("vpc-own"),
            az_id: Some("use1-az9"),
            ..Default::default()
        };
        let Outcome::Relevant(a) = attribute(&rec, None, &ix) else {
            panic!("{eni} is relevant")
        };
        crate::hours::split_hours(start, start + 120, bytes, k as u64, |share| {
            b.append(&rec, &a, &share, Position::default(), &ix, &lineage)
        });
    }
    let (rows, groups) = b.finish_with_groups(&ix);
    assert!(groups.sums.len() >= 8, "{} groups", groups.sums.len());
    let text = |name: &str| {
        let c = rows
            .column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .clone();
        move |i: usize| c.is_valid(i).then(|| c.value(i).to_string())
    };
    let (eni, vpc, az, region) = (
        text("endpoint_eni"),
        text("vpc_id"),
        text("az_id"),
        text("region"),
    );
    let mut attributed = 0;
    for i in 0..rows.num_rows() {
        match eni(i).and_then(|e| ix.eni_by_id(&e)) {
            Some(e) => {
                attributed += 1;
                assert_eq!(vpc(i).as_ref(), Some(&ix.conn_of(e).vpc_id), "row {i}");
                assert_eq!(az(i).as_ref(), Some(&ix.enis[e].az_id), "row {i}");
                assert_eq!(region(i).as_ref(), Some(&ix.conn_of(e).region), "row {i}");
            }
            None => {
                assert_eq!(vpc(i).as_deref(), Some("vpc-own"), "row {i}");
                assert_eq!(az(i).as_deref(), Some("use1-az9"), "row {i}");
                assert_eq!(region(i), None, "row {i}");
            }
        }
    }
    assert!(attributed > 0 && attributed < rows.num_rows());
    // The record's own account and action, whatever the outcome.
    let (account, action) = (text("log_account_id"), text("action"));
    let actions: Vec<_> = (0..rows.num_rows()).filter_map(&action).collect();
    assert!(actions.iter().any(|a| a == "REJECT") && actions.iter().any(|a| a == "ACCEPT"));
    assert_eq!(actions.len(), rows.num_rows());
    for i in 0..rows.num_rows() {
        assert_eq!(account(i).as_deref(), Some("111111111111"), "row {i}");
    }
    let want = linkmeter_warehouse::flow_hours::summarize(&[rows], "rows").unwrap();
    let got =
        linkmeter_warehouse::flow_hours::from_groups(&groups.keys, &groups.sums, "groups").unwrap();
    assert_eq!(got, want);
    // A second batch starts from nothing.
    assert!(b.finish_with_groups(&ix).1.sums.is_empty());
}

proptest::proptest! {
    #[test]
    fn group_keys_unpack_to_what_was_packed(h: i64, e: u32, w: u8, o: u8) {
        proptest::prop_assert_eq!(unpack(group_key(h, e, w, o)), (h, e, w, o));
    }
}

#[test]
fn reason_codes_name_their_reasons() {
    for (code, r) in REASONS.iter().enumerate() {
        assert_eq!(*r as usize, code, "{r:?}");
    }
}

proptest::proptest! {
    #[test]
    fn addresses_are_spelled_as_display_spells_them(a: u32, v6: u128) {
        let ips = [
            std::net::IpAddr::from(std::net::Ipv4Addr::from(a)),
            std::net::IpAddr::from(std::net::Ipv6Addr::from(v6)),
        ];
        let mut b = StringBuilder::new();
        for ip in ips {
            append_ip(&mut b, Some(ip));
        }
        append_ip(&mut b, None);
        let col = b.finish();
        proptest::prop_assert_eq!(col.value(0), ips[0].to_string());
        proptest::prop_assert_eq!(col.value(1), ips[1].to_string());
        proptest::prop_assert!(col.is_null(2));
    }
}
