//! CloudWatch Metric Streams in the OpenTelemetry 1.0.0 format: a sequence of
//! `ExportMetricsServiceRequest` protobuf messages, each after an unsigned varint of its length,
//! as Firehose delivers them to S3 (gzip or not). CloudWatch writes every datapoint as a
//! Summary: `sum`, `count`, quantile 0 = min and 1 = max; its attributes `Namespace`,
//! `MetricName` and `Dimensions` (a key-value list); the resource says the account, region and
//! stream (`aws.exporter.arn`).
//!
//! Only the fields linkmeter reads are decoded, by hand (field numbers of
//! opentelemetry-proto v1.0.0); unknown fields are skipped as protobuf requires. A message that
//! cannot be decoded is quarantined with its position and the reason, and the next one is read
//! when the length prefixes still line up.

use std::io::{BufRead, Read};

use crate::limits::Bounds;

use super::{
    cut_raw, open_text, BadInput, DecodeError, DecodeStats, Decoder, Event, MetricPoint, Position,
};

/// Decodes OpenTelemetry 1.0.0 metric-stream records from any reader.
pub struct OtelDecoder<R: Read> {
    reader: Option<R>,
    bounds: Bounds,
}

impl<R: Read> OtelDecoder<R> {
    /// A decoder of a file or object (gzip recognized by its magic bytes).
    pub fn new(reader: R) -> Self {
        OtelDecoder {
            reader: Some(reader),
            bounds: Bounds::default(),
        }
    }

    /// Holds the input to these limits (message size, nesting, decompressed size).
    pub fn bounded(mut self, bounds: Bounds) -> Self {
        self.bounds = bounds;
        self
    }
}

/// A protobuf reader over one message's bytes.
struct Pb<'a> {
    b: &'a [u8],
}

/// One field's value.
enum Val<'a> {
    Varint,
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

impl<'a> Pb<'a> {
    fn new(b: &'a [u8]) -> Self {
        Pb { b }
    }

    /// The next (field number, value), `None` at the end, an error when malformed.
    fn next(&mut self) -> Result<Option<(u64, Val<'a>)>, String> {
        if self.b.is_empty() {
            return Ok(None);
        }
        let (key, n) = varint(self.b).ok_or("a field key is cut off")?;
        self.b = &self.b[n..];
        let (field, wire) = (key >> 3, key & 7);
        let val = match wire {
            0 => {
                let (_, n) = varint(self.b).ok_or("a varint is cut off")?;
                self.b = &self.b[n..];
                Val::Varint
            }
            1 => {
                let x: [u8; 8] = self
                    .b
                    .get(..8)
                    .ok_or("a 64-bit field is cut off")?
                    .try_into()
                    .expect("eight bytes");
                self.b = &self.b[8..];
                Val::Fixed64(u64::from_le_bytes(x))
            }
            2 => {
                let (len, n) = varint(self.b).ok_or("a length is cut off")?;
                let end = n
                    .checked_add(usize::try_from(len).map_err(|_| "a length is too large")?)
                    .filter(|e| *e <= self.b.len())
                    .ok_or("a length runs past the message")?;
                let v = &self.b[n..end];
                self.b = &self.b[end..];
                Val::Bytes(v)
            }
            5 => {
                self.b = self.b.get(4..).ok_or("a 32-bit field is cut off")?;
                Val::Fixed32
            }
            w => return Err(format!("wire type {w} is not protobuf")),
        };
        Ok(Some((field, val)))
    }
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "a string is not UTF-8".to_string())
}

/// `KeyValue { key = 1; AnyValue value = 2 }` → (key, string value or nested list).
/// `depth` is how many more levels of nesting may follow: a list nested without end would
/// otherwise recurse until the stack overflows.
fn key_value(b: &[u8], depth: usize) -> Result<(String, Attr), String> {
    let (mut key, mut value) = (String::new(), Attr::None);
    let mut p = Pb::new(b);
    while let Some((f, v)) = p.next()? {
        match (f, v) {
            (1, Val::Bytes(k)) => key = text(k)?,
            (2, Val::Bytes(any)) => value = any_value(any, depth)?,
            _ => {}
        }
    }
    Ok((key, value))
}

