//! Decoders: bytes of one input → flow records and broker-metric datapoints, in input order
//! ([`route`] tells which decoder an input needs by its first bytes).
//!
//! A decoder hands each record to a callback as a borrowed [`FlowRecord`] instead of building
//! Arrow batches: most flow-log records are noise that attribution drops at once, and
//! materialising them would cost more than the whole rest of ingest. Attributed records are
//! turned into Arrow columns by the row builders (`crate::rows`).

pub mod flow_parquet;
pub mod flow_text;
mod gunzip;
mod inflate;
mod line;
mod line_default;
mod lines;
pub mod metric_stream;
pub mod otel;
pub(crate) mod parquet_pages;
pub mod prometheus;
pub mod route;

pub use line::MAX_COUNT;
pub(crate) use line::{check_record, parse_line, set_field, MAX_TIME};

#[cfg(test)]
mod fuzz_regressions;

use std::net::IpAddr;

use crate::limits::Bounds;

/// What an input holds. Files and objects are told apart by their bytes (`auto`); a Kafka
/// topic's messages are flow-log lines unless its source says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Content {
    /// Parquet, JSON (a metric stream) or flow-log text, by the first bytes.
    #[default]
    Auto,
    /// VPC Flow Log records.
    FlowLogs,
    /// CloudWatch Metric Streams JSON.
    MetricStream,
    /// Prometheus text from MSK open monitoring, with sample timestamps.
    Prometheus,
    /// CloudWatch Metric Streams in the OpenTelemetry 1.0.0 format (length-prefixed protobuf).
    #[serde(rename = "opentelemetry")]
    OpenTelemetry,
    /// The AWS bill as a CUR 2.0 export (Data Exports, Parquet): read into `bill_lines`.
    #[serde(rename = "cur2")]
    Cur2,
    /// The AWS bill as a FOCUS export with AWS columns (Parquet): read into `bill_lines`.
    Focus,
}

impl Content {
    /// Whether inputs of this content are bill exports, read by [`crate::bill`] rather than
    /// the pipeline.
    pub fn is_bill(self) -> bool {
        matches!(self, Content::Cur2 | Content::Focus)
    }
}

/// Longest raw text kept in a quarantine row; the rest is cut, with a marker.
pub const RAW_LIMIT: usize = 512;

/// One flow-log record, borrowing its strings from the decoder's buffer.
#[derive(Clone, Default, PartialEq)]
pub struct FlowRecord<'a> {
    pub version: Option<u32>,
    pub account_id: Option<&'a str>,
    pub interface_id: Option<&'a str>,
    pub srcaddr: Option<IpAddr>,
    pub dstaddr: Option<IpAddr>,
    /// The line's text of `srcaddr` and `dstaddr` when it is an IPv4 address spelled as
    /// `Display` spells it (set by the parser; rows copy it instead of formatting the address).
    pub addr_text: [Option<&'a str>; 2],
    pub srcport: Option<u16>,
    pub dstport: Option<u16>,
    pub protocol: Option<u8>,
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub action: Option<&'a str>,
    pub log_status: Option<&'a str>,
    pub vpc_id: Option<&'a str>,
    pub subnet_id: Option<&'a str>,
    pub instance_id: Option<&'a str>,
    pub tcp_flags: Option<u32>,
    pub flow_type: Option<&'a str>,
    pub pkt_srcaddr: Option<IpAddr>,
    pub pkt_dstaddr: Option<IpAddr>,
    pub region: Option<&'a str>,
    pub az_id: Option<&'a str>,
    pub flow_direction: Option<&'a str>,
    pub traffic_path: Option<u32>,
    /// Values of fields linkmeter does not interpret, as `name=value` pairs separated by
    /// spaces; empty when there are none.
    pub extra: String,
}

