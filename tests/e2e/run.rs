//! `linkmeter run`, the scheduled job, through the real binary: twice over the same inputs
//! (identical outputs), stopped by SIGTERM mid-ingest and run again (identical to an
//! uninterrupted run), and each documented exit code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use linkmeter_test_support::*;

/// Every report file of a warehouse, by path, with its bytes.
fn reports(wh: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = walk(&wh.join("reports"))
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(wh).unwrap().to_path_buf(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn code(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let o = linkmeter(dir, args);
    (
        o.status.code(),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn run_twice_changes_nothing_and_each_exit_code_means_what_the_help_says() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "estate", "--days 1 --accounts 6 --instances 1 --noise 1");
    let e = d.join("estate");
    let wh = e.join("warehouse");
    // The generated estate has malformed lines: with no quarantine allowed the run still does
    // everything, and says so with 3.
    let (c, out) = code(&e, &["run", "--month", "2026-10", "--max-quarantined", "0"]);
    assert_eq!(c, Some(3), "{out}");
    assert!(out.contains("more than --max-quarantined"), "{out}");
    let first = reports(&wh);
    let names: Vec<String> = first.iter().map(|(p, _)| p.display().to_string()).collect();
    for m in ["2026-09", "2026-10"] {
        assert!(
            names.contains(&format!("reports/month={m}/finance-aws.csv")),
            "{names:?}"
        );
    }
    assert_matches_truth(&e, &wh);
    let fingerprint = flows_fingerprint(&wh);
    // Again: nothing is read, and every output is byte for byte the same.
    let (c, out) = code(&e, &["run", "--month", "2026-10"]);
    assert_eq!(c, Some(0), "{out}");
    assert_eq!(inputs_read(&out), 0, "{out}");
    assert_eq!(reports(&wh), first);
    assert_eq!(flows_fingerprint(&wh), fingerprint);

    // 5: a live process holds the lock (this test's own), and nothing is done.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let held = rt
        .block_on(
            linkmeter_warehouse::Warehouse::local(&wh)
                .unwrap()
                .lock("test", None),
        )
        .unwrap();
    let (c, out) = code(&e, &["run", "--month", "2026-10"]);
    assert_eq!(c, Some(5), "{out}");
    assert!(
        out.contains("another run holds the warehouse lock") && out.contains("test"),
        "{out}"
    );
    drop(held);

    // 2: a config error (no price book).
    let cfg = std::fs::read_to_string(e.join("linkmeter.toml"))
        .unwrap()
        .replace("prices = \"prices.toml\"\n", "");
    std::fs::write(e.join("noprices.toml"), cfg).unwrap();
    let (c, out) = code(&e, &["run", "--config", "noprices.toml"]);
    assert_eq!(c, Some(2), "{out}");
    assert!(out.contains("price book"), "{out}");
    let (c, out) = code(&e, &["run", "--month", "2026-13"]);
    assert_eq!(c, Some(2), "{out}");

    // 1: fatal (the warehouse cannot be created: its parent is a file).
    std::fs::write(e.join("blocker"), "not a directory").unwrap();
    let cfg = std::fs::read_to_string(e.join("linkmeter.toml"))
        .unwrap()
        .replace(
            "warehouse = \"warehouse\"",
            "warehouse = \"blocker/warehouse\"",
        );
    std::fs::write(e.join("blocked.toml"), cfg).unwrap();
    let (c, out) = code(
        &e,
        &["run", "--config", "blocked.toml", "--month", "2026-10"],
    );
    assert_eq!(c, Some(1), "{out}");
    assert!(out.contains("blocker/warehouse"), "{out}");
}

#[test]
fn run_stopped_by_sigterm_then_run_again_equals_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "estate", "--days 1 --accounts 8 --instances 1 --noise 1");
    let e = d.join("estate");
    // Small segments, one worker: the run is still reading when the signal comes.
    let cfg = std::fs::read_to_string(e.join("linkmeter.toml")).unwrap();
    // (Top-level keys come before any table.)
    let (top, rest) = cfg.split_at(cfg.find("[[sources]]").unwrap());
    let small = format!("{top}\n[ingest]\nflush_rows = 300\nworkers = 1\n\n{rest}");
    std::fs::write(e.join("small.toml"), &small).unwrap();
    std::fs::write(
        e.join("clean.toml"),
        small.replace("warehouse = \"warehouse\"", "warehouse = \"clean\""),
    )
    .unwrap();
    let mut child = std::process::Command::new(bin())
        .args(["run", "--config", "small.toml", "--month", "2026-10"])
        .current_dir(&e)
        .env("LINKMETER_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first segment files, then ask it to stop the way ECS does.
    let wh = e.join("warehouse");
    let t0 = std::time::Instant::now();
    while !wh.join("inputs").is_dir() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "nothing was written"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the signal; nothing tested"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("stopped by a signal"), "{err}");
    // No invoice was written by the stopped run.
    assert!(!wh.join("reports").exists());
    // Run again: it finishes, and the warehouse and reports equal an uninterrupted run's.
    let (c, out) = code(&e, &["run", "--config", "small.toml", "--month", "2026-10"]);
    assert_eq!(c, Some(0), "{out}");
    let (c, out) = code(&e, &["run", "--config", "clean.toml", "--month", "2026-10"]);
    assert_eq!(c, Some(0), "{out}");
    assert_matches_truth(&e, &wh);
    assert_eq!(reports(&wh), reports(&e.join("clean")));
    assert_eq!(flows_fingerprint(&wh), flows_fingerprint(&e.join("clean")));
}

/// The deployment examples agree with the binary: the task runs `run`, gives it time to stop
/// on SIGTERM, passes the config in LINKMETER_CONFIG_TOML, and that config is one `run` reads.
#[test]
fn deploy_examples_fit_the_binary() {
    let root = root();
    let task: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/ecs-task-definition.json")).unwrap(),
    )
    .unwrap();
    let c = &task["containerDefinitions"][0];
    assert_eq!(c["command"], serde_json::json!(["run"]));
    assert!(c["stopTimeout"].as_u64().unwrap() >= 30);
    assert!(c["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "LINKMETER_CONFIG_TOML"));
    let sched: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("deploy/scheduler.json")).unwrap())
            .unwrap();
    assert_eq!(sched["Target"]["EcsParameters"]["LaunchType"], "FARGATE");
    // The example config parses (an invalid one would fail before --month is looked at).
    let o = std::process::Command::new(bin())
        .args(["run", "--month", "not-a-month"])
        .current_dir(&root) // no linkmeter.toml here: the variable is the config
        .env_remove("LINKMETER_CONFIG")
        .env(
            "LINKMETER_CONFIG_TOML",
            std::fs::read_to_string(root.join("deploy/linkmeter.toml")).unwrap(),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("not-a-month"), "{err}");
    // The Dockerfile runs the binary as a non-root user with `run` as the default command,
    // and has the distributed engine the Ballista tasks need.
    let docker = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    assert!(docker.contains("USER 10001"));
    assert!(docker.contains("CMD [\"run\"]"));
    assert!(docker.contains("--features ballista"));
    // The Ballista roles: commands the binary accepts (clap checks every argument before
    // the trailing --help), listening where the task maps ports, reading the same config.
    for (file, role) in [
        ("scheduler-task-definition.json", "scheduler"),
        ("executor-task-definition.json", "executor"),
    ] {
        let task: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("deploy/ballista").join(file)).unwrap(),
        )
        .unwrap();
        let c = &task["containerDefinitions"][0];
        let args: Vec<String> = c["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            args[..2],
            ["ballista".to_string(), role.to_string()],
            "{file}"
        );
        let o = std::process::Command::new(bin())
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for p in c["portMappings"].as_array().unwrap() {
            let port = p["containerPort"].as_u64().unwrap().to_string();
            assert!(
                args.iter().any(|a| a.ends_with(&port)),
                "{file}: port {port} is not in the command {args:?}"
            );
        }
        assert!(c["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "LINKMETER_CONFIG_TOML"));
    }
}

