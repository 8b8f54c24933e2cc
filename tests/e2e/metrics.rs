//! Broker metrics end to end: the generator writes CloudWatch Metric Streams JSON made from the
//! same private-connectivity bytes as its flow logs (Kafka bytes = IP bytes × 0.94, of which
//! private connectivity is 80 %, ±2 % per hour), so the flow/broker ratio is steady near
//! 0.8 / 0.94 = 0.851; the real binary ingests both, and the reconciliation must find that
//! ratio, flag nothing, and flag the hour whose flow logs are removed.

use std::collections::BTreeMap;
use std::path::Path;

use linkmeter_test_support::*;

fn generated_points(estate: &Path) -> u64 {
    let text = std::fs::read_to_string(estate.join("generated.toml")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("metric_points = "))
        .expect("generated.toml counts metric points")
        .parse()
        .unwrap()
}

/// Ground-truth bytes per (hour µs, cluster name, direction), from the connection ARNs
/// (`…:vpc-connection/OWNER/CLUSTER/ID`).
fn truth_by_cluster(estate: &Path) -> BTreeMap<(i64, String, String), u64> {
    let mut m = BTreeMap::new();
    for ((h, conn, dir), b) in truth(estate) {
        let cluster = conn.split('/').nth(2).unwrap().to_string();
        *m.entry((h, cluster, dir)).or_default() += b;
    }
    m
}

#[test]
fn broker_metrics_reconcile_with_flow_logs_and_a_missing_hour_is_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "estate", "--days 1 --accounts 8 --instances 1 --noise 1");
    let estate = d.join("estate");
    let out = ok(&estate, &["ingest"]);
    assert!(out.contains("[balanced]"), "{out}");
    let wh = estate.join("warehouse");

    // Every datapoint is in broker_metrics, counted in the run equation.
    let points = generated_points(&estate);
    assert!(points > 10_000, "{points}");
    assert_eq!(
        scalar(&wh, "SELECT CAST(COUNT(*) AS BIGINT) FROM broker_metrics"),
        points
    );
    assert_eq!(
        scalar(&wh, "SELECT CAST(SUM(records_metrics) AS BIGINT) FROM runs"),
        points
    );
    assert!(
        out.contains(&format!("{} metric datapoints", fmt_n(points))),
        "{out}"
    );
    // Every datapoint names a cluster of the inventory; rates became bytes per minute.
    assert_eq!(
        scalar(
            &wh,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM broker_metrics WHERE cluster_arn IS NULL OR broker_id IS NULL"
        ),
        0
    );
    assert_eq!(
        scalar(
            &wh,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM broker_metrics WHERE metric = 'BytesInPerSec' \
             AND bytes <> CAST(round(stat_sum / stat_count * 60) AS BIGINT)"
        ),
        0
    );

    // The view's flow side is the ground truth, per cluster-hour and direction.
    let b = query(
        &wh,
        "SELECT CAST(usage_hour AS BIGINT), cluster_name, direction, flow_bytes FROM reconciliation",
    );
    let (h, c, dir, fb) = (u64s(&b, 0), strings(&b, 1), strings(&b, 2), u64s(&b, 3));
    let got: BTreeMap<(i64, String, String), u64> = (0..h.len())
        .filter(|&i| fb[i] > 0)
        .map(|i| ((h[i] as i64, c[i].clone(), dir[i].clone()), fb[i]))
        .collect();
    assert_eq!(got, truth_by_cluster(&estate));

    // A steady ratio near 0.851 and nothing flagged.
    let b = query(
        &wh,
        "SELECT MIN(ratio), MAX(ratio), MAX(abs(deviation)), CAST(COUNT(*) AS BIGINT) FROM reconciliation WHERE ratio IS NOT NULL",
    );
    let row: Vec<f64> = (0..3)
        .map(|i| strings(&b, i)[0].parse::<f64>().unwrap())
        .collect();
    assert!(row[0] > 0.82 && row[1] < 0.88, "{row:?}");
    assert!(row[2] < 0.05, "{row:?}");
    assert!(
        u64s(&b, 3)[0] >= 6 * 24,
        "3 clusters × 2 directions × 24 hours"
    );
    let inv = ok(&estate, &["invoice", "--month", "2026-10"]);
    assert_eq!(
        inv.matches("0 hours off by more than the tolerance")
            .count(),
        6,
        "{inv}"
    );

    // Flow logs of 10:00 lost: a fresh warehouse without them flags 10:00 in every cluster
    // and direction, and no other hour.
    for f in walk(&estate.join("flowlogs")) {
        if f.file_name().unwrap().to_string_lossy().contains("T1000Z") {
            std::fs::remove_file(f).unwrap();
        }
    }
    std::fs::remove_dir_all(&wh).unwrap();
    ok(&estate, &["ingest"]);
    let flagged = strings(
        &query(
            &wh,
            "SELECT DISTINCT CAST(usage_hour AS VARCHAR) FROM reconciliation WHERE abs(deviation) > 0.25",
        ),
        0,
    );
    assert_eq!(flagged, vec!["2026-10-01T10:00:00Z".to_string()]);
    let inv = ok(&estate, &["invoice", "--month", "2026-10"]);
    assert_eq!(
        inv.matches("1 hours off by more than the tolerance")
            .count(),
        6,
        "{inv}"
    );
    assert!(inv.contains("2026-10-01T10:00:00Z: flow"), "{inv}");
    // A tolerance of 100 % hides it (the setting is honoured; deviations of a missing hour
    // are above -100 %).
    let cfg = std::fs::read_to_string(estate.join("linkmeter.toml")).unwrap();
    std::fs::write(
        estate.join("wide.toml"),
        format!("reconcile_tolerance = 1.0\n{cfg}"),
    )
    .unwrap();
    let inv = ok(
        &estate,
        &["invoice", "--config", "wide.toml", "--month", "2026-10"],
    );
    assert_eq!(
        inv.matches("0 hours off by more than the tolerance")
            .count(),
        6,
        "{inv}"
    );
}

