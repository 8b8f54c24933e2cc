//! Prometheus text exposition from MSK open monitoring (the JMX exporter on broker port
//! 11001, `aws-facts.md` §4.3), as a scraper saves it: samples with timestamps, as
//! `/federate` and remote-read dumps print them.
//!
//! Kept: the byte counters `kafka_server_BrokerTopicMetrics_Count{name="BytesInPerSec"|
//! "BytesOutPerSec"|"ReplicationBytesInPerSec"|"ReplicationBytesOutPerSec"}` (per topic or for
//! all topics), and the per-principal rates `kafka_server_{Produce,Fetch}_byte_rate{user,
//! client_id}`, and the socket byte counters of MSK's multi-VPC listeners
//! (`kafka_server_socket_server_metrics_{incoming,outgoing}_byte_total{listener="CLIENT_IAM_VPCE"|
//! "CLIENT_SASL_SCRAM_VPCE"|"CLIENT_SECURE_VPCE",networkProcessor}`, kept as `ListenerBytesIn`/
//! `ListenerBytesOut` with the listener's auth scheme). Counters are cumulative: their bytes are the difference between consecutive
//! scrapes (a smaller value is a restart, and counts from zero), worked out in SQL where every
//! scrape of a broker is at hand (the `reconciliation` view). Other samples are counted and
//! filtered; a line that is not a sample is quarantined.
//!
//! The broker and cluster come from labels: `broker_id` (or the `b-N.` of `instance`) and
//! `cluster` / `cluster_name` (or the name in an MSK broker host `b-N.NAME.xxxxxx.c2.kafka…`).

use std::io::Read;

use crate::limits::Bounds;

use super::{metric_lines, DecodeError, DecodeStats, Decoder, Event, MetricPoint};

/// The byte counters of `kafka_server_BrokerTopicMetrics_Count` linkmeter keeps.
const BYTE_COUNTERS: [&str; 4] = [
    "BytesInPerSec",
    "BytesOutPerSec",
    "ReplicationBytesInPerSec",
    "ReplicationBytesOutPerSec",
];

/// The auth scheme of an MSK multi-VPC listener (`billing-facts.md` §2.2); other listeners
/// (in-VPC clients, replication) are not private connectivity.
pub fn vpce_scheme(listener: &str) -> Option<&'static str> {
    match listener.to_ascii_uppercase().as_str() {
        "CLIENT_IAM_VPCE" => Some("SASL_IAM"),
        "CLIENT_SASL_SCRAM_VPCE" => Some("SASL_SCRAM"),
        "CLIENT_SECURE_VPCE" => Some("TLS"),
        _ => None,
    }
}

/// Decodes Prometheus text from any reader.
pub struct PrometheusDecoder<R: Read> {
    reader: Option<R>,
    gzip: bool,
    bounds: Bounds,
}

impl<R: Read> PrometheusDecoder<R> {
    /// A decoder of a file or object (gzip recognized by its magic bytes).
    pub fn new(reader: R) -> Self {
        PrometheusDecoder {
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

/// Whether the first bytes look like Prometheus text (a `# HELP`/`# TYPE` line, or a first
/// sample `name{labels} value`).
pub fn looks_like(head: &[u8]) -> bool {
    let plain = super::text_prefix(head, 1024);
    let text = String::from_utf8_lossy(&plain);
    let Some(first) = text.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return false;
    };
    if first.starts_with("# HELP ") || first.starts_with("# TYPE ") {
        return true;
    }
    let name_end = first
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(first.len());
    name_end > 0 && first[name_end..].starts_with('{') && first.contains("} ")
}

/// One sample: name, labels, value, timestamp (ms).
type Sample<'a> = (&'a str, Vec<(String, String)>, f64, Option<i64>);

/// Parses `name{a="x",b="y",} value [timestamp]`.
fn sample(line: &str) -> Result<Sample<'_>, String> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    if name_end == 0 {
        return Err("not a Prometheus sample: no metric name".into());
    }
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let end = loop {
            // Skip separators.
            while let Some((_, c)) = chars.peek() {
                if *c == ',' || *c == ' ' {
                    chars.next();
                } else {
                    break;
                }
            }
            let Some(&(i, c)) = chars.peek() else {
                return Err("label set is not closed with }".into());
            };
            if c == '}' {
                break i + 1;
            }
            let key_start = i;
            let mut key_end = i;
            for (j, c) in chars.by_ref() {
                if c == '=' {
                    key_end = j;
                    break;
                }
            }
            let key = r[key_start..key_end].trim();
            if key.is_empty() || chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {key:?} has no quoted value"));
            }
            let mut value = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some(o) => value.push(o),
                        None => break,
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    o => value.push(o),
                }
            }
            if !closed {
                return Err(format!("label {key:?}'s value is not closed"));
            }
            labels.push((key.to_string(), value));
        };
        rest = &r[end..];
    }
    let mut parts = rest.split_ascii_whitespace();
    let value = parts
        .next()
        .ok_or("sample has no value")?
        .parse::<f64>()
        .map_err(|_| "sample value is not a number".to_string())?;
    let ts = match parts.next() {
        None => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| format!("timestamp {t:?} is not whole milliseconds"))?,
        ),
    };
    if parts.next().is_some() {
        return Err("text after the timestamp".into());
    }
    Ok((name, labels, value, ts))
}