/// The record's values as a derived `Debug` would print them, without `addr_text` (a copy of
/// two of them): quarantine rows keep this text for records that cannot be metered, and it
/// must not change with how the parser read the addresses.
impl std::fmt::Debug for FlowRecord<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowRecord")
            .field("version", &self.version)
            .field("account_id", &self.account_id)
            .field("interface_id", &self.interface_id)
            .field("srcaddr", &self.srcaddr)
            .field("dstaddr", &self.dstaddr)
            .field("srcport", &self.srcport)
            .field("dstport", &self.dstport)
            .field("protocol", &self.protocol)
            .field("packets", &self.packets)
            .field("bytes", &self.bytes)
            .field("start", &self.start)
            .field("end", &self.end)
            .field("action", &self.action)
            .field("log_status", &self.log_status)
            .field("vpc_id", &self.vpc_id)
            .field("subnet_id", &self.subnet_id)
            .field("instance_id", &self.instance_id)
            .field("tcp_flags", &self.tcp_flags)
            .field("flow_type", &self.flow_type)
            .field("pkt_srcaddr", &self.pkt_srcaddr)
            .field("pkt_dstaddr", &self.pkt_dstaddr)
            .field("region", &self.region)
            .field("az_id", &self.az_id)
            .field("flow_direction", &self.flow_direction)
            .field("traffic_path", &self.traffic_path)
            .field("extra", &self.extra)
            .finish()
    }
}

impl FlowRecord<'_> {
    /// Whether this is a `NODATA` or `SKIPDATA` coverage row rather than traffic.
    pub fn is_coverage(&self) -> bool {
        matches!(self.log_status, Some("NODATA") | Some("SKIPDATA"))
    }
}

/// Where in its input a record or a bad line sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// 1-based line number (text) or 1-based row number (Parquet).
    pub line: u64,
    /// Byte offset of the line in the decompressed text (row number for Parquet).
    pub offset: u64,
}

/// Input that could not be decoded: one line, or a whole file or its unreadable tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInput {
    /// Where the problem starts.
    pub position: Position,
    /// What is wrong, in words a user can act on.
    pub reason: String,
    /// The offending text, cut to [`RAW_LIMIT`] bytes (lossy UTF-8).
    pub raw: String,
    /// How many records this stands for (1 for a line; every line of a file whose header is
    /// unusable; 0 for an unreadable tail whose records cannot be counted).
    pub records: u64,
}

/// What a decoder hands to its callback.
#[derive(Debug)]
pub enum Event<'r, 'a> {
    /// A well-formed record (traffic or coverage).
    Record(&'r FlowRecord<'a>, Position),
    /// Something that could not be decoded.
    Bad(BadInput),
    /// A broker-metric datapoint.
    Metric(&'r MetricPoint, Position),
    /// A well-formed line linkmeter does not keep (another metric family): counted, filtered.
    Ignored(Position),
}

/// One broker-metric datapoint (CloudWatch, OpenTelemetry or Prometheus), with its raw
/// statistics; [`MetricPoint::bytes`] turns it into bytes for the period it covers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricPoint {
    /// Start of the period, ms since the epoch.
    pub time_ms: i64,
    /// Which format it came in (`cloudwatch-json`, …).
    pub format: &'static str,
    /// Metric stream name.
    pub stream: Option<String>,
    /// Account that published it.
    pub account_id: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// CloudWatch namespace (`AWS/Kafka` for MSK).
    pub namespace: String,
    /// Metric name (`BytesInPerSec`, …).
    pub metric: String,
    /// Dimension `Cluster Name`.
    pub cluster: Option<String>,
    /// Dimension `Broker ID`.
    pub broker: Option<u16>,
    /// Dimension `Topic`.
    pub topic: Option<String>,
    /// Dimension `Client Authentication`.
    pub client_auth: Option<String>,
    /// Other dimensions, `name=value` joined by `, `.
    pub dimensions: String,
    /// Unit as published (`Bytes/Second`, `Bytes`, `Count`).
    pub unit: Option<String>,
    /// Number of samples in the period.
    pub count: Option<f64>,
    /// Sum of the samples.
    pub sum: Option<f64>,
    /// Smallest sample.
    pub min: Option<f64>,
    /// Largest sample.
    pub max: Option<f64>,
    /// A cumulative counter's raw value (Prometheus `_Count`), turned into bytes by the
    /// difference from the previous scrape.
    pub counter: Option<f64>,
    /// Seconds the statistics cover.
    pub period_secs: u32,
}

