//! Tests of the text flow-log decoder.

use super::*;
use crate::fields::DEFAULT_FORMAT;
use std::io::Write;
use std::net::IpAddr;

/// Owned copy of what the decoder produced, for assertions.
#[derive(Debug, Default)]
struct Out {
    recs: Vec<(Position, String)>,
    bad: Vec<BadInput>,
}

fn run(input: &[u8]) -> Out {
    run_with(input, DEFAULT_FORMAT)
}

fn run_with(input: &[u8], fallback: &str) -> Out {
    let mut out = Out::default();
    let mut d = TextDecoder::new(input, Format::parse(fallback).unwrap());
    d.decode(&mut |ev| match ev {
        Event::Record(r, p) => out.recs.push((p, format!("{r:?}"))),
        Event::Bad(b) => out.bad.push(b),
        Event::Metric(..) | Event::Ignored(_) => unreachable!("a flow-log decoder"),
    })
    .unwrap();
    out
}

fn first(input: &str) -> FlowRecord<'static> {
    let leaked: &'static str = Box::leak(input.to_string().into_boxed_str());
    let mut got = None;
    let mut d = TextDecoder::new(leaked.as_bytes(), Format::parse(DEFAULT_FORMAT).unwrap())
        .allow_unmeterable();
    d.decode(&mut |ev| {
        if let Event::Record(r, _) = ev {
            if got.is_none() {
                got = Some(format!("{r:?}"));
            }
        } else if let Event::Bad(b) = ev {
            panic!("unexpected bad input {b:?} in {input:?}");
        }
    })
    .unwrap();
    // Re-parse through the public path to get a typed value with 'static borrows.
    let mut spans = Vec::new();
    let mut lines = leaked.lines().filter(|l| !l.trim().is_empty());
    let l1 = lines.next().unwrap();
    let (fmt, data) = match classify_first(l1, &Format::parse(DEFAULT_FORMAT).unwrap()) {
        FirstLine::Header(f) => (f, lines.next().unwrap()),
        _ => (Format::parse(DEFAULT_FORMAT).unwrap(), l1),
    };
    let mut rec = FlowRecord::default();
    parse_line(&fmt, data, &mut spans, &mut rec).unwrap();
    assert_eq!(
        got.unwrap(),
        format!("{rec:?}"),
        "decoder and parse_line agree"
    );
    rec
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

const V2_HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n";

#[test]
fn aws_v2_accept_sample() {
    let r = first(&format!("{V2_HEADER}2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK\n"));
    assert_eq!(r.version, Some(2));
    assert_eq!(r.account_id, Some("123456789010"));
    assert_eq!(r.interface_id, Some("eni-1235b8ca123456789"));
    assert_eq!(r.srcaddr, ip("172.31.16.139"));
    assert_eq!(r.dstaddr, ip("172.31.16.21"));
    assert_eq!(
        (r.srcport, r.dstport, r.protocol),
        (Some(20641), Some(22), Some(6))
    );
    assert_eq!((r.packets, r.bytes), (Some(20), Some(4249)));
    assert_eq!((r.start, r.end), (Some(1418530010), Some(1418530070)));
    assert_eq!((r.action, r.log_status), (Some("ACCEPT"), Some("OK")));
}

#[test]
fn aws_v2_reject_sample() {
    let r = first("2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK");
    assert_eq!(r.dstport, Some(3389));
    assert_eq!(r.action, Some("REJECT"));
}

#[test]
fn aws_nodata_and_skipdata_samples() {
    let r =
        first("2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA");
    assert!(r.is_coverage());
    assert_eq!((r.srcaddr, r.bytes, r.action), (None, None, None));
    assert_eq!((r.start, r.end), (Some(1431280876), Some(1431280934)));
    let r = first(
        "2 123456789010 eni-11111111aaaaaaaaa - - - - - - - 1431280876 1431280934 - SKIPDATA",
    );
    assert_eq!(r.log_status, Some("SKIPDATA"));
    assert_eq!(r.interface_id, Some("eni-11111111aaaaaaaaa"));
}

#[test]
fn aws_icmp_sample() {
    let r = first("2 123456789010 eni-1235b8ca123456789 203.0.113.12 172.31.16.139 0 0 1 4 336 1432917027 1432917142 ACCEPT OK");
    assert_eq!(
        (r.srcport, r.dstport, r.protocol, r.packets, r.bytes),
        (Some(0), Some(0), Some(1), Some(4), Some(336))
    );
}

