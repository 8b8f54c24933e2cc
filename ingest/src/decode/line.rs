//! One flow-log text line into a [`FlowRecord`]: the fields of the line's format, each
//! checked and converted (numbers, addresses), then the record's own consistency checks.
//! This is the inner loop of text ingest (every line of every file passes here once).

use std::net::IpAddr;

use super::FlowRecord;
use crate::fields::{Column, Field, Format};

/// Parses one value of a text field into `rec`; `Err` holds a reason for quarantine.
pub(crate) fn set_field<'a>(
    rec: &mut FlowRecord<'a>,
    col: &Column,
    value: &'a str,
) -> Result<(), String> {
    let field = match col {
        Column::Field(f) => *f,
        Column::Unknown(name) => {
            push_extra(&mut rec.extra, name, value);
            return Ok(());
        }
    };
    if value == "-" {
        return Ok(());
    }
    match field {
        Field::Version => rec.version = Some(num(value, "version")?),
        Field::AccountId => rec.account_id = Some(value),
        Field::InterfaceId => rec.interface_id = Some(value),
        Field::SrcAddr => (rec.srcaddr, rec.addr_text[0]) = addr(value, "srcaddr")?,
        Field::DstAddr => (rec.dstaddr, rec.addr_text[1]) = addr(value, "dstaddr")?,
        Field::SrcPort => rec.srcport = Some(num(value, "srcport")?),
        Field::DstPort => rec.dstport = Some(num(value, "dstport")?),
        Field::Protocol => rec.protocol = Some(num(value, "protocol")?),
        Field::Packets => rec.packets = Some(num(value, "packets")?),
        Field::Bytes => rec.bytes = Some(num(value, "bytes")?),
        Field::Start => rec.start = Some(num(value, "start")?),
        Field::End => rec.end = Some(num(value, "end")?),
        Field::Action => rec.action = Some(value),
        Field::LogStatus => rec.log_status = Some(value),
        Field::VpcId => rec.vpc_id = Some(value),
        Field::SubnetId => rec.subnet_id = Some(value),
        Field::InstanceId => rec.instance_id = Some(value),
        Field::TcpFlags => rec.tcp_flags = Some(num(value, "tcp-flags")?),
        Field::Type => rec.flow_type = Some(value),
        Field::PktSrcAddr => rec.pkt_srcaddr = Some(ip(value, "pkt-srcaddr")?),
        Field::PktDstAddr => rec.pkt_dstaddr = Some(ip(value, "pkt-dstaddr")?),
        Field::Region => rec.region = Some(value),
        Field::AzId => rec.az_id = Some(value),
        Field::FlowDirection => rec.flow_direction = Some(value),
        Field::TrafficPath => rec.traffic_path = Some(num(value, "traffic-path")?),
        Field::SublocationType
        | Field::SublocationId
        | Field::PktSrcAwsService
        | Field::PktDstAwsService => {}
        Field::Known(name) => push_extra(&mut rec.extra, name, value),
    }
    Ok(())
}

fn push_extra(extra: &mut String, name: &str, value: &str) {
    if value == "-" {
        return;
    }
    if !extra.is_empty() {
        extra.push(' ');
    }
    extra.push_str(name);
    extra.push('=');
    extra.push_str(value);
}

fn num<T: std::str::FromStr + TryFrom<u64>>(value: &str, name: &str) -> Result<T, String> {
    // Plain digits, as AWS writes them, are read here; anything else (a sign, 19 or more
    // digits) goes to the standard parser, so both accept the same text.
    if (1..=18).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()) {
        let v = value
            .bytes()
            .fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
        if let Ok(v) = T::try_from(v) {
            return Ok(v);
        }
    }
    value.parse::<T>().map_err(|_| {
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            format!("field `{name}`: {value:?} is too large for this field")
        } else {
            format!("field `{name}`: {value:?} is not a whole number")
        }
    })
}

