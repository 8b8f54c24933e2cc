//! Tests of the bill-export reader (a file of their own to keep `decode.rs` readable).

use super::*;

#[test]
fn lines_are_classified_by_product_usage_type_and_unit() {
    use Relevance::*;
    let r = |p, u, o, unit| relevance(p, u, o, unit);
    assert_eq!(
        r("AmazonVPC", "USE1-VpcEndpoint-Hours", "VpcEndpoint", "Hrs"),
        Meter("endpoint_az_hours")
    );
    assert_eq!(
        r("AmazonVPC", "EU-VpcEndpoint-Bytes", "VpcEndpoint", "GB"),
        Meter("endpoint_gb")
    );
    assert_eq!(
        r(
            "AmazonVPC",
            "USE1-VpcEndpoint-GWLBE-Hours",
            "VpcEndpoint",
            "Hrs"
        ),
        Related
    );
    assert_eq!(
        r(
            "AmazonMSK",
            "USE1-Kafka.PrivateConnectivityHours",
            "",
            "Hrs"
        ),
        Meter("msk_connectivity_hours")
    );
    assert_eq!(
        r(
            "AmazonMSK",
            "USE1-Kafka.PrivateConnectivity-Bytes",
            "",
            "GB"
        ),
        AssumedMskGb
    );
    assert_eq!(
        r(
            "AmazonMSK",
            "USE1-Kafka.PrivateConnectivityFoo",
            "",
            "Count"
        ),
        Related
    );
    assert_eq!(r("AmazonMSK", "USE1-Kafka.m5.large", "", "Hrs"), Other);
    assert_eq!(
        r("AmazonEC2", "USE1-BoxUsage", "RunInstances", "Hrs"),
        Other
    );
    assert_eq!(
        short_resource("arn:aws:ec2:us-east-1:111122223333:vpc-endpoint/vpce-0abc"),
        "vpce-0abc"
    );
    assert_eq!(
        short_resource("arn:aws:kafka:us-east-1:1:cluster/a/b"),
        "arn:aws:kafka:us-east-1:1:cluster/a/b"
    );
}

/// Two small exports written by pyarrow (an independent writer), the same five lines as
/// CUR 2.0 (rates as text) and as FOCUS (rates as doubles): the same four kept lines.
#[test]
fn cur2_and_focus_files_read_the_same() {
    let read_one = |bytes: &'static [u8]| {
        let mut rows = Vec::new();
        let (format, stats) = read(
            bytes::Bytes::from_static(bytes),
            None,
            &Bounds::default(),
            &mut |r| rows.push(r),
        )
        .unwrap();
        (format, stats, rows)
    };
    let (f1, s1, cur) = read_one(include_bytes!("testdata/cur2.parquet"));
    let (f2, s2, focus) = read_one(include_bytes!("testdata/focus.parquet"));
    assert_eq!((f1, f2), (BillFormat::Cur2, BillFormat::Focus));
    assert_eq!((s1.rows, s1.kept), (5, 4), "the EC2 line is left out");
    assert_eq!(
        s1.assumed,
        vec![("USE1-Kafka.PrivateConnectivity-Bytes".to_string(), 1)]
    );
    assert_eq!(s2.kept, 4);
    let meters: Vec<_> = cur.iter().map(|r| r.meter).collect();
    assert_eq!(
        meters,
        [
            Some("endpoint_az_hours"),
            Some("endpoint_gb"),
            Some("msk_connectivity_hours"),
            Some("msk_connectivity_gb")
        ]
    );
    assert_eq!(cur[1].amount, Some(Decimal::new(25, 2)));
    assert_eq!(cur[2].rate, Some(Decimal::new(225, 4)));
    assert_eq!(cur[0].period.as_deref(), Some("2026-10"));
    assert_eq!(
        cur[0].invoice, None,
        "a blank invoice id is a provisional bill"
    );
    assert_eq!(cur[2].invoice.as_deref(), Some("INV"));
    assert_eq!(
        short_resource(cur[0].resource_id.as_deref().unwrap()),
        "vpce-1"
    );
    for (a, b) in cur.iter().zip(&focus) {
        assert_eq!(
            (a.meter, a.amount, a.rate, a.cost, a.start, &a.usage_account),
            (b.meter, b.amount, b.rate, b.cost, b.start, &b.usage_account)
        );
    }
    // Not a bill: refused with the reason, nothing kept.
    let err = read(
        bytes::Bytes::from_static(b"PAR1 nothing PAR1"),
        None,
        &Bounds::default(),
        &mut |_| panic!("nothing to keep"),
    )
    .unwrap_err();
    assert!(err.contains("not a readable Parquet file"), "{err}");
}

#[test]
fn doubles_become_the_decimal_they_print_as() {
    assert_eq!(parse_decimal("0.01"), Some(Decimal::new(1, 2)));
    assert_eq!(parse_decimal("1e-7"), Some(Decimal::new(1, 7)));
    assert_eq!(parse_decimal("2.5E+3"), Some(Decimal::new(2500, 0)));
    assert_eq!(
        parse_decimal("0.1234567890123456"),
        Some(Decimal::new(123456789012, 12))
    );
    assert_eq!(parse_decimal("abc"), None);
    assert_eq!(format!("{}", 0.1f64 + 0.2f64), "0.30000000000000004");
    assert_eq!(
        parse_decimal("0.30000000000000004"),
        Some(Decimal::new(3, 1))
    );
}