#[test]
fn aws_ipv6_sample() {
    let r = first("2 123456789010 eni-1235b8ca123456789 2001:db8:1234:a100:8d6e:3477:df66:f105 2001:db8:1234:a102:3304:8879:34cf:4071 34892 22 6 54 8855 1477913708 1477913820 ACCEPT OK");
    assert_eq!(r.srcaddr, ip("2001:db8:1234:a100:8d6e:3477:df66:f105"));
    assert_eq!(r.dstaddr, ip("2001:db8:1234:a102:3304:8879:34cf:4071"));
    assert_eq!((r.packets, r.bytes), (Some(54), Some(8855)));
}

const V3_HEADER: &str = "version vpc-id subnet-id instance-id interface-id account-id type srcaddr dstaddr srcport dstport pkt-srcaddr pkt-dstaddr protocol bytes packets start end action tcp-flags log-status";

#[test]
fn aws_v3_custom_samples_bytes_before_packets() {
    let r = first(&format!("{V3_HEADER}\n3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 52.213.180.42 10.0.0.62 43416 5001 52.213.180.42 10.0.0.62 6 568 8 1566848875 1566848933 ACCEPT 2 OK"));
    assert_eq!(r.vpc_id, Some("vpc-abcdefab012345678"));
    assert_eq!(r.subnet_id, Some("subnet-aaaaaaaa012345678"));
    assert_eq!(r.instance_id, Some("i-01234567890123456"));
    assert_eq!(r.flow_type, Some("IPv4"));
    assert_eq!((r.bytes, r.packets), (Some(568), Some(8)));
    assert_eq!(r.pkt_srcaddr, ip("52.213.180.42"));
    assert_eq!(r.tcp_flags, Some(2));
    // The AWS doc's second line has a double space: runs of spaces are one separator.
    let r = first(&format!("{V3_HEADER}\n3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 10.0.0.62 52.213.180.42 5001 43638  10.0.0.62 52.213.180.42 6 967 14 1566933133 1566933193 ACCEPT 19 OK"));
    assert_eq!((r.srcport, r.dstport), (Some(5001), Some(43638)));
    assert_eq!(r.pkt_dstaddr, ip("52.213.180.42"));
    assert_eq!(
        (r.bytes, r.packets, r.tcp_flags),
        (Some(967), Some(14), Some(19))
    );
}

#[test]
fn aws_v3_transit_gateway_sample() {
    let r = first("version interface-id account-id vpc-id subnet-id instance-id srcaddr dstaddr srcport dstport protocol tcp-flags type pkt-srcaddr pkt-dstaddr action log-status\n3 eni-11111111111111111 123456789010 vpc-abcdefab012345678 subnet-11111111aaaaaaaaa - 10.40.1.175 10.40.2.236 39812 80 6 3 IPv4 10.20.33.164 10.40.2.236 ACCEPT OK");
    assert_eq!(r.instance_id, None);
    assert_eq!(r.pkt_srcaddr, ip("10.20.33.164"));
    assert_eq!((r.bytes, r.start), (None, None));
    assert_eq!(r.tcp_flags, Some(3));
}

const V5_HEADER: &str = "version srcaddr dstaddr srcport dstport protocol start end type packets bytes account-id vpc-id subnet-id instance-id interface-id region az-id sublocation-type sublocation-id action tcp-flags pkt-srcaddr pkt-dstaddr pkt-src-aws-service pkt-dst-aws-service traffic-path flow-direction log-status";

#[test]
fn aws_v5_samples() {
    let r = first(&format!("{V5_HEADER}\n5 52.95.128.179 10.0.0.71 80 34210 6 1616729292 1616729349 IPv4 14 15044 123456789012 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-0c50d5961bcb2d47b eni-1235b8ca123456789 ap-southeast-2 apse2-az3 - - ACCEPT 19 52.95.128.179 10.0.0.71 S3 - - ingress OK"));
    assert_eq!((r.packets, r.bytes), (Some(14), Some(15044)));
    assert_eq!(r.region, Some("ap-southeast-2"));
    assert_eq!(r.az_id, Some("apse2-az3"));
    assert_eq!(r.flow_direction, Some("ingress"));
    assert_eq!(r.traffic_path, None);
    let r = first(&format!("{V5_HEADER}\n5 10.0.0.71 52.95.128.179 34210 80 6 1616729292 1616729349 IPv4 7 471 123456789012 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-0c50d5961bcb2d47b eni-1235b8ca123456789 ap-southeast-2 apse2-az3 - - ACCEPT 3 10.0.0.71 52.95.128.179 - S3 8 egress OK"));
    assert_eq!(r.traffic_path, Some(8));
    assert_eq!(r.flow_direction, Some("egress"));
    assert_eq!((r.packets, r.bytes), (Some(7), Some(471)));
}