fn label<'l>(labels: &'l [(String, String)], keys: &[&str]) -> Option<&'l str> {
    keys.iter()
        .find_map(|k| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()))
        .filter(|v| !v.is_empty())
}

/// `b-2.orders.abc123.c2.kafka.us-east-1.amazonaws.com:11001` → (2, "orders").
fn from_host(instance: &str) -> (Option<u16>, Option<String>) {
    let host = instance.split(':').next().unwrap_or_default();
    let mut parts = host.split('.');
    let broker = parts
        .next()
        .and_then(|b| b.strip_prefix("b-"))
        .and_then(|n| n.parse().ok());
    let cluster = if broker.is_some() && host.contains(".kafka.") {
        parts.next().map(str::to_string)
    } else {
        None
    };
    (broker, cluster)
}

/// One line as a metric datapoint: `Ok(None)` for a sample linkmeter does not keep.
pub fn parse_line(line: &str) -> Result<Option<MetricPoint>, String> {
    let (name, labels, value, ts) = sample(line)?;
    let scheme = label(&labels, &["listener"]).and_then(vpce_scheme);
    let (metric, counter, rate) = match name {
        "kafka_server_BrokerTopicMetrics_Count" => {
            match label(&labels, &["name"]).filter(|n| BYTE_COUNTERS.contains(n)) {
                Some(n) => (n.to_string(), true, false),
                None => return Ok(None),
            }
        }
        // Socket bytes per listener: on a multi-VPC listener, the bytes of exactly one auth
        // scheme's private-connectivity clients (after TLS), a true cumulative counter.
        "kafka_server_socket_server_metrics_incoming_byte_total"
        | "kafka_server_socket_server_metrics_outgoing_byte_total" => {
            if scheme.is_none() {
                return Ok(None);
            }
            let m = if name.contains("incoming") {
                "ListenerBytesIn"
            } else {
                "ListenerBytesOut"
            };
            (m.to_string(), true, false)
        }
        "kafka_server_Produce_byte_rate" => ("ProduceByteRate".to_string(), false, true),
        "kafka_server_Fetch_byte_rate" => ("FetchByteRate".to_string(), false, true),
        _ => return Ok(None),
    };
    let Some(ts) = ts else {
        return Err(
            "sample has no timestamp; save scrapes with timestamps (/federate or a remote-read dump)"
                .into(),
        );
    };
    if !(0..=super::MAX_TIME * 1000).contains(&ts) {
        return Err(format!("timestamp {ts} (ms) is outside years 1970–9999"));
    }
    if !value.is_finite() || value < 0.0 {
        return Err(format!("value {value} is negative or not a number"));
    }
    let instance = label(&labels, &["instance"]).unwrap_or_default();
    let (host_broker, host_cluster) = from_host(instance);
    let broker = match label(&labels, &["broker_id", "broker"]) {
        Some(b) => Some(
            b.parse::<u16>()
                .map_err(|_| format!("label broker_id {b:?} is not a broker number"))?,
        ),
        None => host_broker,
    };
    // The MSK broker host names the cluster for certain; a `cluster` label may be a
    // Prometheus or Kubernetes cluster's name added by federation, so it comes last.
    let cluster =
        host_cluster.or_else(|| label(&labels, &["cluster_name", "cluster"]).map(str::to_string));
    let dims = labels
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "name" | "topic" | "broker_id" | "broker" | "cluster" | "cluster_name"
            )
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Some(MetricPoint {
        time_ms: ts,
        format: "prometheus",
        namespace: "AWS/Kafka".into(),
        metric,
        cluster,
        broker,
        topic: label(&labels, &["topic"]).map(str::to_string),
        client_auth: scheme.map(str::to_string),
        dimensions: dims,
        unit: Some(if rate { "Bytes/Second" } else { "Bytes" }.into()),
        counter: counter.then_some(value),
        sum: rate.then_some(value),
        count: rate.then_some(1.0),
        min: rate.then_some(value),
        max: rate.then_some(value),
        ..Default::default()
    }))
}

