//! `linkmeter sql`: one-shot output against a golden file (see `tests/golden/README.md`), the
//! views for common questions against the ground truth, every output format, the read-only
//! guard, and the interactive mode driven through a real pseudo-terminal (`script`).

use linkmeter_test_support::*;

#[test]
fn one_shot_outputs_views_and_the_read_only_guard() {
    let (_tmp, e) = ingested_estate();
    // The golden file, byte for byte.
    let out = ok(
        &e,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT reason, flow_rows, bytes FROM unattributed_by_reason ORDER BY reason",
        ],
    );
    let golden =
        std::fs::read_to_string(root().join("tests/golden/unattributed_by_reason.csv")).unwrap();
    assert_eq!(out, golden);
    let gen: toml::Table =
        toml::from_str(&std::fs::read_to_string(e.join("generated.toml")).unwrap()).unwrap();
    assert_eq!(gen["unattributed_records"].as_integer(), Some(113));

    // account_usage adds up to the ground truth.
    let truth: u64 = truth(&e).values().sum();
    let json = ok(
        &e,
        &[
            "sql",
            "--format",
            "json",
            "SELECT account_id, SUM(bytes) AS b FROM account_usage GROUP BY 1",
        ],
    );
    let total: u64 = json
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["b"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(total, truth);
    assert_eq!(json.lines().count(), 6, "one line per account");

    // Parquet to a file, readable, with the rows of the query.
    ok(
        &e,
        &[
            "sql",
            "--format",
            "parquet",
            "--output",
            "eu.parquet",
            "SELECT * FROM endpoint_usage",
        ],
    );
    let f = std::fs::File::open(e.join("eu.parquet")).unwrap();
    let rows: i64 = parquet::file::reader::FileReader::metadata(
        &parquet::file::serialized_reader::SerializedFileReader::new(f).unwrap(),
    )
    .file_metadata()
    .num_rows();
    let want = scalar(
        &e.join("warehouse"),
        "SELECT CAST(COUNT(*) AS BIGINT) FROM endpoint_usage",
    );
    assert_eq!(rows as u64, want);
    assert!(want > 0);

    // Read-only unless --write; --write runs COPY … TO.
    let o = linkmeter(&e, &["sql", "DROP TABLE flows"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("read-only"));
    ok(
        &e,
        &[
            "sql",
            "--write",
            "COPY (SELECT reason FROM unattributed_by_reason) TO 'reasons.csv' STORED AS CSV",
        ],
    );
    assert!(std::fs::read_to_string(e.join("reasons.csv"))
        .unwrap()
        .contains("unknown_endpoint"));
    // Nothing writes into the warehouse's tables: not through EXPLAIN ANALYZE, not with --write.
    let flows_before = flows_fingerprint(&e.join("warehouse"));
    for args in [
        vec!["sql", "EXPLAIN ANALYZE INSERT INTO flows SELECT * FROM flows"],
        vec!["sql", "--write", "INSERT INTO flows SELECT * FROM flows"],
        vec!["sql", "--write", "COPY (SELECT * FROM flows) TO 'warehouse/flows/date=2026-10-01/x.parquet' STORED AS PARQUET"],
    ] {
        let o = linkmeter(&e, &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", String::from_utf8_lossy(&o.stdout));
    }
    assert!(!e.join("warehouse/flows/date=2026-10-01/x.parquet").exists());
    assert_eq!(flows_fingerprint(&e.join("warehouse")), flows_before);
    // A script of several statements from standard input: the last one's result is printed.
    let mut child = std::process::Command::new(bin())
        .args(["sql", "--format", "csv"])
        .current_dir(&e)
        .env("LINKMETER_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT 1;\n-- a comment; with a semicolon\nSELECT 'a;b' AS s;\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "s\na;b\n");
}

#[test]
fn interactive_mode_in_a_terminal() {
    let (_tmp, e) = ingested_estate();
    // A real pseudo-terminal, driven like a person typing: each line after its prompt.
    let out = std::process::Command::new("python3")
        .arg(root().join("tests/pty_drive.py"))
        .args([
            r"(linkmeter|   \.\.\.)> ",
            "SELECT 41 + 1",
            "AS answer;",
            "\\d",
            "\\d accounts",
            "DROP TABLE flows;",
            "\\q",
            "--",
            bin().to_str().unwrap(),
            "sql",
        ])
        .current_dir(&e)
        .env("HOME", e.as_os_str())
        .env("LINKMETER_LOG", "warn")
        .output()
        .expect("python3 drives the terminal");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("| 42 "), "{text}");
    assert!(text.contains("view  account_usage"), "{text}");
    assert!(text.contains("| account_name | Utf8"), "{text}");
    assert!(text.contains("read-only"), "{text}");
    // History was kept for the next session.
    let history = std::fs::read_to_string(e.join(".linkmeter_sql_history")).unwrap();
    assert!(history.contains("AS answer;"), "{history}");
}

/// Commits a copy of `from`'s first `flows` file to `to`'s `flows` as segment `id`, which no
/// checkpoint names (as a run that died between its commits leaves it); rows copied.
async fn stage_orphan(from: &std::path::Path, to: &std::path::Path, id: &str) -> u64 {
    use linkmeter_warehouse::registry::FLOWS;
    let src = linkmeter_warehouse::Warehouse::local(from).unwrap();
    let t = src.read_table(&FLOWS).await.unwrap().unwrap();
    let file = t.files().unwrap().remove(0);
    let rows = t.read(std::slice::from_ref(&file)).await.unwrap();
    let partition: Vec<(&str, String)> = FLOWS
        .partitions
        .iter()
        .map(|k| (*k, file.partition[*k].clone().unwrap()))
        .collect();
    let w = linkmeter_warehouse::Warehouse::local(to).unwrap();
    let mut seg = linkmeter_warehouse::segment::Segment::new(id.into());
    seg.write(&w, &FLOWS, &partition, &rows).await.unwrap();
    seg.commit(&w, &[]).await.unwrap();
    rows.iter().map(|b| b.num_rows() as u64).sum()
}

#[test]
fn readers_never_count_a_segment_that_is_not_checkpointed() {
    // A segment's data commits come before its `inputs` commit (and a crash may leave it so
    // until the next run). Staged here: a copy of a committed flows file committed to `flows`
    // as a segment of its own that the checkpoint does not name.
    let (_tmp, e) = ingested_estate();
    let wh = e.join("warehouse");
    let count = |e: &std::path::Path| -> u64 {
        ok(
            e,
            &["sql", "--format", "csv", "SELECT COUNT(*) AS n FROM flows"],
        )
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
    };
    let before = count(&e);
    assert!(before > 0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let copied = rt.block_on(stage_orphan(&wh, &wh, "20990101T000000Z-pending"));
    assert!(copied > 0);
    // Delta itself lists the copy (a reader of the raw table would count it)...
    let delta_rows: u64 = rt.block_on(async {
        let w = linkmeter_warehouse::Warehouse::local(&wh).unwrap();
        let t = w
            .read_table(&linkmeter_warehouse::registry::FLOWS)
            .await
            .unwrap()
            .unwrap();
        t.read_all()
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows() as u64)
            .sum()
    });
    assert_eq!(delta_rows, before + copied);
    // ...linkmeter's readers do not, and the next ingest removes it.
    assert_eq!(count(&e), before);
    let out = ok(&e, &["ingest"]);
    assert!(out.contains("1 rolled back"), "{out}");
    assert_eq!(count(&e), before);

    // A warehouse whose first segment never reached its checkpoint: nothing is counted yet.
    let fresh = e.join("fresh-wh");
    rt.block_on(stage_orphan(&wh, &fresh, "20990101T000000Z-first"));
    let out = ok(
        &e,
        &[
            "sql",
            "-w",
            fresh.to_str().unwrap(),
            "--format",
            "csv",
            "SELECT COUNT(*) AS n FROM flows",
        ],
    );
    assert_eq!(out.lines().nth(1), Some("0"), "{out}");
}