#[test]
fn an_expired_raw_log_and_an_inventory_edit_neither_stop_the_run_nor_change_the_invoice() {
    // The drill of issue #14: ingest, expire the oldest raw flow-log file (an S3 lifecycle
    // rule), add an account to the inventory, run again. Before, every run from then on
    // failed: the changed inventory made every input "changed", and the expired file's
    // segment could not be replaced without losing its rows.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "estate", "--days 1 --accounts 6 --instances 1 --noise 1");
    let e = d.join("estate");
    let wh = e.join("warehouse");
    let (c, out) = code(&e, &["run", "--month", "2026-10"]);
    assert_eq!(c, Some(0), "{out}");
    let invoice = |wh: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        reports(wh)
            .into_iter()
            .filter(|(p, _)| {
                p.starts_with("reports/month=2026-10") && p.extension().is_some_and(|x| x == "csv")
            })
            .collect()
    };
    let before = invoice(&wh);
    assert!(before.len() >= 2, "{before:?}");
    let fingerprint = flows_fingerprint(&wh);

    let mut logs: Vec<PathBuf> = walk(&e.join("flowlogs"));
    // AWS names carry the hour (…_20261001T0000Z_…): the smallest is the oldest.
    logs.sort_by_key(|p| {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        let stamp = n
            .split('_')
            .find(|s| s.len() == 14 && s.ends_with('Z') && s.as_bytes()[8] == b'T')
            .unwrap_or_default()
            .to_string();
        (stamp, n)
    });
    let oldest = logs.first().unwrap().clone();
    let expired_uri_part = oldest.file_name().unwrap().to_string_lossy().into_owned();
    let expired_rows = scalar(
        &wh,
        &format!("SELECT COUNT(*) FROM flows WHERE source_uri LIKE '%{expired_uri_part}'"),
    );
    assert!(expired_rows > 0, "the expired file had metered rows");
    // A neighbour in the expired file's segment changes too (the same records, gzipped
    // again): its segment must be replaced while the expired file's rows are kept.
    let neighbour = strings(
        &query(
            &wh,
            &format!(
                "SELECT source_uri FROM inputs WHERE segment_id = (SELECT segment_id FROM inputs \
                 WHERE source_uri LIKE '%{expired_uri_part}') AND source_uri LIKE '%.log.gz' \
                 AND source_uri NOT LIKE '%{expired_uri_part}' ORDER BY source_uri LIMIT 1"
            ),
        ),
        0,
    );
    let neighbour = PathBuf::from(&neighbour[0]);
    let text = gunzip(&neighbour);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
    std::fs::write(&neighbour, gz.finish().unwrap()).unwrap();
    std::fs::remove_file(&oldest).unwrap();
    let mut inv = std::fs::read_to_string(e.join("inventory.toml")).unwrap();
    inv.push_str(
        "\n[[accounts]]\nid = \"999999999999\"\nname = \"new-team\"\ncost_center = \"CC-999\"\n",
    );
    std::fs::write(e.join("inventory.toml"), inv).unwrap();

    let (c, out) = code(&e, &["run", "--month", "2026-10"]);
    assert_eq!(c, Some(0), "{out}");
    // Only the changed neighbour is read: a new account changes no attribution.
    assert_eq!(inputs_read(&out), 1, "{out}");
    assert!(out.contains("carried over"), "{out}");
    assert_eq!(
        scalar(
            &wh,
            &format!("SELECT COUNT(*) FROM flows WHERE source_uri LIKE '%{expired_uri_part}'"),
        ),
        expired_rows,
        "the expired file's rows are kept"
    );
    assert_eq!(flows_fingerprint(&wh), fingerprint);
    assert_eq!(invoice(&wh), before, "the invoice is identical to the cent");
    // And the run after that has nothing to do.
    let (c, out) = code(&e, &["run", "--month", "2026-10"]);
    assert_eq!(c, Some(0), "{out}");
    assert_eq!(inputs_read(&out), 0, "{out}");
}