fn fmt_n(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Broker bytes per (hour, cluster, direction) of the reconciliation view.
fn broker_side(wh: &Path) -> BTreeMap<(String, String, String), u64> {
    let b = query(
        wh,
        "SELECT CAST(usage_hour AS VARCHAR), cluster_name, direction, broker_bytes FROM reconciliation WHERE broker_bytes IS NOT NULL",
    );
    let (h, c, d, v) = (strings(&b, 0), strings(&b, 1), strings(&b, 2), u64s(&b, 3));
    (0..h.len())
        .map(|i| ((h[i].clone(), c[i].clone(), d[i].clone()), v[i]))
        .collect()
}

#[test]
fn prometheus_counters_with_a_restart_give_the_same_broker_bytes_as_cloudwatch() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "estate", "--days 1 --accounts 6 --instances 1 --noise 1");
    let estate = d.join("estate");
    ok(&estate, &["ingest"]);
    let cw = estate.join("warehouse");
    // The brokers' per-minute bytes as CloudWatch gave them, turned into the cumulative
    // counters the JMX exporter serves, scraped at the end of every minute; broker 2 of every
    // cluster restarts at 12:30 (its counters start again from zero).
    let b = query(
        &cw,
        "SELECT cluster_name, CAST(broker_id AS BIGINT), metric, CAST(CAST(period_start AS BIGINT) / 1000 AS BIGINT), bytes \
         FROM broker_metrics WHERE topic IS NULL AND metric IN ('BytesInPerSec', 'BytesOutPerSec') ORDER BY 1, 2, 3, 4",
    );
    let (c, br, m, t, by) = (
        strings(&b, 0),
        u64s(&b, 1),
        strings(&b, 2),
        u64s(&b, 3),
        u64s(&b, 4),
    );
    let restart = 1_790_812_800_000u64 + 12 * 3_600_000 + 30 * 60_000;
    let mut text = String::from("# TYPE kafka_server_BrokerTopicMetrics_Count untyped\n");
    let mut counter: BTreeMap<(String, u64, String), u64> = BTreeMap::new();
    for i in 0..c.len() {
        let key = (c[i].clone(), br[i], m[i].clone());
        let instance = format!(
            "b-{}.{}.abc123.c2.kafka.us-east-1.amazonaws.com:11001",
            br[i], c[i]
        );
        if !counter.contains_key(&key) {
            // A scrape just before the first minute, so the first minute has a difference too.
            text.push_str(&format!(
                "kafka_server_BrokerTopicMetrics_Count{{name=\"{}\",instance=\"{instance}\",}} 0 {}\n",
                m[i],
                t[i] - 1
            ));
        }
        let v = counter.entry(key).or_default();
        if br[i] == 2 && t[i] == restart {
            *v = 0;
        }
        *v += by[i];
        text.push_str(&format!(
            "kafka_server_BrokerTopicMetrics_Count{{name=\"{}\",instance=\"{instance}\",}} {} {}\n",
            m[i],
            *v as f64,
            t[i] + 59_999
        ));
    }
    // Noise the decoder must count and filter.
    text.push_str(
        "kafka_server_BrokerTopicMetrics_Count{name=\"MessagesInPerSec\",} 5 1790812800000\n",
    );
    // Scrapes in three files by time (steps across files are taken at query time), and half
    // of the middle one delivered twice (the same scrapes must count once).
    std::fs::create_dir_all(estate.join("prom")).unwrap();
    let header = "# TYPE kafka_server_BrokerTopicMetrics_Count untyped\n";
    let mut parts = [header.to_string(), header.to_string(), header.to_string()];
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let at: u64 = l.rsplit(' ').next().unwrap().parse().unwrap();
        let part = match at.saturating_sub(1_790_812_800_000) / 3_600_000 {
            h if h < 8 => 0,
            h if h < 16 => 1,
            _ => 2,
        };
        parts[part].push_str(l);
        parts[part].push('\n');
    }
    for (i, p) in parts.iter().enumerate() {
        gzip(&estate.join(format!("prom/scrapes-{i}.prom.gz")), p);
    }
    // (A file of the same bytes is one input however many times it is listed, so the
    // redelivery is every other scrape of it.)
    let again: String = parts[1]
        .lines()
        .step_by(2)
        .map(|l| format!("{l}\n"))
        .collect();
    gzip(&estate.join("prom/scrapes-1-again.prom.gz"), &again);
    let lines = |t: &str| t.lines().filter(|l| !l.starts_with('#')).count() as u64;
    let cfg = "warehouse = \"prom-wh\"\ninventory = \"inventory.toml\"\n\n[[sources]]\nname = \"flowlogs\"\nuri = \"flowlogs\"\n\n[[sources]]\nname = \"prom\"\nuri = \"prom\"\n";
    std::fs::write(estate.join("prom.toml"), cfg).unwrap();
    let out = ok(&estate, &["ingest", "--config", "prom.toml"]);
    assert!(out.contains("[balanced]"), "{out}");
    let pw = estate.join("prom-wh");
    assert_eq!(
        scalar(
            &pw,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM broker_metrics WHERE format = 'prometheus'"
        ),
        lines(&text) + lines(&again) - 1
    );
    let want = broker_side(&cw);
    assert!(!want.is_empty());
    assert_eq!(broker_side(&pw), want);
}