/// An address field: the address, and its text when that is an IPv4 address spelled as
/// `Display` spells it (what [`dotted_quad`] accepts), which rows copy instead of formatting.
fn addr<'a>(value: &'a str, name: &str) -> Result<(Option<IpAddr>, Option<&'a str>), String> {
    match dotted_quad(value.as_bytes()) {
        Some(v4) => Ok((Some(IpAddr::V4(v4)), Some(value))),
        None => Ok((Some(ip(value, name)?), None)),
    }
}

fn ip(value: &str, name: &str) -> Result<IpAddr, String> {
    if let Some(v4) = dotted_quad(value.as_bytes()) {
        return Ok(IpAddr::V4(v4));
    }
    value
        .parse::<IpAddr>()
        .map_err(|_| format!("field `{name}`: {value:?} is not an IP address"))
}

/// The common case of [`ip`] without the standard parser's generality (it measured at a
/// third of line parsing): four decimal octets, no leading zeros. Anything else, valid or not,
/// returns `None` and goes to the standard parser, so both accept exactly the same text.
pub(super) fn dotted_quad(s: &[u8]) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (k, o) in octets.iter_mut().enumerate() {
        if k > 0 {
            if s.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut v: u16 = 0;
        while let Some(d) = s.get(i).filter(|b| b.is_ascii_digit()) {
            if i - start == 3 {
                return None;
            }
            v = v * 10 + u16::from(d - b'0');
            i += 1;
        }
        let len = i - start;
        if len == 0 || (len > 1 && s[start] == b'0') || v > 255 {
            return None;
        }
        *o = v as u8;
    }
    (i == s.len()).then_some(std::net::Ipv4Addr::from(octets))
}

/// Checks that hold for every record whatever its format: times in order, traffic rows
/// carrying what metering needs.
pub(crate) fn check_record(rec: &FlowRecord<'_>) -> Result<(), String> {
    // Beyond year 9999 no timestamp type downstream can hold it; checked one by one because
    // coverage rows may carry only one of the two.
    for (name, t) in [("start", rec.start), ("end", rec.end)] {
        if let Some(t) = t {
            if !(0..=MAX_TIME).contains(&t) {
                return Err(format!("{name} {t} is outside years 1970–9999"));
            }
        }
    }
    if let (Some(s), Some(e)) = (rec.start, rec.end) {
        if s > e {
            return Err(format!("start {s} is after end {e}"));
        }
    }
    // No ENI carries 256 TiB in one aggregation interval; larger values are corrupt, and
    // capping them keeps every run total far from u64 overflow.
    for (name, v) in [("bytes", rec.bytes), ("packets", rec.packets)] {
        if let Some(v) = v {
            if v > MAX_COUNT {
                return Err(format!(
                    "{name} {v} is implausibly large (over 2^48 in one record)"
                ));
            }
        }
    }
    Ok(())
}

/// Latest accepted time: 9999-12-31T23:59:59Z.
pub(crate) const MAX_TIME: i64 = 253_402_300_799;
/// Largest accepted bytes or packets in one record (2^48).
pub const MAX_COUNT: u64 = 1 << 48;

/// Splits a text line into tokens; runs of spaces (or tabs) are one separator.
pub(crate) fn tokens(line: &str, out: &mut Vec<(usize, usize)>) {
    out.clear();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        let s = i;
        while i < b.len() && b[i] != b' ' && b[i] != b'\t' {
            i += 1;
        }
        out.push((s, i));
    }
}