impl MetricPoint {
    /// Bytes in this point's period, for the metrics that measure bytes (DESIGN §3): a rate
    /// (`…BytesInPerSec`) is its average × the period, a total (`TrafficBytes`) its sum.
    /// Rounded to whole bytes: these are measurements to reconcile against, never billed.
    pub fn bytes(&self) -> Option<u64> {
        let rate =
            self.metric.ends_with("BytesInPerSec") || self.metric.ends_with("BytesOutPerSec");
        let v = if rate {
            let (sum, count) = (self.sum?, self.count?);
            if count <= 0.0 {
                return None;
            }
            sum / count * f64::from(self.period_secs)
        } else if self.metric == "TrafficBytes" {
            self.sum?
        } else {
            return None;
        };
        (v.is_finite() && v >= 0.0 && v < MAX_COUNT as f64).then(|| v.round() as u64)
    }
}

/// The line loop of the metric decoders: every non-blank line (after `skip`) goes to `parse`,
/// whose answer becomes a datapoint, an ignored line, or a bad line with its position; a
/// corrupt or cut-off stream ends with one bad entry saying where.
pub(crate) fn metric_lines<R: std::io::Read>(
    raw: R,
    allow_gzip: bool,
    bounds: &Bounds,
    skip: impl Fn(&[u8]) -> bool,
    mut parse: impl FnMut(&str) -> Result<Option<MetricPoint>, String>,
    sink: &mut dyn FnMut(Event<'_, '_>),
) -> Result<DecodeStats, DecodeError> {
    let (mut reader, gz) = open_text(raw, allow_gzip, bounds)?;
    let mut buf = Vec::with_capacity(1024);
    let (mut line_no, mut offset) = (0u64, 0u64);
    loop {
        buf.clear();
        let at = offset;
        let mut n = 0;
        let long = match crate::limits::read_line(&mut reader, &mut buf, bounds.line, &mut n) {
            Ok(_) if n == 0 => break,
            Ok(long) => {
                line_no += 1;
                offset += n;
                long
            }
            Err(e) => {
                sink(Event::Bad(BadInput {
                    position: Position {
                        line: line_no + 1,
                        offset: at,
                    },
                    reason: format!(
                        "{} stream is corrupt or cut off after {} bytes ({e}); the rest of the input cannot be read",
                        if gz { "gzip" } else { "text" },
                        at + n
                    ),
                    raw: cut_raw(&buf),
                    records: u64::from(!buf.is_empty()),
                }));
                break;
            }
        };
        let pos = Position {
            line: line_no,
            offset: at,
        };
        if long {
            sink(Event::Bad(BadInput {
                position: pos,
                reason: format!(
                    "line is {n} bytes, longer than the {}-byte limit (max_line_bytes); skipped",
                    bounds.line
                ),
                raw: cut_raw(&buf),
                records: 1,
            }));
            continue;
        }
        let line = buf.trim_ascii();
        if line.is_empty() || skip(line) {
            continue;
        }
        let parsed = std::str::from_utf8(line)
            .map_err(|_| "line is not UTF-8 text".to_string())
            .and_then(&mut parse);
        match parsed {
            Ok(Some(p)) => sink(Event::Metric(&p, pos)),
            Ok(None) => sink(Event::Ignored(pos)),
            Err(reason) => sink(Event::Bad(BadInput {
                position: pos,
                reason,
                raw: cut_raw(line),
                records: 1,
            })),
        }
    }
    Ok(DecodeStats { lines: line_no })
}

/// Opens text that may be gzip (recognized by its magic bytes when `allow_gzip`).
pub(crate) fn open_text<'r, R: std::io::Read + 'r>(
    raw: R,
    allow_gzip: bool,
    bounds: &Bounds,
) -> Result<(Box<dyn std::io::BufRead + 'r>, bool), DecodeError> {
    use std::io::BufRead;
    let mut head = std::io::BufReader::with_capacity(256 * 1024, raw);
    let gz = allow_gzip
        && flow_text::is_gzip(head.fill_buf().map_err(|e| DecodeError::Io {
            uri: String::new(),
            source: e,
        })?);
    Ok(if gz {
        (Box::new(std::io::BufReader::new(bounds.gunzip(head))), true)
    } else {
        (Box::new(head), false)
    })
}