impl<R: Read> Decoder for PrometheusDecoder<R> {
    fn decode(&mut self, sink: &mut dyn FnMut(Event<'_, '_>)) -> Result<DecodeStats, DecodeError> {
        let raw = self
            .reader
            .take()
            .expect("decode is called once per decoder");
        // `#` lines are HELP, TYPE or comments.
        metric_lines(
            raw,
            self.gzip,
            &self.bounds,
            |l| l.starts_with(b"#"),
            parse_line,
            sink,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::BadInput;

    /// JMX exporter output as MSK open monitoring serves it (trailing commas in label sets are
    /// the exporter's), with the scraper's labels and timestamps added as /federate does.
    const SCRAPE: &str = r#"# HELP kafka_server_BrokerTopicMetrics_Count Attribute exposed for management (kafka.server<type=BrokerTopicMetrics, name=BytesInPerSec><>Count)
# TYPE kafka_server_BrokerTopicMetrics_Count untyped
kafka_server_BrokerTopicMetrics_Count{name="BytesInPerSec",instance="b-2.orders.abc123.c2.kafka.us-east-1.amazonaws.com:11001",job="msk",} 1.23456789E8 1790812860000
kafka_server_BrokerTopicMetrics_Count{name="BytesOutPerSec",topic="payments",instance="b-2.orders.abc123.c2.kafka.us-east-1.amazonaws.com:11001",} 4096 1790812860000
kafka_server_BrokerTopicMetrics_Count{name="MessagesInPerSec",instance="b-2.orders.abc123.c2.kafka.us-east-1.amazonaws.com:11001",} 77 1790812860000
kafka_server_BrokerTopicMetrics_OneMinuteRate{name="BytesInPerSec",instance="b-2.orders.abc123.c2.kafka.us-east-1.amazonaws.com:11001",} 1234.5 1790812860000
kafka_server_Produce_byte_rate{user="User:tenant-a",client_id="producer-1",cluster="orders",broker_id="3",} 2048.5 1790812860000
"#;

    fn decode(text: &str) -> (Vec<MetricPoint>, Vec<BadInput>, usize) {
        let (mut ok, mut bad, mut ignored) = (Vec::new(), Vec::new(), 0);
        PrometheusDecoder::new(text.as_bytes())
            .decode(&mut |e| match e {
                Event::Metric(p, _) => ok.push(p.clone()),
                Event::Bad(b) => bad.push(b),
                Event::Ignored(_) => ignored += 1,
                Event::Record(..) => unreachable!(),
            })
            .unwrap();
        (ok, bad, ignored)
    }

    #[test]
    fn jmx_exporter_counters_and_rates() {
        assert!(looks_like(SCRAPE.as_bytes()));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, SCRAPE.as_bytes()).unwrap();
        assert!(looks_like(&gz.finish().unwrap()), "through gzip too");
        let (ok, bad, ignored) = decode(SCRAPE);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(ignored, 2, "MessagesInPerSec and the OneMinuteRate gauge");
        assert_eq!(ok.len(), 3);
        let total = &ok[0];
        assert_eq!(total.metric, "BytesInPerSec");
        assert_eq!(
            (total.broker, total.cluster.as_deref()),
            (Some(2), Some("orders"))
        );
        assert_eq!(total.topic, None);
        assert_eq!(total.counter, Some(123_456_789.0));
        assert_eq!(total.time_ms, 1_790_812_860_000);
        assert_eq!(
            total.bytes(),
            None,
            "a counter's bytes are differences between scrapes"
        );
        assert_eq!(ok[1].topic.as_deref(), Some("payments"));
        let rate = &ok[2];
        assert_eq!(rate.metric, "ProduceByteRate");
        assert_eq!(
            (rate.broker, rate.cluster.as_deref()),
            (Some(3), Some("orders"))
        );
        assert_eq!(rate.dimensions, "user=User:tenant-a, client_id=producer-1");
        assert_eq!(rate.sum, Some(2048.5));
    }

    #[test]
    fn multi_vpc_listener_counters_carry_their_auth_scheme() {
        let text = "# TYPE kafka_server_socket_server_metrics_incoming_byte_total untyped\n\
            kafka_server_socket_server_metrics_incoming_byte_total{instance=\"b-1.orders.x1.c2.kafka.us-east-1.amazonaws.com:11001\",listener=\"CLIENT_IAM_VPCE\",networkProcessor=\"3\"} 1.5e9 1790812860000\n\
            kafka_server_socket_server_metrics_outgoing_byte_total{instance=\"b-1.orders.x1.c2.kafka.us-east-1.amazonaws.com:11001\",listener=\"CLIENT_SECURE_VPCE\",networkProcessor=\"0\"} 42 1790812860000\n\
            kafka_server_socket_server_metrics_incoming_byte_total{instance=\"b-1.orders.x1.c2.kafka.us-east-1.amazonaws.com:11001\",listener=\"CLIENT_IAM\",networkProcessor=\"3\"} 9 1790812860000\n\
            kafka_server_socket_server_metrics_incoming_byte_total{listener=\"REPLICATION\",networkProcessor=\"1\"} 9 1790812860000\n";
        let (ok, bad, ignored) = decode(text);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(
            ignored, 2,
            "in-VPC and replication listeners are not private connectivity"
        );
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].metric, "ListenerBytesIn");
        assert_eq!(ok[0].client_auth.as_deref(), Some("SASL_IAM"));
        assert_eq!(ok[0].counter, Some(1.5e9));
        assert_eq!(
            (ok[0].broker, ok[0].cluster.as_deref()),
            (Some(1), Some("orders"))
        );
        assert!(
            ok[0].dimensions.contains("networkProcessor=3"),
            "{}",
            ok[0].dimensions
        );
        assert_eq!(ok[1].metric, "ListenerBytesOut");
        assert_eq!(ok[1].client_auth.as_deref(), Some("TLS"));
        assert_eq!(vpce_scheme("client_sasl_scram_vpce"), Some("SASL_SCRAM"));
    }

    #[test]
    fn bad_samples_say_why() {
        for (line, why) in [
            (
                "kafka_server_BrokerTopicMetrics_Count{name=\"BytesInPerSec\"} 12",
                "no timestamp",
            ),
            (
                "kafka_server_BrokerTopicMetrics_Count{name=\"BytesInPerSec\"} -1 5",
                "negative",
            ),
            (
                "kafka_server_BrokerTopicMetrics_Count{name=\"BytesInPerSec} 1 5",
                "not closed",
            ),
            (
                "kafka_server_BrokerTopicMetrics_Count{name=\"BytesInPerSec\"} x 5",
                "not a number",
            ),
            ("{name=\"x\"} 1 5", "no metric name"),
        ] {
            let e = parse_line(line).unwrap_err();
            assert!(e.contains(why), "{line}: {e}");
        }
        assert!(!looks_like(b"version account-id interface-id srcaddr"));
        assert!(!looks_like(
            b"2 123456789012 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 40 1 2 ACCEPT OK"
        ));
    }
}