/// Parses one data line against a format into `rec` (which must be fresh). `spans` is scratch
/// space kept by the caller.
pub(crate) fn parse_line<'a>(
    format: &Format,
    line: &'a str,
    spans: &mut Vec<(usize, usize)>,
    rec: &mut FlowRecord<'a>,
) -> Result<(), String> {
    if format.is_default {
        if super::line_default::parse_default(line, rec).is_some() {
            return Ok(());
        }
        *rec = FlowRecord::default();
    }
    // One pass: each token is set as soon as it is found (a separate tokenizing pass and its
    // list measured at a fifth of parsing). The error for a wrong field count wins over a
    // field's own, as when the line was split first.
    let b = line.as_bytes();
    let mut i = 0;
    let mut failed = None;
    for col in &format.columns {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i == b.len() {
            return Err(count_error(format, line, spans));
        }
        let s = i;
        i = token_end(b, i);
        // Counts of 1–17 plain digits, as AWS writes them, are read here; anything else goes
        // to `set_field`, which reads it as the standard parser does and words the errors.
        if let Column::Field(f) = col {
            if f.is_count() {
                if let Some(v) = plain_digits(&b[s..i]) {
                    if failed.is_none() && !set_count(rec, *f, v) {
                        failed = set_field(rec, col, &line[s..i]).err();
                    }
                    continue;
                }
            }
        }
        if failed.is_none() {
            if let Err(e) = set_field(rec, col, &line[s..i]) {
                failed = Some(e);
            }
        }
    }
    if b[i..].iter().any(|c| *c != b' ' && *c != b'\t') {
        return Err(count_error(format, line, spans));
    }
    match failed {
        Some(e) => Err(e),
        None => check_record(rec),
    }
}

/// The value of 1–17 ASCII digits (which cannot overflow), else `None`.
pub(super) fn plain_digits(t: &[u8]) -> Option<u64> {
    if t.is_empty() || t.len() > 17 {
        return None;
    }
    // Eight digits at once where there are as many (epoch seconds have ten): one digit at a
    // time is a chain of dependent multiplications.
    let (mut v, rest) = match t.split_first_chunk::<8>() {
        Some((head, rest)) => (eight_digits(*head)?, rest),
        None => (0, t),
    };
    for &c in rest {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u64::from(d);
    }
    Some(v)
}

