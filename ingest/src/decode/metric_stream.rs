//! CloudWatch Metric Streams, JSON output format (`aws-facts.md` §4.2): newline-delimited
//! objects, one datapoint each, gzip or plain, as Firehose delivers them to S3 or as they are
//! relayed into a Kafka topic. Datapoints of other namespaces are read and filtered; a line
//! that is not a datapoint is quarantined with its line number and the reason.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Deserialize;

use crate::limits::Bounds;

use super::{metric_lines, DecodeError, DecodeStats, Decoder, Event, MetricPoint};

/// Seconds each CloudWatch Metric Streams datapoint covers (streams deliver 1-minute
/// statistics).
pub const STREAM_PERIOD_SECS: u32 = 60;

#[derive(Deserialize)]
struct Datapoint {
    metric_stream_name: Option<String>,
    account_id: Option<String>,
    region: Option<String>,
    namespace: String,
    metric_name: String,
    #[serde(default)]
    dimensions: BTreeMap<String, String>,
    timestamp: i64,
    value: Stats,
    unit: Option<String>,
}

#[derive(Deserialize)]
struct Stats {
    count: Option<f64>,
    sum: Option<f64>,
    max: Option<f64>,
    min: Option<f64>,
}

/// Decodes CloudWatch Metric Streams JSON from any reader.
pub struct MetricStreamDecoder<R: Read> {
    reader: Option<R>,
    gzip: bool,
    bounds: Bounds,
}

impl<R: Read> MetricStreamDecoder<R> {
    /// A decoder of a file or object (gzip recognized by its magic bytes).
    pub fn new(reader: R) -> Self {
        MetricStreamDecoder {
            reader: Some(reader),
            gzip: true,
            bounds: Bounds::default(),
        }
    }

    /// Holds the input to these limits (line length, decompressed size).
    pub fn bounded(mut self, bounds: Bounds) -> Self {
        self.bounds = bounds;
        self
    }

    /// Independent messages (a Kafka partition range): never gzip as a whole.
    pub fn messages(mut self) -> Self {
        self.gzip = false;
        self
    }
}

/// One JSON line as a datapoint, or why it is not one.
pub fn parse_datapoint(line: &str) -> Result<MetricPoint, String> {
    let d: Datapoint = serde_json::from_str(line)
        .map_err(|e| format!("not a CloudWatch metric-stream datapoint: {e}"))?;
    if !(0..=super::MAX_TIME * 1000).contains(&d.timestamp) {
        return Err(format!(
            "timestamp {} (ms) is outside years 1970–9999",
            d.timestamp
        ));
    }
    // Other namespaces are only counted (and filtered): their values may be negative.
    let checked = if d.namespace == "AWS/Kafka" {
        [
            ("count", d.value.count),
            ("sum", d.value.sum),
            ("min", d.value.min),
            ("max", d.value.max),
        ]
    } else {
        [("", None); 4]
    };
    for (name, v) in checked {
        if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
            return Err(format!("value.{name} is negative or not a number"));
        }
    }
    let mut dims = d.dimensions;
    let broker = match dims.remove("Broker ID") {
        None => None,
        Some(b) => Some(
            b.trim()
                .parse::<u16>()
                .map_err(|_| format!("dimension \"Broker ID\" {b:?} is not a broker number"))?,
        ),
    };
    let other = dims
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "Cluster Name" | "Topic" | "Client Authentication"
            )
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(MetricPoint {
        time_ms: d.timestamp,
        format: "cloudwatch-json",
        stream: d.metric_stream_name,
        account_id: d.account_id,
        region: d.region,
        namespace: d.namespace,
        metric: d.metric_name,
        cluster: dims.remove("Cluster Name"),
        broker,
        topic: dims.remove("Topic"),
        client_auth: dims.remove("Client Authentication"),
        dimensions: other,
        unit: d.unit,
        count: d.value.count,
        sum: d.value.sum,
        min: d.value.min,
        max: d.value.max,
        counter: None,
        period_secs: STREAM_PERIOD_SECS,
    })
}