#[test]
fn aws_nat_gateway_sample() {
    let r = first("instance-id interface-id srcaddr dstaddr pkt-srcaddr pkt-dstaddr\n- eni-1235b8ca123456789 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5");
    assert_eq!(r.instance_id, None);
    assert_eq!(r.pkt_dstaddr, ip("203.0.113.5"));
}

#[test]
fn unknown_fields_are_kept_as_extra() {
    let r = first(
        "version interface-id my-tag bytes start end ecs-task-id\n2 eni-1 blue 10 1 2 task-9",
    );
    assert_eq!(r.extra, "my-tag=blue ecs-task-id=task-9");
    assert_eq!(r.bytes, Some(10));
}

#[test]
fn gzip_is_detected_by_content_and_multi_member_works() {
    let text = format!("{V2_HEADER}2 1 eni-a 10.0.0.1 10.0.0.2 1 14001 6 1 100 10 20 ACCEPT OK\n");
    let mut gz = Vec::new();
    for _ in 0..2 {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(if gz.is_empty() {
            text.as_bytes()
        } else {
            b"2 1 eni-a 10.0.0.1 10.0.0.2 1 14001 6 1 50 10 20 ACCEPT OK\n"
        })
        .unwrap();
        gz.extend(e.finish().unwrap());
    }
    let out = run(&gz);
    assert!(out.bad.is_empty(), "{:?}", out.bad);
    assert_eq!(out.recs.len(), 2);
    assert_eq!(out.recs[1].0.line, 3);
}