#[test]
fn adding_a_missing_connection_bills_its_traffic_from_the_warehouse_with_every_raw_log_gone() {
    // A connection missing from the inventory leaves its traffic `unknown_endpoint`; once it
    // is added, those rows are re-attributed from the warehouse (the raw logs have all
    // expired by then) and the invoice is the one a fresh ingest with the full inventory makes.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "estate", "--days 1 --accounts 6 --instances 1 --noise 1");
    let e = d.join("estate");
    let fresh = d.join("fresh");
    copy_dir(&e, &fresh);
    let (c, out) = code(&fresh, &["run", "--month", "2026-10"]);
    assert_eq!(c, Some(0), "{out}");
    let full = std::fs::read_to_string(e.join("inventory.toml")).unwrap();
    let mut parts: Vec<&str> = full.split("\n[[connections]]\n").collect();
    assert!(parts.len() > 3, "the estate has connections");
    let gone = parts.remove(2);
    let client = gone
        .lines()
        .find_map(|l| l.strip_prefix("client_account = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    std::fs::write(e.join("inventory.toml"), parts.join("\n[[connections]]\n")).unwrap();
    let wh = e.join("warehouse");
    let (c, out) = code(&e, &["run", "--month", "2026-10"]);
    assert_eq!(c, Some(0), "{out}");
    let unknown = scalar(
        &wh,
        &format!("SELECT COUNT(*) FROM flows WHERE reason = 'unknown_endpoint' AND log_account_id = '{client}'"),
    );
    assert!(
        unknown > 0,
        "the missing connection's traffic is unattributed: {out}"
    );
    let fresh_wh = fresh.join("warehouse");
    assert_ne!(reports(&wh), reports(&fresh_wh));
    let unknown_sql = "SELECT COUNT(*) FROM flows WHERE reason = 'unknown_endpoint'";
    let moved = scalar(&wh, unknown_sql) - scalar(&fresh_wh, unknown_sql);
    assert!(moved >= unknown, "{moved} {unknown}");
    // Every raw flow log expires (the source's root stays: a lifecycle rule deletes objects).
    std::fs::remove_dir_all(e.join("flowlogs")).unwrap();
    std::fs::create_dir(e.join("flowlogs")).unwrap();
    std::fs::write(e.join("inventory.toml"), &full).unwrap();
    let (c, out) = code(&e, &["run", "--month", "2026-10"]);
    assert_eq!(c, Some(0), "{out}");
    assert_eq!(inputs_read(&out), 0, "{out}");
    assert!(
        out.contains("re-attributed to the current inventory"),
        "{out}"
    );
    assert!(
        out.contains(&format!("unknown_endpoint → attributed: {moved} rows")),
        "every row the missing connection left unknown is billed now: {out}"
    );
    assert_eq!(scalar(&wh, unknown_sql), scalar(&fresh_wh, unknown_sql));
    // Row for row what a fresh ingest stores, but for what re-attribution cannot recover:
    // records on the missing endpoint's address to ports no broker listens on were not MSK
    // traffic under the old inventory, so never stored (the fresh ingest keeps them as
    // `unexpected_port`, unbilled).
    let arn = gone
        .lines()
        .find_map(|l| l.strip_prefix("arn = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let (_, fresh_rows) = flows_fingerprint(&fresh_wh);
    let lost = format!("|unexpected_port|to_cluster|client|{arn}|");
    let (lost_rows, kept): (Vec<String>, Vec<String>) =
        fresh_rows.into_iter().partition(|r| r.contains(&lost));
    let (_, rows) = flows_fingerprint(&wh);
    assert!(
        rows == kept,
        "{} rows against {} a fresh ingest keeps",
        rows.len(),
        kept.len()
    );
    assert!(lost_rows.len() < 20, "{lost_rows:?}");
    let csv = |wh: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        reports(wh)
            .into_iter()
            .filter(|(p, _)| p.extension().is_some_and(|x| x == "csv"))
            .collect()
    };
    assert_eq!(
        csv(&wh),
        csv(&fresh_wh),
        "the invoice a fresh ingest makes, to the cent"
    );
}

#[test]
fn run_reads_only_what_can_change_an_open_invoice_unless_all() {
    // Three days from 2026-08-30: with October as the current month, `run` looks back to
    // September and a day of lateness before it (from 2026-08-31), so the 30th is left alone
    // until --all asks for everything.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(
        d,
        "estate",
        "--start 2026-08-30 --days 3 --accounts 4 --instances 1 --noise 1",
    );
    let e = d.join("estate");
    let wh = e.join("warehouse");
    let (c, out) = code(&e, &["run", "--month", "2026-10"]);
    assert_eq!(c, Some(0), "{out}");
    assert!(
        out.contains("look-back: inputs stamped from 2026-08-31 00:00 UTC on"),
        "{out}"
    );
    let first = inputs_read(&out);
    assert!(first > 0, "{out}");
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM inputs WHERE source_uri LIKE '%\\_20260830T%' ESCAPE '\\'"
        ),
        0,
        "nothing stamped before the look-back was read"
    );
    assert!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM inputs WHERE source_uri LIKE '%\\_20260831T%' ESCAPE '\\'"
        ) > 0
    );
    let (c, out) = code(&e, &["run", "--month", "2026-10", "--all"]);
    assert_eq!(c, Some(0), "{out}");
    assert!(out.contains("look-back: every input (--all)"), "{out}");
    let rest = inputs_read(&out);
    assert!(rest > 0, "the 30th is read now: {out}");
    assert_matches_truth(&e, &wh);
    // Both together read each input once: a full run over a fresh warehouse reads as many.
    let fresh = d.join("fresh");
    let cfg = std::fs::read_to_string(e.join("linkmeter.toml"))
        .unwrap()
        .replace(
            "warehouse = \"warehouse\"",
            &format!("warehouse = \"{}\"", fresh.display()),
        );
    std::fs::write(e.join("fresh.toml"), cfg).unwrap();
    let (c, out) = code(
        &e,
        &[
            "run",
            "--config",
            "fresh.toml",
            "--month",
            "2026-10",
            "--all",
        ],
    );
    assert_eq!(c, Some(0), "{out}");
    assert_eq!(inputs_read(&out), first + rest, "{out}");
}

