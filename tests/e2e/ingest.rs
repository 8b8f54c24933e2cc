//! End to end: generate → ingest (the real binary) → the warehouse read back with DataFusion
//! equals the generator's ground truth exactly; reruns are idempotent; bad input is
//! quarantined and counted.

use linkmeter_test_support::*;

#[test]
fn generate_ingest_matches_ground_truth_and_reruns_are_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "estate", "--days 2 --accounts 10 --noise 1");
    let estate = d.join("estate");
    let wh = estate.join("warehouse");
    let out = ok(d, &["ingest", "--config", "estate/linkmeter.toml"]);
    assert!(out.contains("[balanced]"), "{out}");

    // Bytes per connection, hour and direction: exactly the generator's truth.
    let want = truth(&estate);
    let got = metered(&wh);
    assert!(!want.is_empty());
    let missing: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "differs from truth (first 5): {missing:?}\n got {} keys, want {}",
        got.len(),
        want.len()
    );
    assert_eq!(got.len(), want.len(), "metered keys that the truth lacks");

    // The run's balance, as stored.
    let runs = query(&wh, "SELECT records_in, records_attributed + records_unattributed + records_filtered + records_coverage + records_quarantined + records_metrics, bytes_in, bytes_attributed + bytes_unattributed + bytes_filtered, CAST(balanced AS BIGINT), records_quarantined FROM runs");
    let r: Vec<u64> = (0..6).map(|c| u64s(&runs, c)[0]).collect();
    assert_eq!(r[0], r[1]);
    assert_eq!(r[2], r[3]);
    assert_eq!(r[4], 1);
    let gen: toml::Table =
        toml::from_str(&std::fs::read_to_string(estate.join("generated.toml")).unwrap()).unwrap();
    assert_eq!(
        r[5],
        gen["malformed_lines"].as_integer().unwrap() as u64,
        "every malformed line quarantined"
    );
    assert_eq!(
        r[0],
        (gen["lines"].as_integer().unwrap() + gen["metric_points"].as_integer().unwrap()) as u64,
        "every flow-log line and metric datapoint read is counted"
    );
    // Bytes in flows equal the run's attributed + unattributed bytes.
    let stored = scalar(&wh, "SELECT CAST(SUM(bytes) AS BIGINT) FROM flows");
    let counted = scalar(
        &wh,
        "SELECT CAST(bytes_attributed + bytes_unattributed AS BIGINT) FROM runs",
    );
    assert_eq!(stored, counted);
    // Every unattributed reason the generator plants shows up.
    let reasons = strings(
        &query(
            &wh,
            "SELECT DISTINCT reason FROM flows WHERE reason IS NOT NULL ORDER BY 1",
        ),
        0,
    );
    assert_eq!(
        reasons,
        vec![
            "outside_connection_lifetime",
            "rejected",
            "unexpected_port",
            "unknown_endpoint"
        ]
    );
    // Quarantine rows name file and line.
    let q = query(
        &wh,
        "SELECT source_uri, line, reason FROM quarantine ORDER BY reason",
    );
    assert!(strings(&q, 0).iter().all(|u| u.ends_with(".log.gz")));
    assert!(u64s(&q, 1).iter().all(|l| *l > 1));
    let (n1, rows1) = flows_fingerprint(&wh);

    // Rerun: nothing changed, everything skipped, same contents.
    let out = ok(d, &["ingest", "--config", "estate/linkmeter.toml"]);
    assert!(out.contains(" 0 read,"), "{out}");
    assert_eq!(flows_fingerprint(&wh), (n1, rows1.clone()));
    // Forced rerun: everything re-read and replaced, same contents, no double count.
    let out = ok(
        d,
        &["ingest", "--config", "estate/linkmeter.toml", "--force"],
    );
    assert!(out.contains("0 unchanged and skipped"), "{out}");
    assert_eq!(flows_fingerprint(&wh), (n1, rows1));
    assert_eq!(metered(&wh), want);

    // A changed input replaces its own rows: drop one file's data lines but the header.
    let victim = walk(&estate.join("flowlogs"))
        .into_iter()
        .find(|p| p.to_string_lossy().contains("T0300Z"))
        .unwrap();
    let uri = std::fs::canonicalize(&victim)
        .unwrap()
        .display()
        .to_string();
    let victim_rows = scalar(
        &wh,
        &format!("SELECT COUNT(*) FROM flows WHERE source_uri = '{uri}'"),
    );
    assert!(victim_rows > 0);
    let text = gunzip(&victim);
    let kept: String = text.lines().take(1).map(|l| format!("{l}\n")).collect();
    gzip(&victim, &kept);
    let out = ok(d, &["ingest", "--config", "estate/linkmeter.toml"]);
    assert_eq!(
        inputs_read(&out),
        1,
        "only the changed input is read: {out}"
    );
    let (n2, _) = flows_fingerprint(&wh);
    assert_eq!(
        n2,
        n1 - victim_rows,
        "the emptied input's rows are gone, its segment neighbours' carried whole"
    );
    assert_eq!(
        scalar(
            &wh,
            &format!("SELECT COUNT(*) FROM flows WHERE source_uri = '{uri}'")
        ),
        0
    );
}

#[test]
fn strict_mode_fails_on_quarantine_and_bad_config_is_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "e", "--days 1 --accounts 3 --noise 0");
    let out = linkmeter(d, &["ingest", "--config", "e/linkmeter.toml", "--strict"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Good data still landed.
    assert!(scalar(&d.join("e/warehouse"), "SELECT COUNT(*) FROM flows") > 0);

    std::fs::write(
        d.join("bad.toml"),
        "warehouse = \"w\"\ninventory = \"e/inventory.toml\"\nsourcez = []\n",
    )
    .unwrap();
    let out = linkmeter(d, &["ingest", "--config", "bad.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("sourcez"), "{err}");

    let out = linkmeter(d, &["ingest", "--config", "missing.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("linkmeter demo"));
}

#[test]
fn help_has_examples_for_every_command() {
    let d = tempfile::tempdir().unwrap();
    for cmd in [
        "demo",
        "ingest",
        "generate",
        "sql",
        "invoice",
        "reconcile",
        "close",
    ] {
        let out = ok(d.path(), &[cmd, "--help"]);
        assert!(
            out.contains("Examples:"),
            "{cmd} --help lacks examples:\n{out}"
        );
    }
}

#[test]
fn sql_output_into_a_closed_pipe_is_not_an_error() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "e", "--days 1 --accounts 2 --noise 0");
    ok(d, &["ingest", "--config", "e/linkmeter.toml"]);
    // Like `linkmeter sql … | head -1`: read one line, then close the pipe.
    let mut child = Command::new(bin())
        .args([
            "sql",
            "-w",
            "e/warehouse",
            "--format",
            "csv",
            "SELECT * FROM flows",
        ])
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("usage_hour,bytes"), "{first}");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