/// MSK's multi-VPC listener counters (socket-server-metrics incoming/outgoing-byte-total by
/// listener), scraped every 10 minutes from two brokers with one broker restarting mid-day,
/// reconcile per (cluster, auth scheme, hour, direction): each hour's listener bytes are exactly
/// the counters' steps (the restart counted from zero), and the flow/listener ratio is the one
/// the scrapes were written with.
#[test]
fn listener_counters_reconcile_per_auth_scheme_across_a_broker_restart() {
    use arrow::array::Array;
    let (_tmp, e) = ingested_estate();
    let wh = e.join("warehouse");
    let b = query(
        &wh,
        "SELECT CAST(usage_hour AS BIGINT), cluster_name, auth_scheme, direction, CAST(SUM(bytes) AS BIGINT) \
         FROM billable_hours GROUP BY 1, 2, 3, 4",
    );
    let (hours, clusters, schemes, dirs, bytes) = (
        u64s(&b, 0),
        strings(&b, 1),
        strings(&b, 2),
        strings(&b, 3),
        u64s(&b, 4),
    );
    // (cluster, scheme, direction) → hour (s) → flow bytes.
    let mut series: BTreeMap<(String, String, String), BTreeMap<i64, u64>> = BTreeMap::new();
    for i in 0..hours.len() {
        series
            .entry((clusters[i].clone(), schemes[i].clone(), dirs[i].clone()))
            .or_default()
            .insert(hours[i] as i64 / 1_000_000, bytes[i]);
    }
    assert!(series.len() >= 4, "{series:?}");
    let listener = |s: &str| match s {
        "SASL_IAM" => "CLIENT_IAM_VPCE",
        "SASL_SCRAM" => "CLIENT_SASL_SCRAM_VPCE",
        _ => "CLIENT_SECURE_VPCE",
    };
    let first = series
        .values()
        .flat_map(|m| m.keys())
        .min()
        .copied()
        .unwrap();
    let last = series
        .values()
        .flat_map(|m| m.keys())
        .max()
        .copied()
        .unwrap();
    let restart_hour = first + 10 * 3600;
    let mut text =
        String::from("# TYPE kafka_server_socket_server_metrics_incoming_byte_total untyped\n");
    let mut want: BTreeMap<(i64, String, String, String), u64> = BTreeMap::new();
    for ((cluster, scheme, dir), by_hour) in &series {
        let name = if dir == "to_cluster" {
            "incoming"
        } else {
            "outgoing"
        };
        for broker in [1u64, 2] {
            let labels = format!(
                "instance=\"b-{broker}.{cluster}.abc123.c2.kafka.us-east-1.amazonaws.com:11001\",listener=\"{}\",networkProcessor=\"0\"",
                listener(scheme)
            );
            let mut counter = 0u64;
            let mut line = |t: i64, v: u64| {
                text.push_str(&format!(
                    "kafka_server_socket_server_metrics_{name}_byte_total{{{labels}}} {v} {}\n",
                    t * 1000
                ));
            };
            line(first - 1, 0);
            let mut h = first;
            while h <= last {
                // 90 % of the flow bytes, half on each broker.
                let hour_total = by_hour.get(&h).copied().unwrap_or(0) * 9 / 10;
                let mine = if broker == 1 {
                    hour_total / 2
                } else {
                    hour_total - hour_total / 2
                };
                for k in 0..6u64 {
                    let part = if k < 5 {
                        mine / 6
                    } else {
                        mine - 5 * (mine / 6)
                    };
                    counter = if broker == 1 && h == restart_hour && k == 3 {
                        part // restarted: counts from zero
                    } else {
                        counter + part
                    };
                    line(h + k as i64 * 600 + 599, counter);
                }
                *want
                    .entry((h, cluster.clone(), scheme.clone(), dir.clone()))
                    .or_default() += mine;
                h += 3600;
            }
        }
    }
    // An in-VPC listener is not private connectivity: read, counted, filtered.
    text.push_str("kafka_server_socket_server_metrics_incoming_byte_total{instance=\"b-1.x.abc123.c2.kafka.us-east-1.amazonaws.com:11001\",listener=\"CLIENT_IAM\",networkProcessor=\"0\"} 5 1790812860000\n");
    std::fs::create_dir_all(e.join("prom")).unwrap();
    std::fs::write(e.join("prom/listeners.prom"), text).unwrap();
    let mut cfg = std::fs::read_to_string(e.join("linkmeter.toml")).unwrap();
    cfg.push_str("\n[[sources]]\nname = \"prom\"\nuri = \"prom\"\n");
    std::fs::write(e.join("linkmeter.toml"), cfg).unwrap();
    ok(&e, &["ingest"]);
    let b = query(
        &wh,
        "SELECT CAST(usage_hour AS BIGINT), cluster_name, auth_scheme, direction, CAST(flow_bytes AS BIGINT), listener_bytes, ratio \
         FROM reconciliation_by_scheme",
    );
    let (h, c, s, d, f) = (
        u64s(&b, 0),
        strings(&b, 1),
        strings(&b, 2),
        strings(&b, 3),
        u64s(&b, 4),
    );
    let l = b
        .iter()
        .flat_map(|x| {
            let a = x
                .column(5)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap()
                .clone();
            (0..a.len())
                .map(move |i| a.is_valid(i).then(|| a.value(i) as u64))
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>();
    let mut got: BTreeMap<(i64, String, String, String), u64> = BTreeMap::new();
    for i in 0..h.len() {
        let key = (
            h[i] as i64 / 1_000_000,
            c[i].clone(),
            s[i].clone(),
            d[i].clone(),
        );
        if let Some(v) = l[i] {
            got.insert(key.clone(), v);
        }
        if f[i] > 0 {
            assert_eq!(
                series[&(key.1.clone(), key.2.clone(), key.3.clone())][&key.0],
                f[i]
            );
        }
    }
    // flow / listener is the 10/9 the scrapes were written with, wherever bytes are large.
    let ratio = b
        .iter()
        .flat_map(|x| {
            let a = x
                .column(6)
                .as_any()
                .downcast_ref::<arrow::array::Float64Array>()
                .unwrap()
                .clone();
            (0..a.len())
                .map(move |i| a.is_valid(i).then(|| a.value(i)))
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>();
    let mut checked = 0;
    for i in 0..h.len() {
        if let (Some(r), Some(v)) = (ratio[i], l[i]) {
            if v > 1_000_000 {
                assert!((r - 10.0 / 9.0).abs() < 1e-3, "ratio {r} at row {i}");
                checked += 1;
            }
        }
    }
    assert!(checked > 10, "{checked}");
    let want: BTreeMap<_, _> = want.into_iter().filter(|(_, v)| *v > 0).collect();
    let got: BTreeMap<_, _> = got.into_iter().filter(|(_, v)| *v > 0).collect();
    assert_eq!(
        got, want,
        "listener bytes per cluster, scheme, hour and direction"
    );
    assert!(
        want.keys().any(|k| k.0 == restart_hour),
        "the restart hour is compared"
    );
    let schemes_seen: std::collections::BTreeSet<&String> = want.keys().map(|k| &k.2).collect();
    assert!(schemes_seen.len() >= 2, "{schemes_seen:?}");
}