/// Starts `linkmeter` with each argument list at once in `dir`; (exit code, output) of each.
fn together(dir: &Path, runs: &[&[&str]]) -> Vec<(Option<i32>, String)> {
    let children: Vec<_> = runs
        .iter()
        .map(|args| {
            std::process::Command::new(bin())
                .args(*args)
                .current_dir(dir)
                .env("LINKMETER_LOG", "warn")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            (
                o.status.code(),
                format!(
                    "{}\n{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            )
        })
        .collect()
}

#[test]
fn writers_started_together_neither_lose_nor_double_a_row() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "estate", "--days 1 --accounts 6 --instances 1 --noise 1");
    let e = d.join("estate");
    let inputs = walk(&e.join("flowlogs")).len() + walk(&e.join("metrics")).len();
    let cfg = std::fs::read_to_string(e.join("linkmeter.toml")).unwrap();
    std::fs::write(
        e.join("two.toml"),
        cfg.replace("warehouse = \"warehouse\"", "warehouse = \"two\""),
    )
    .unwrap();
    // Two whole-warehouse ingests; then, on another warehouse, a shard and a whole run. The
    // writer lock lets one whole run at a time (the other exits 5 at once, having done
    // nothing) and keeps a whole run apart from shards.
    for (wh, runs) in [
        ("warehouse", vec![vec!["ingest"], vec!["ingest"]]),
        (
            "two",
            vec![
                vec!["ingest", "--config", "two.toml", "--shard", "0/2"],
                vec!["ingest", "--config", "two.toml"],
            ],
        ),
    ] {
        let runs: Vec<&[&str]> = runs.iter().map(Vec::as_slice).collect();
        let results = together(&e, &runs);
        for (c, out) in &results {
            assert!(matches!(c, Some(0) | Some(5)), "{c:?}: {out}");
            if *c == Some(5) {
                assert!(out.contains("locked"), "{out}");
            }
        }
        assert!(
            results.iter().any(|(c, _)| *c == Some(0)),
            "one of them ran: {results:?}"
        );
        // Whatever ran, a last whole run completes the warehouse: every input once.
        let cfg = if wh == "two" {
            "two.toml"
        } else {
            "linkmeter.toml"
        };
        let (c, out) = code(&e, &["ingest", "--config", cfg]);
        assert_eq!(c, Some(0), "{out}");
        let w = e.join(wh);
        assert_eq!(scalar(&w, "SELECT COUNT(*) FROM inputs"), inputs as u64);
        assert_eq!(
            scalar(&w, "SELECT COUNT(DISTINCT input_id) FROM inputs"),
            inputs as u64
        );
        assert_matches_truth(&e, &w);
    }
    assert_eq!(
        flows_fingerprint(&e.join("warehouse")),
        flows_fingerprint(&e.join("two"))
    );
}