enum Attr {
    None,
    Str(String),
    List(Vec<(String, Attr)>),
}

/// `AnyValue { string_value = 1; …; kvlist_value = 6 }`.
fn any_value(b: &[u8], depth: usize) -> Result<Attr, String> {
    let mut p = Pb::new(b);
    let mut out = Attr::None;
    while let Some((f, v)) = p.next()? {
        match (f, v) {
            (1, Val::Bytes(s)) => out = Attr::Str(text(s)?),
            (6, Val::Bytes(list)) => {
                let depth = depth
                    .checked_sub(1)
                    .ok_or("values are nested deeper than the limit (max_nesting)")?;
                let mut items = Vec::new();
                let mut q = Pb::new(list);
                while let Some((f, v)) = q.next()? {
                    if let (1, Val::Bytes(kv)) = (f, v) {
                        items.push(key_value(kv, depth)?);
                    }
                }
                out = Attr::List(items);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// What the resource says about every datapoint under it.
#[derive(Default, Clone)]
struct Origin {
    account: Option<String>,
    region: Option<String>,
    stream: Option<String>,
}

/// Decodes one `ExportMetricsServiceRequest` into datapoints, and the reasons of the
/// datapoints that could not be used (each is quarantined alone; the others are kept).
/// Lists may nest `nesting` deep.
pub fn decode_request(b: &[u8], nesting: usize) -> Result<(Vec<MetricPoint>, Vec<String>), String> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let mut req = Pb::new(b);
    while let Some((f, v)) = req.next()? {
        let (1, Val::Bytes(rm)) = (f, v) else {
            continue;
        };
        // ResourceMetrics { resource = 1; scope_metrics = 2 }: the resource may come after
        // the metrics on the wire, so it is read first.
        let mut origin = Origin::default();
        let mut p = Pb::new(rm);
        while let Some((f, v)) = p.next()? {
            if let (1, Val::Bytes(res)) = (f, v) {
                let mut r = Pb::new(res);
                while let Some((f, v)) = r.next()? {
                    if let (1, Val::Bytes(kv)) = (f, v) {
                        if let (k, Attr::Str(s)) = key_value(kv, nesting)? {
                            match k.as_str() {
                                "cloud.account.id" => origin.account = Some(s),
                                "cloud.region" => origin.region = Some(s),
                                "aws.exporter.arn" => {
                                    origin.stream = s.rsplit('/').next().map(str::to_string)
                                }
                                _ => {}
                            }
                        }
                    }
                }
            }
        }
        let mut p = Pb::new(rm);
        while let Some((f, v)) = p.next()? {
            let (2, Val::Bytes(sm)) = (f, v) else {
                continue;
            };
            let mut s = Pb::new(sm);
            while let Some((f, v)) = s.next()? {
                let (2, Val::Bytes(metric)) = (f, v) else {
                    continue;
                };
                metric_points(metric, &origin, nesting, &mut out, &mut bad)?;
            }
        }
    }
    Ok((out, bad))
}

/// `Metric { name = 1; unit = 3; summary = 11 }` → one point per Summary datapoint.
fn metric_points(
    b: &[u8],
    origin: &Origin,
    nesting: usize,
    out: &mut Vec<MetricPoint>,
    bad: &mut Vec<String>,
) -> Result<(), String> {
    let mut unit = None;
    let mut summaries = Vec::new();
    let mut p = Pb::new(b);
    while let Some((f, v)) = p.next()? {
        match (f, v) {
            (3, Val::Bytes(u)) => unit = Some(text(u)?),
            (11, Val::Bytes(s)) => summaries.push(s),
            _ => {}
        }
    }
    for s in summaries {
        let mut q = Pb::new(s);
        while let Some((f, v)) = q.next()? {
            let (1, Val::Bytes(dp)) = (f, v) else {
                continue;
            };
            match data_point(dp, origin, unit.as_deref(), nesting) {
                Ok(p) => out.push(p),
                Err(e) => bad.push(e),
            }
        }
    }
    Ok(())
}

/// OTel's unit back to CloudWatch's (`By/s` → `Bytes/Second`), for the ones MSK uses.
fn cloudwatch_unit(u: &str) -> String {
    match u {
        "By/s" => "Bytes/Second",
        "By" => "Bytes",
        "{Count}" => "Count",
        "1" => "None",
        o => o,
    }
    .to_string()
}

fn data_point(
    b: &[u8],
    origin: &Origin,
    unit: Option<&str>,
    nesting: usize,
) -> Result<MetricPoint, String> {
    let (mut start, mut end) = (0u64, 0u64);
    let mut p = MetricPoint {
        format: "otel-1.0",
        account_id: origin.account.clone(),
        region: origin.region.clone(),
        stream: origin.stream.clone(),
        unit: unit.map(cloudwatch_unit),
        ..Default::default()
    };
    let mut dims = Vec::new();
    let mut q = Pb::new(b);
    while let Some((f, v)) = q.next()? {
        match (f, v) {
            (7, Val::Bytes(kv)) => match key_value(kv, nesting)? {
                (k, Attr::Str(s)) if k == "Namespace" => p.namespace = s,
                (k, Attr::Str(s)) if k == "MetricName" => p.metric = s,
                (k, Attr::List(items)) if k == "Dimensions" => {
                    for (dk, dv) in items {
                        if let Attr::Str(dv) = dv {
                            dims.push((dk, dv));
                        }
                    }
                }
                _ => {}
            },
            (2, Val::Fixed64(t)) => start = t,
            (3, Val::Fixed64(t)) => end = t,
            (4, Val::Fixed64(c)) => p.count = Some(c as f64),
            (5, Val::Fixed64(s)) => p.sum = Some(f64::from_bits(s)),
            (6, Val::Bytes(qv)) => {
                let (mut quantile, mut value) = (None, None);
                let mut r = Pb::new(qv);
                while let Some((f, v)) = r.next()? {
                    match (f, v) {
                        (1, Val::Fixed64(x)) => quantile = Some(f64::from_bits(x)),
                        (2, Val::Fixed64(x)) => value = Some(f64::from_bits(x)),
                        _ => {}
                    }
                }
                // An absent double is 0.0 in proto3: quantile 0 (min) is often not sent.
                let q = quantile.unwrap_or(0.0);
                if q == 0.0 {
                    p.min = Some(value.unwrap_or(0.0));
                } else if q == 1.0 {
                    p.max = Some(value.unwrap_or(0.0));
                }
            }
            _ => {}
        }
    }
    if p.namespace.is_empty() || p.metric.is_empty() {
        return Err("a datapoint has no Namespace or MetricName attribute".into());
    }
    let start_ms = i64::try_from(start / 1_000_000).map_err(|_| "start time is out of range")?;
    if !(0..=super::MAX_TIME * 1000).contains(&start_ms) || start == 0 {
        return Err(format!("start time {start} ns is outside years 1970–9999"));
    }
    p.time_ms = start_ms;
    p.period_secs = u32::try_from(end.saturating_sub(start) / 1_000_000_000)
        .ok()
        .filter(|s| *s > 0)
        .unwrap_or(super::metric_stream::STREAM_PERIOD_SECS);
    if p.namespace == "AWS/Kafka" {
        for (name, v) in [
            ("count", p.count),
            ("sum", p.sum),
            ("min", p.min),
            ("max", p.max),
        ] {
            if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                return Err(format!("{name} is negative or not a number"));
            }
        }
    }
    let mut other = Vec::new();
    for (k, v) in dims {
        match k.as_str() {
            "Cluster Name" => p.cluster = Some(v),
            "Broker ID" => {
                p.broker =
                    Some(v.trim().parse().map_err(|_| {
                        format!("dimension \"Broker ID\" {v:?} is not a broker number")
                    })?)
            }
            "Topic" => p.topic = Some(v),
            "Client Authentication" => p.client_auth = Some(v),
            _ => other.push(format!("{k}={v}")),
        }
    }
    other.sort();
    p.dimensions = other.join(", ");
    Ok(p)
}

/// Whether the first bytes look like length-prefixed `ExportMetricsServiceRequest`s.
pub fn looks_like(head: &[u8]) -> bool {
    let b = super::text_prefix(head, 64);
    let Some((len, n)) = varint(&b) else {
        return false;
    };
    // resource_metrics (field 1, length-delimited), whose first field is resource (1) or
    // scope_metrics (2), both length-delimited.
    len > 2
        && b.get(n) == Some(&0x0a)
        && varint(&b[(n + 1).min(b.len())..])
            .is_some_and(|(m, k)| m < len && matches!(b.get(n + 1 + k), Some(0x0a) | Some(0x12)))
}

impl<R: Read> Decoder for OtelDecoder<R> {
    fn decode(&mut self, sink: &mut dyn FnMut(Event<'_, '_>)) -> Result<DecodeStats, DecodeError> {
        let raw = self
            .reader
            .take()
            .expect("decode is called once per decoder");
        let (mut reader, _) = open_text(raw, true, &self.bounds)?;
        let (mut index, mut offset) = (0u64, 0u64);
        let mut msg = Vec::new();
        loop {
            // The length prefix, byte by byte (a varint is at most 5 bytes for 32 bits).
            let mut len = 0u64;
            let mut shift = 0;
            let at = offset;
            let msg_no = index + 1;
            let bad = move |reason: String, raw: &[u8], records: u64| BadInput {
                position: Position {
                    line: msg_no,
                    offset: at,
                },
                reason,
                raw: cut_raw(raw),
                records,
            };
            let mut ended = false;
            loop {
                let mut byte = [0u8; 1];
                match reader.read(&mut byte) {
                    Ok(0) if shift == 0 => {
                        ended = true;
                        break;
                    }
                    Ok(0) => {
                        sink(Event::Bad(bad("a length prefix is cut off".into(), &[], 0)));
                        ended = true;
                        break;
                    }
                    Ok(_) => {
                        offset += 1;
                        len |= u64::from(byte[0] & 0x7f) << shift;
                        shift += 7;
                        if byte[0] & 0x80 == 0 {
                            break;
                        }
                        if shift > 28 {
                            sink(Event::Bad(bad("a length prefix is longer than 32 bits: not an OpenTelemetry metric stream, or corrupt; the rest cannot be read".into(), &byte, 1)));
                            return Ok(DecodeStats { lines: index });
                        }
                    }
                    Err(e) => {
                        sink(Event::Bad(bad(
                            format!(
                                "the input is corrupt or cut off ({e}); the rest cannot be read"
                            ),
                            &[],
                            0,
                        )));
                        return Ok(DecodeStats { lines: index });
                    }
                }
            }
            if ended {
                break;
            }
            index += 1;
            msg.clear();
            if len > self.bounds.message as u64 {
                // Its end cannot be found without reading it, so nothing after it is usable.
                sink(Event::Bad(bad(
                    format!("message {index} claims {len} bytes, more than the {}-byte limit (max_message_bytes); the rest of the input is not read", self.bounds.message),
                    &[],
                    1,
                )));
                break;
            }
            let got = reader.by_ref().take(len).read_to_end(&mut msg).unwrap_or(0);
            offset += got as u64;
            if (got as u64) < len {
                sink(Event::Bad(bad(
                    format!("message {index} is cut off: {got} of {len} bytes"),
                    &msg,
                    1,
                )));
                break;
            }
            match decode_request(&msg, self.bounds.nesting) {
                Ok((points, errors)) => {
                    let pos = Position { line: index, offset: at };
                    for p in &points {
                        sink(Event::Metric(p, pos));
                    }
                    for reason in errors {
                        sink(Event::Bad(BadInput {
                            position: pos,
                            reason: format!("message {index}: a datapoint {reason}"),
                            raw: String::new(),
                            records: 1,
                        }));
                    }
                }
                Err(reason) => sink(Event::Bad(bad(
                    format!("message {index} is not an OpenTelemetry ExportMetricsServiceRequest: {reason}"),
                    &msg,
                    1,
                ))),
            }
        }
        let _ = reader.fill_buf();
        Ok(DecodeStats { lines: index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by the official OpenTelemetry protobuf classes: see `testdata/otel_stream.py`.
    const STREAM: &[u8] = include_bytes!("testdata/otel_stream.bin");

    fn decode(b: &[u8]) -> (Vec<MetricPoint>, Vec<BadInput>) {
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        OtelDecoder::new(b)
            .decode(&mut |e| match e {
                Event::Metric(p, _) => ok.push(p.clone()),
                Event::Bad(b) => bad.push(b),
                _ => unreachable!(),
            })
            .unwrap();
        (ok, bad)
    }

    #[test]
    fn official_encoder_output_decodes() {
        assert!(looks_like(STREAM));
        let (ok, bad) = decode(STREAM);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(ok.len(), 3);
        let b1 = &ok[0];
        assert_eq!(
            (b1.namespace.as_str(), b1.metric.as_str()),
            ("AWS/Kafka", "BytesInPerSec")
        );
        assert_eq!(
            (b1.cluster.as_deref(), b1.broker),
            (Some("orders-prod"), Some(1))
        );
        assert_eq!(b1.time_ms, 1_790_812_800_000);
        assert_eq!(b1.period_secs, 60);
        assert_eq!(
            (b1.count, b1.sum, b1.min, b1.max),
            (Some(2.0), Some(3000.0), Some(1000.0), Some(2000.0))
        );
        assert_eq!(b1.unit.as_deref(), Some("Bytes/Second"));
        assert_eq!(b1.account_id.as_deref(), Some("999999999999"));
        assert_eq!(b1.stream.as_deref(), Some("msk-metrics"));
        // Average 1,500 bytes/s over the minute.
        assert_eq!(b1.bytes(), Some(90_000));
        assert_eq!(ok[1].broker, Some(2));
        assert_eq!(ok[2].namespace, "AWS/DynamoDB");
        assert_eq!(ok[2].dimensions, "TableName=MyTable");
        assert_eq!(ok[2].unit.as_deref(), Some("Count"));
        // Through gzip too.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, STREAM).unwrap();
        let z = gz.finish().unwrap();
        assert!(looks_like(&z));
        assert_eq!(decode(&z).0, ok);
    }

    #[test]
    fn damage_is_quarantined_and_what_came_before_is_kept() {
        // Cut in the second message: the first one's points stay.
        let (ok, bad) = decode(&STREAM[..STREAM.len() - 10]);
        assert_eq!(ok.len(), 2);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].reason.contains("cut off"), "{}", bad[0].reason);
        // A corrupt message inside an intact frame: quarantined, the next one still read.
        let (len, n) = varint(STREAM).unwrap();
        let mut b = STREAM.to_vec();
        for x in &mut b[n..n + len as usize] {
            *x = 0xff;
        }
        let (ok, bad) = decode(&b);
        assert_eq!((ok.len(), bad.len()), (1, 1));
        assert!(bad[0].reason.contains("message 1"), "{}", bad[0].reason);
        // One bad datapoint (a broker id that is not a number) costs only itself.
        let needle = b"\x0a\x09Broker ID\x12\x03\x0a\x012";
        let at = STREAM
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("broker 2's dimension is in the fixture");
        let mut b = STREAM.to_vec();
        b[at + needle.len() - 1] = b'x';
        let (ok, bad) = decode(&b);
        assert_eq!((ok.len(), bad.len()), (2, 1));
        assert!(bad[0].reason.contains("Broker ID"), "{}", bad[0].reason);
        assert!(!looks_like(b"version account-id interface-id"));
        assert!(!looks_like(b"2 123456789012 eni-1 10.0.0.1"));
        assert!(!looks_like(b"{\"metric_name\":1}"));
    }

    proptest::proptest! {
        /// Any bytes: no panic, and every point is sane.
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let (ok, _) = decode(&b);
            for p in ok {
                proptest::prop_assert!(p.time_ms >= 0);
            }
        }
    }
}