impl<R: Read> Decoder for MetricStreamDecoder<R> {
    fn decode(&mut self, sink: &mut dyn FnMut(Event<'_, '_>)) -> Result<DecodeStats, DecodeError> {
        let raw = self
            .reader
            .take()
            .expect("decode is called once per decoder");
        metric_lines(
            raw,
            self.gzip,
            &self.bounds,
            |_| false,
            |l| parse_datapoint(l).map(Some),
            sink,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::BadInput;
    use proptest::prelude::*;

    /// AWS's published sample (aws-facts.md §4.2, from the CloudWatch user guide's "JSON
    /// format" page), verbatim.
    const AWS_SAMPLE: &str = r#"{"metric_stream_name":"MyMetricStream","account_id":"1234567890","region":"us-east-1","namespace":"AWS/EC2","metric_name":"DiskWriteOps","dimensions":{"InstanceId":"i-123456789012"},"timestamp":1611929698000,"value":{"count":3.0,"sum":20.0,"max":18.0,"min":0.0,"p99":17.56,"p99.9":17.8764,"TM(25%:75%)":16.43},"unit":"Seconds"}"#;

    const MSK: &str = r#"{"metric_stream_name":"msk","account_id":"999999999999","region":"us-east-1","namespace":"AWS/Kafka","metric_name":"BytesInPerSec","dimensions":{"Cluster Name":"orders-prod","Broker ID":"2","Topic":"payments"},"timestamp":1790812860000,"value":{"count":1.0,"sum":1500.5,"max":1500.5,"min":1500.5},"unit":"Bytes/Second"}"#;

    fn decode(text: &[u8]) -> (Vec<MetricPoint>, Vec<BadInput>) {
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        MetricStreamDecoder::new(text)
            .decode(&mut |e| match e {
                Event::Metric(p, _) => ok.push(p.clone()),
                Event::Bad(b) => bad.push(b),
                Event::Record(..) | Event::Ignored(_) => unreachable!(),
            })
            .unwrap();
        (ok, bad)
    }

    #[test]
    fn aws_sample_decodes_with_every_statistic() {
        let p = parse_datapoint(AWS_SAMPLE).unwrap();
        assert_eq!(p.namespace, "AWS/EC2");
        assert_eq!(p.metric, "DiskWriteOps");
        assert_eq!(p.time_ms, 1_611_929_698_000);
        assert_eq!(
            (p.count, p.sum, p.min, p.max),
            (Some(3.0), Some(20.0), Some(0.0), Some(18.0))
        );
        assert_eq!(p.dimensions, "InstanceId=i-123456789012");
        assert_eq!(p.unit.as_deref(), Some("Seconds"));
        assert_eq!(p.account_id.as_deref(), Some("1234567890"));
        assert_eq!(p.bytes(), None, "not a byte metric");
    }

    #[test]
    fn msk_dimensions_and_derived_bytes() {
        let p = parse_datapoint(MSK).unwrap();
        assert_eq!(p.cluster.as_deref(), Some("orders-prod"));
        assert_eq!(p.broker, Some(2));
        assert_eq!(p.topic.as_deref(), Some("payments"));
        assert_eq!(p.dimensions, "");
        // A rate: the average over the minute times 60 s.
        assert_eq!(p.bytes(), Some(90_030));
    }

    #[test]
    fn gzip_blank_lines_and_bad_lines_are_told_apart() {
        let text = format!(
            "{MSK}\n\n{{\"namespace\":\"AWS/Kafka\"}}\nnot json\n{}\n{AWS_SAMPLE}\n",
            MSK.replace("\"2\"", "\"two\"")
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
        let (ok, bad) = decode(&gz.finish().unwrap());
        assert_eq!(ok.len(), 2);
        let reasons: Vec<(u64, &str)> = bad
            .iter()
            .map(|b| (b.position.line, b.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert_eq!(reasons[0].0, 3);
        assert!(reasons[0].1.contains("missing field"), "{reasons:?}");
        assert_eq!(reasons[1].0, 4);
        assert!(reasons[2].1.contains("Broker ID"), "{reasons:?}");
    }

    #[test]
    fn a_cut_off_gzip_keeps_what_came_before() {
        let text = format!("{MSK}\n").repeat(2000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
        let mut z = gz.finish().unwrap();
        z.truncate(z.len() / 2);
        let (ok, bad) = decode(&z);
        assert!(!ok.is_empty() && ok.len() < 2000);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].reason.contains("cut off"), "{}", bad[0].reason);
    }

    #[test]
    fn rejects_nonsense_values() {
        for (from, to) in [
            ("\"sum\":1500.5", "\"sum\":-1"),
            ("1790812860000", "-5"),
            ("\"Broker ID\":\"2\"", "\"Broker ID\":\"99999\""),
        ] {
            assert!(parse_datapoint(&MSK.replace(from, to)).is_err(), "{to}");
        }
        // Another namespace's negative value is not MSK's problem: it is read (and filtered).
        assert!(parse_datapoint(&AWS_SAMPLE.replace("\"min\":0.0", "\"min\":-3.0")).is_ok());
    }

    proptest! {
        /// Any bytes: every non-blank line is either a datapoint or one bad line.
        #[test]
        fn every_line_is_accounted_for(lines in proptest::collection::vec(
            prop_oneof![Just(MSK.to_string()), Just(AWS_SAMPLE.to_string()), "[ -~]{0,40}", Just(String::new())],
            0..20,
        )) {
            let text = lines.join("\n");
            let (ok, bad) = decode(text.as_bytes());
            let nonblank = lines.iter().filter(|l| !l.trim().is_empty()).count();
            prop_assert_eq!(ok.len() + bad.len(), nonblank);
            prop_assert!(bad.iter().all(|b| b.records == 1));
        }
    }
}