/// Totals a decoder reports when it finishes an input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Lines (text) or rows (Parquet) read, including headers and bad ones.
    pub lines: u64,
}

/// Errors that stop a decoder before it produced anything for an input.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The input could not be opened or read at all.
    #[error("cannot read {uri}: {source}")]
    Io {
        uri: String,
        #[source]
        source: std::io::Error,
    },
}

/// The role of a decoder: turn one input's bytes into records and bad-input reports.
pub trait Decoder {
    /// Feeds every record and bad line of the input to `sink`, in input order.
    fn decode(&mut self, sink: &mut dyn FnMut(Event<'_, '_>)) -> Result<DecodeStats, DecodeError>;
}

/// Cuts raw text to at most [`RAW_LIMIT`] bytes of UTF-8 for a quarantine row (invalid bytes
/// become U+FFFD, which is longer than the byte it replaces, so the cut is made after the
/// conversion; one byte past the limit is kept so that a cut is always marked).
pub fn cut_raw(raw: &[u8]) -> String {
    let prefix = String::from_utf8_lossy(&raw[..raw.len().min(RAW_LIMIT + 1)]);
    crate::limits::cut_text(&prefix, RAW_LIMIT).into_owned()
}

/// The message of a caught panic, cut for a quarantine reason.
pub(crate) fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    let text = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    crate::limits::cut_text(&text, 200).into_owned()
}

/// Whether an input's first bytes (gzip-compressed or not) start a JSON object, as CloudWatch
/// metric streams do, rather than a flow-log header or record.
pub fn is_json(prefix: &[u8]) -> bool {
    let text = text_prefix(prefix, 64);
    let text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&text);
    text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Up to `limit` bytes of the text an input starts with, decompressed when it is gzip (the
/// prefix may end mid-stream: whatever decompresses before that is enough).
pub fn text_prefix(prefix: &[u8], limit: usize) -> std::borrow::Cow<'_, [u8]> {
    if !prefix.starts_with(&[0x1f, 0x8b]) {
        return std::borrow::Cow::Borrowed(&prefix[..prefix.len().min(limit)]);
    }
    let mut plain = vec![0u8; limit];
    let mut d = flate2::read::MultiGzDecoder::new(prefix);
    let mut n = 0;
    while n < plain.len() {
        match std::io::Read::read(&mut d, &mut plain[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    plain.truncate(n);
    std::borrow::Cow::Owned(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_raw_stays_within_the_limit_even_for_binary() {
        // Found by the flow_text fuzz target: 0xFF bytes each become a 3-byte U+FFFD.
        let binary = vec![0xffu8; 600];
        let c = cut_raw(&binary);
        assert!(c.len() <= RAW_LIMIT + "…[cut]".len(), "{}", c.len());
        assert!(c.ends_with("…[cut]"));
        assert_eq!(cut_raw(b"short line"), "short line");
        let long = "x".repeat(1000);
        assert_eq!(cut_raw(long.as_bytes()).len(), RAW_LIMIT + "…[cut]".len());
    }

    #[test]
    fn json_is_told_from_flow_logs_through_gzip() {
        let metric =
            br#"{"metric_stream_name":"s","namespace":"AWS/Kafka","metric_name":"BytesInPerSec"}"#;
        assert!(is_json(metric));
        assert!(is_json(b"\xef\xbb\xbf  \n{\"a\":1}"));
        assert!(!is_json(b"version account-id interface-id"));
        assert!(!is_json(b""));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, metric).unwrap();
        let gz = gz.finish().unwrap();
        assert!(is_json(&gz));
        assert!(is_json(&gz[..gz.len() - 6]), "a cut-off prefix still tells");
        assert!(!is_json(b"\x1f\x8bnot really gzip"));
    }
}
