//! Lines of the default format (version 2, what AWS writes unless told otherwise) read field
//! by field in straight code: the common case of [`parse_line`](super::line::parse_line)
//! without its per-column lookups, which were a third of line parsing.

use std::net::IpAddr;

use super::line::{check_record, dotted_quad, plain_digits, token_end};
use super::FlowRecord;

/// A count field: `-` is no value; plain digits that fit are the value; anything else is left
/// to the general parser (`None`).
fn count<T: TryFrom<u64>>(t: &str) -> Option<Option<T>> {
    if t == "-" {
        return Some(None);
    }
    plain_digits(t.as_bytes())
        .and_then(|v| T::try_from(v).ok())
        .map(Some)
}

fn text(t: &str) -> Option<&str> {
    (t != "-").then_some(t)
}

/// The tokens of a line, separated by runs of spaces or tabs.
struct Tokens<'a> {
    line: &'a str,
    i: usize,
}

impl<'a> Tokens<'a> {
    // Inlined into each of the 14 calls: as a call it was a third of this parser.
    #[inline(always)]
    fn next(&mut self) -> Option<&'a str> {
        let b = self.line.as_bytes();
        while self.i < b.len() && (b[self.i] == b' ' || b[self.i] == b'\t') {
            self.i += 1;
        }
        if self.i == b.len() {
            return None;
        }
        let s = self.i;
        self.i = token_end(b, s);
        self.line.get(s..self.i)
    }
}

/// Reads a line of `DEFAULT_FORMAT` into `rec` (fresh) when it has the format's 14 fields,
/// each as AWS writes it (plain digits, dotted-quad IPv4 addresses, `-` for none), and the
/// record passes `check_record`. `None` for any other line, with `rec` partly set: the
/// caller resets it and the general parser reads the line (as this would have, or says what
/// is wrong with it).
pub(super) fn parse_default<'a>(line: &'a str, rec: &mut FlowRecord<'a>) -> Option<()> {
    let mut t = Tokens { line, i: 0 };
    rec.version = count(t.next()?)?;
    rec.account_id = text(t.next()?);
    rec.interface_id = text(t.next()?);
    for k in 0..2 {
        let a = t.next()?;
        if a != "-" {
            let ip = Some(IpAddr::V4(dotted_quad(a.as_bytes())?));
            match k {
                0 => rec.srcaddr = ip,
                _ => rec.dstaddr = ip,
            }
            rec.addr_text[k] = Some(a);
        }
    }
    rec.srcport = count(t.next()?)?;
    rec.dstport = count(t.next()?)?;
    rec.protocol = count(t.next()?)?;
    rec.packets = count(t.next()?)?;
    rec.bytes = count(t.next()?)?;
    rec.start = count(t.next()?)?;
    rec.end = count(t.next()?)?;
    rec.action = text(t.next()?);
    rec.log_status = text(t.next()?);
    if t.next().is_some() {
        return None;
    }
    check_record(rec).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::{Format, DEFAULT_FORMAT};

    fn general(line: &str) -> Result<String, String> {
        let format = Format::parse(DEFAULT_FORMAT).unwrap();
        let mut general = Format::parse(&format!("{DEFAULT_FORMAT} x")).unwrap();
        // The same columns without the fast path: the general parser's own reading.
        general.columns.truncate(format.columns.len());
        assert!(!general.is_default && general.columns == format.columns);
        let mut rec = FlowRecord::default();
        super::super::line::parse_line(&general, line, &mut Vec::new(), &mut rec)
            .map(|()| format!("{rec:?}"))
    }

    #[test]
    fn aws_lines_take_the_fast_path() {
        for line in [
            "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK",
            "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA",
            "2\t123456789010 eni-1 10.0.0.1  10.0.0.2 443 49152 6 10 840 1418530010 1418530070 REJECT OK  ",
        ] {
            let mut rec = FlowRecord::default();
            assert!(parse_default(line, &mut rec).is_some(), "{line}");
            assert_eq!(Ok(format!("{rec:?}")), general(line), "{line}");
        }
        // IPv6, a signed number, a field short: left to the general parser.
        for line in [
            "2 1 eni-1 ::1 10.0.0.2 443 49152 6 10 840 1418530010 1418530070 ACCEPT OK",
            "2 1 eni-1 10.0.0.1 10.0.0.2 +443 49152 6 10 840 1418530010 1418530070 ACCEPT OK",
            "2 1 eni-1 10.0.0.1 10.0.0.2 443 49152 6 10 840 1418530010 1418530070 ACCEPT",
            "2 1 eni-1 10.0.0.1 10.0.0.2 443 49152 6 10 840 1418530070 1418530010 ACCEPT OK",
        ] {
            assert!(
                parse_default(line, &mut FlowRecord::default()).is_none(),
                "{line}"
            );
        }
    }

    /// Fields in the default format's places: mostly as AWS writes them, at times not.
    fn field(kind: usize) -> proptest::strategy::BoxedStrategy<String> {
        use proptest::strategy::Strategy;
        let (usual, odd) = match kind {
            // counts
            0 => ("[0-9]{1,4}|-", "[0-9]{17,20}|\\+[0-9]|0x1|0[0-9]|[0-9]{6}"),
            // the protocol (a byte)
            4 => ("[0-9]{1,2}|-", "[0-9]{3}"),
            // addresses
            1 => (
                "((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}[1-9]?[0-9]|-",
                "::1|1\\.2\\.3|01\\.2\\.3\\.4|[0-9]{1,3}(\\.[0-9]{1,3}){3}",
            ),
            // times, either order
            2 => ("14185300[0-9]{2}|-", "999999999999|-1"),
            // text
            _ => ("-|eni-[0-9a-f]{4}|ACCEPT|REJECT|OK|NODATA", "\\u{e9}|x"),
        };
        let re = |r| proptest::string::string_regex(r).unwrap();
        proptest::prop_oneof![20 => re(usual), 1 => re(odd)].boxed()
    }

    /// Whether the fast path would have taken `line` if it were correct: no form it leaves
    /// to the general parser (IPv6, signs, 18 digits or more).
    fn plain(line: &str) -> bool {
        !(line.contains("::") || line.contains('+'))
            && line.split_ascii_whitespace().all(|t| t.len() < 18)
    }

    proptest::proptest! {
        #[test]
        fn a_line_read_fast_reads_as_the_general_parser_reads_it(
            fields in [0, 3, 3, 1, 1, 0, 0, 4, 0, 0, 2, 2, 3, 3].map(field),
            extra in proptest::option::weighted(0.1, field(3)),
            sep in "[ \t]{1,2}",
            tail in "[ \t]{0,2}",
        ) {
            let mut line = fields.join(&sep);
            if let Some(x) = extra {
                line = line + " " + &x;
            }
            line += &tail;
            let mut rec = FlowRecord::default();
            match parse_default(&line, &mut rec) {
                Some(()) => proptest::prop_assert_eq!(
                    Ok(format!("{rec:?}")),
                    general(&line),
                    "{:?}",
                    line
                ),
                // What the fast path leaves is either wrong or in a form it does not take.
                None => proptest::prop_assert!(
                    general(&line).is_err() || !plain(&line),
                    "{:?}",
                    line
                ),
            }
        }
    }
}