#[test]
fn truncated_gzip_keeps_good_lines_and_quarantines_the_tail() {
    let mut text = String::from(V2_HEADER);
    for i in 0..2000 {
        text.push_str(&format!(
            "2 1 eni-a 10.0.0.1 10.0.0.2 1 14001 6 1 {i} 10 20 ACCEPT OK\n"
        ));
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    let gz = e.finish().unwrap();
    let cut = &gz[..gz.len() / 2];
    let out = run(cut);
    assert!(
        !out.recs.is_empty() && out.recs.len() < 2000,
        "{}",
        out.recs.len()
    );
    assert_eq!(out.bad.len(), 1, "{:?}", out.bad);
    assert!(
        out.bad[0]
            .reason
            .contains("gzip stream is corrupt or cut off"),
        "{}",
        out.bad[0].reason
    );
    assert_eq!(out.bad[0].position.line, out.recs.len() as u64 + 2);
}

#[test]
fn bad_lines_are_reported_and_good_lines_still_count() {
    let input = format!(
        "{V2_HEADER}\
         2 1 eni-a 10.0.0.1 10.0.0.2 1 14001 6 1 100 10 20 ACCEPT OK\n\
         2 1 eni-a 10.0.0.1 10.0.0.2 1 14001 6 1 100 10 ACCEPT OK\n\
         2 1 eni-a 10.0.0.1 10.0.0.2 1 14001 6 1 99999999999999999999 10 20 ACCEPT OK\n\
         2 1 eni-a 10.0.0.1 10.0.0.2 1 14001 6 1 12x 10 20 ACCEPT OK\n\
         2 1 eni-a 10.0.0.1 10.0.0.2 1 14001 6 1 100 30 20 ACCEPT OK\n\
         2 1 eni-a 10.0.0.1 10.0.0.999 1 14001 6 1 100 10 20 ACCEPT OK\n\
         2 1 eni-a 10.0.0.1 10.0.0.2 1 70000 6 1 100 10 20 ACCEPT OK\n\
         \n\
         2 1 eni-a 10.0.0.1 10.0.0.2 1 14001 6 1 7 10 20 ACCEPT OK\n"
    );
    let out = run(input.as_bytes());
    assert_eq!(out.recs.len(), 2);
    let reasons: Vec<(u64, &str)> = out
        .bad
        .iter()
        .map(|b| (b.position.line, b.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 6, "{reasons:?}");
    assert!(reasons[0].1.contains("expected 14 fields") && reasons[0].0 == 3);
    assert!(reasons[1].1.contains("too large"));
    assert!(reasons[2].1.contains("\"12x\" is not a whole number"));
    assert!(reasons[3].1.contains("start 30 is after end 20"));
    assert!(reasons[4].1.contains("not an IP address"));
    assert!(reasons[5].1.contains("`dstport`") && reasons[5].1.contains("too large"));
    assert!(out.bad.iter().all(|b| b.records == 1));
    assert_eq!(out.recs[1].0.line, 10, "blank lines still count as lines");
}

#[test]
fn duplicated_header_quarantines_every_line_of_the_file() {
    let out =
        run(b"version bytes bytes start end interface-id\n2 1 2 3 4 eni-a\n2 1 2 3 4 eni-b\n");
    assert!(out.recs.is_empty());
    assert_eq!(out.bad.len(), 1);
    assert!(out.bad[0].reason.contains("`bytes` appears twice"));
    assert_eq!(out.bad[0].records, 3, "the header and both lines");
}

#[test]
fn header_without_metering_fields_is_quarantined_whole() {
    let out = run(b"version interface-id srcaddr\n2 eni-a 10.0.0.1\n2 eni-b 10.0.0.2\n");
    assert_eq!(out.bad.len(), 1);
    assert!(
        out.bad[0].reason.contains("bytes, start, end"),
        "{}",
        out.bad[0].reason
    );
    assert_eq!(out.bad[0].records, 2);
}

#[test]
fn binary_file_is_one_quarantine_entry() {
    let out = run(&[0u8, 159, 146, 150, 1, 2, 3, b'\n', 4, 5]);
    assert!(out.recs.is_empty());
    assert_eq!(out.bad.len(), 1);
    assert!(out.bad[0].reason.contains("binary content"));
}

#[test]
fn headerless_file_uses_the_configured_format() {
    let out = run_with(b"eni-a 100 10 20\n", "interface-id bytes start end");
    assert!(out.bad.is_empty(), "{:?}", out.bad);
    let out = run_with(
        b"2 eni-a 100 10 20\n",
        "version interface-id bytes start end",
    );
    assert_eq!(out.recs.len(), 1);
    assert!(out.recs[0].1.contains("bytes: Some(100)"));
}

#[test]
fn a_byte_order_mark_does_not_hide_the_header() {
    let input = format!("\u{feff}{V3_HEADER}\n3 vpc-a subnet-a i-a eni-a 1 IPv4 10.0.0.1 10.0.0.2 1 2 10.0.0.1 10.0.0.2 6 568 8 10 20 ACCEPT 2 OK\n");
    let out = run(input.as_bytes());
    assert!(out.bad.is_empty(), "{:?}", out.bad);
    assert!(
        out.recs[0].1.contains("bytes: Some(568)"),
        "bytes before packets honoured: {}",
        out.recs[0].1
    );
}

#[test]
fn implausible_counts_and_lone_times_are_quarantined() {
    let out = run(format!("{V2_HEADER}2 1 eni-a 10.0.0.1 10.0.0.2 1 14001 6 1 18446744073709551615 10 20 ACCEPT OK\n2 1 eni-a - - - - - - - 99999999999999 - - NODATA\n").as_bytes());
    assert!(out.recs.is_empty());
    assert_eq!(out.bad.len(), 2, "{:?}", out.bad);
    assert!(out.bad[0].reason.contains("implausibly large"));
    assert!(out.bad[1].reason.contains("outside years"));
}

#[test]
fn crlf_line_ends_are_accepted() {
    let out = run(format!(
        "{V2_HEADER}2 1 eni-a 10.0.0.1 10.0.0.2 1 14001 6 1 100 10 20 ACCEPT OK\n"
    )
    .replace('\n', "\r\n")
    .as_bytes());
    assert!(out.bad.is_empty(), "{:?}", out.bad);
    assert_eq!(out.recs.len(), 1);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes at all: the decoder never panics, and every non-blank line is either a
        /// record or part of a quarantine entry.
        #[test]
        fn every_line_is_accounted_for(lines in proptest::collection::vec(
            prop_oneof![
                Just("2 1 eni-a 10.0.0.1 10.0.0.2 1 14001 6 1 100 10 20 ACCEPT OK".to_string()),
                Just("2 1 eni-a - - - - - - - 10 20 - NODATA".to_string()),
                "[ -~]{0,80}",
                "[0-9 ]{0,40}",
            ], 0..30)) {
            let input = format!("{}{}", V2_HEADER, lines.join("\n"));
            let out = run(input.as_bytes());
            let nonblank = lines.iter().filter(|l| !l.trim().is_empty()).count() as u64;
            let bad: u64 = out.bad.iter().map(|b| b.records).sum();
            prop_assert_eq!(out.recs.len() as u64 + bad, nonblank);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = run(&bytes);
        }
    }
}