/// Eight ASCII digits (the first most significant) as a number, or `None` if any is not a
/// digit; byte-parallel, after Lemire's `parse_eight_digits_unrolled`.
fn eight_digits(b: [u8; 8]) -> Option<u64> {
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    let x = u64::from_le_bytes(b).wrapping_sub(0x3030_3030_3030_3030);
    // A byte below '0' borrows and leaves its own high nibble set; one above '9' sets it once
    // 6 is added.
    if (x | x.wrapping_add(0x0606_0606_0606_0606)) & HIGH_NIBBLES != 0 {
        return None;
    }
    // Pairs of digits in 16-bit lanes, then quadruples in 32-bit lanes, then the number (each
    // lane's value fits it, so nothing carries into the next).
    let x = (x * 10 + (x >> 8)) & 0x00FF_00FF_00FF_00FF;
    let x = (x * 100 + (x >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((x & 0xFFFF_FFFF) * 10_000 + (x >> 32))
}

/// Sets a count field as [`set_field`] does for the same digits; false when the value does
/// not fit the field (then `set_field` says so).
fn set_count(rec: &mut FlowRecord<'_>, f: Field, v: u64) -> bool {
    fn fit<T: TryFrom<u64>>(slot: &mut Option<T>, v: u64) -> bool {
        T::try_from(v).map(|v| *slot = Some(v)).is_ok()
    }
    match f {
        Field::Version => fit(&mut rec.version, v),
        Field::SrcPort => fit(&mut rec.srcport, v),
        Field::DstPort => fit(&mut rec.dstport, v),
        Field::Protocol => fit(&mut rec.protocol, v),
        Field::Packets => fit(&mut rec.packets, v),
        Field::Bytes => fit(&mut rec.bytes, v),
        Field::Start => fit(&mut rec.start, v),
        Field::End => fit(&mut rec.end, v),
        Field::TcpFlags => fit(&mut rec.tcp_flags, v),
        Field::TrafficPath => fit(&mut rec.traffic_path, v),
        _ => false,
    }
}

/// The index of the first space or tab at or after `i` (or the end of `b`), eight bytes at a
/// time: a byte-by-byte scan was the largest part of parsing.
pub(super) fn token_end(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let (sp, tab) = (w ^ (ONES * u64::from(b' ')), w ^ (ONES * u64::from(b'\t')));
        // The lowest byte that is zero in `sp` or `tab` sets the lowest bit here (borrows
        // can only mark bytes above it).
        let hit = (sp.wrapping_sub(ONES) & !sp | tab.wrapping_sub(ONES) & !tab) & HIGH;
        if hit != 0 {
            return i + (hit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && b[i] != b' ' && b[i] != b'\t' {
        i += 1;
    }
    i
}

fn count_error(format: &Format, line: &str, spans: &mut Vec<(usize, usize)>) -> String {
    tokens(line, spans);
    format!(
        "expected {} fields (from the header or configured format), found {}",
        format.columns.len(),
        spans.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_quads_parse_as_the_standard_parser_does() {
        for s in [
            "10.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "1.2.3.4",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.4.5",
            "1..3.4",
            "1.2.3.04",
            "1000.1.1.1",
            "1.2.3.-4",
            "+1.2.3.4",
            "1.2.3.4 ",
            "",
            ".",
            "::1",
            "fe80::1",
            "1.2.3.a",
            "12.34.56.789",
            "0.0.0.00",
            "199.249.255.200",
        ] {
            assert_eq!(
                ip(s, "srcaddr").ok(),
                s.parse::<IpAddr>().ok(),
                "{s:?} parsed differently"
            );
            if let Some(v4) = dotted_quad(s.as_bytes()) {
                assert_eq!(Ok(v4), s.parse::<std::net::Ipv4Addr>(), "{s:?}");
            }
        }
    }

    /// The two-pass parse the one-pass [`parse_line`] replaced: split, count, then set.
    fn parse_two_pass<'a>(format: &Format, line: &'a str) -> Result<FlowRecord<'a>, String> {
        let mut spans = Vec::new();
        tokens(line, &mut spans);
        if spans.len() != format.columns.len() {
            return Err(format!(
                "expected {} fields (from the header or configured format), found {}",
                format.columns.len(),
                spans.len()
            ));
        }
        let mut rec = FlowRecord::default();
        for (col, &(s, e)) in format.columns.iter().zip(spans.iter()) {
            set_field(&mut rec, col, &line[s..e])?;
        }
        check_record(&rec)?;
        Ok(rec)
    }

    proptest::proptest! {
        #[test]
        fn one_pass_parses_as_two_passes_did(
            fields in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::string::string_regex("[0-9]{1,20}").unwrap(),
                    proptest::string::string_regex("\\+?[0-9]{1,3}(\\.[0-9]{1,3}){0,4}").unwrap(),
                    proptest::string::string_regex("-|eni-[0-9a-f]{4}|ACCEPT|REJECT|OK|NODATA|x y").unwrap(),
                ],
                10..18,
            ),
            sep in "[ \t]{1,2}",
            tail in "[ \t]{0,2}",
        ) {
            let format = Format::parse(crate::fields::DEFAULT_FORMAT).unwrap();
            let line = fields.join(&sep) + &tail;
            let mut spans = Vec::new();
            let mut rec = FlowRecord::default();
            let one = parse_line(&format, &line, &mut spans, &mut rec).map(|()| format!("{rec:?}"));
            let two = parse_two_pass(&format, &line).map(|r| format!("{r:?}"));
            proptest::prop_assert_eq!(one, two, "{:?}", line);
        }

        #[test]
        fn dotted_quads_read_as_the_standard_parser_reads_them(
            s in "[0-9.]{0,17}|((25[0-6]|2[0-4][0-9]|1[0-9][0-9]|0?[1-9]?[0-9])\\.){3}[0-9]{1,3}",
        ) {
            proptest::prop_assert_eq!(
                dotted_quad(s.as_bytes()),
                s.parse::<std::net::Ipv4Addr>().ok(),
                "{:?}",
                s
            );
        }

        #[test]
        fn numbers_parse_as_the_standard_parser_does(s in "\\+?[0-9]{0,21}") {
            proptest::prop_assert_eq!(num::<u64>(&s, "bytes").ok(), s.parse::<u64>().ok());
            proptest::prop_assert_eq!(num::<i64>(&s, "start").ok(), s.parse::<i64>().ok());
            proptest::prop_assert_eq!(num::<u16>(&s, "srcport").ok(), s.parse::<u16>().ok());
            proptest::prop_assert_eq!(num::<u8>(&s, "protocol").ok(), s.parse::<u8>().ok());
        }

    }

    #[test]
    fn a_record_prints_the_same_whether_its_addresses_kept_their_text() {
        let format = Format::parse(crate::fields::DEFAULT_FORMAT).unwrap();
        let line = "2 123456789012 eni-abc 10.0.0.1 10.0.0.2 443 49152 6 10 - 1418530010 1418530070 ACCEPT OK";
        let (mut spans, mut rec) = (Vec::new(), FlowRecord::default());
        parse_line(&format, line, &mut spans, &mut rec).unwrap();
        assert_eq!(rec.addr_text, [Some("10.0.0.1"), Some("10.0.0.2")]);
        let printed = format!("{rec:?}");
        assert!(!printed.contains("addr_text"), "{printed}");
        rec.addr_text = [None, None];
        assert_eq!(format!("{rec:?}"), printed);
        assert!(printed
            .starts_with("FlowRecord { version: Some(2), account_id: Some(\"123456789012\")"));
        assert!(
            printed.ends_with("traffic_path: None, extra: \"\" }"),
            "{printed}"
        );
    }

    proptest::proptest! {
        #[test]
        fn plain_digits_read_as_the_standard_parser_does(
            s in "[0-9]{0,20}|[0-9/:a ]{0,12}",
        ) {
            let want = s.parse::<u64>().ok().filter(|_| (1..=17).contains(&s.len()));
            proptest::prop_assert_eq!(plain_digits(s.as_bytes()), want, "{:?}", s);
        }

        #[test]
        fn token_ends_are_found_as_a_byte_scan_finds_them(
            b in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b' '),
                    proptest::strategy::Just(b'\t'),
                    proptest::num::u8::ANY,
                ],
                0..40,
            ),
            start in 0usize..40,
        ) {
            let start = start.min(b.len());
            let naive = b[start..]
                .iter()
                .position(|c| *c == b' ' || *c == b'\t')
                .map_or(b.len(), |k| start + k);
            proptest::prop_assert_eq!(token_end(&b, start), naive);
        }

        #[test]
        fn any_text_parses_as_the_standard_parser_does(s in "[0-9.:a-f]{0,18}") {
            proptest::prop_assert_eq!(ip(&s, "dstaddr").ok(), s.parse::<IpAddr>().ok());
        }

        #[test]
        fn dotted_text_parses_as_the_standard_parser_does(s in "([0-9]{0,4}[.]){2,5}[0-9]{0,4}") {
            proptest::prop_assert_eq!(ip(&s, "srcaddr").ok(), s.parse::<IpAddr>().ok());
        }

        #[test]
        fn address_text_is_kept_only_as_display_spells_it(a: u32, v6: u128) {
            let v4 = std::net::Ipv4Addr::from(a).to_string();
            let (ip, text) = addr(&v4, "srcaddr").unwrap();
            proptest::prop_assert_eq!(ip.map(|i| i.to_string()), Some(v4.clone()));
            proptest::prop_assert_eq!(text, Some(v4.as_str()));
            let v6 = std::net::Ipv6Addr::from(v6).to_string();
            proptest::prop_assert_eq!(addr(&v6, "srcaddr").unwrap().1, None);
        }

        #[test]
        fn every_address_round_trips(a: u32) {
            let v4 = std::net::Ipv4Addr::from(a);
            proptest::prop_assert_eq!(dotted_quad(v4.to_string().as_bytes()), Some(v4));
        }
    }
}
