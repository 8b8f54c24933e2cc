//! Helpers shared by the end-to-end tests (`tests/e2e/`): run the real binary, read the
//! warehouse with the catalog the binary uses, and the generator's ground truth.

pub mod hostile;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Decimal128Type, Int64Type, UInt64Type};

/// The `linkmeter` binary next to the test binary (`target/PROFILE/linkmeter`, as cargo and
/// nextest build it), or `LINKMETER_BIN`.
pub fn bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LINKMETER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let dir = exe.parent().expect("target/PROFILE/deps");
    let dir = if dir.ends_with("deps") {
        dir.parent().expect("target/PROFILE")
    } else {
        dir
    };
    dir.join(format!("linkmeter{}", std::env::consts::EXE_SUFFIX))
}

/// The project's root directory (where `tests/` holds the scripts the tests run).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support sits in the workspace")
        .to_path_buf()
}

/// Runs `linkmeter` with arguments in a directory, without a terminal.
pub fn linkmeter(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("LINKMETER_WAREHOUSE")
        .env_remove("LINKMETER_CONFIG")
        .env("LINKMETER_LOG", "warn")
        .output()
        .expect("the linkmeter binary runs");
    out
}

/// Runs `linkmeter` and insists it succeeds; returns stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = linkmeter(dir, args);
    assert!(
        out.status.success(),
        "linkmeter {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs SQL over a warehouse with the same catalog the binary uses.
pub fn query(warehouse: &Path, sql: &str) -> Vec<RecordBatch> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let wh = linkmeter_warehouse::Warehouse::local(warehouse).unwrap();
    rt.block_on(async {
        let cat = linkmeter_sql::Catalog::open(&wh).await.unwrap();
        cat.query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    })
}

/// Reads a column of a result as strings (any type, via display).
pub fn strings(batches: &[RecordBatch], col: usize) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let a = b.column(col);
        for i in 0..a.len() {
            out.push(arrow::util::display::array_value_to_string(a, i).unwrap());
        }
    }
    out
}

/// Reads a UInt64, Int64 or whole-number Decimal128 column.
pub fn u64s(batches: &[RecordBatch], col: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for b in batches {
        let a = b.column(col);
        // A null's slot holds an unspecified value: a test must never read one as a number.
        assert_eq!(
            a.null_count(),
            0,
            "column {col} has nulls: filter or COALESCE them"
        );
        if let Some(p) = a.as_primitive_opt::<UInt64Type>() {
            out.extend(p.values().iter().copied());
        } else if let Some(d) = a.as_primitive_opt::<Decimal128Type>() {
            // Whole-number decimals (the run totals of bytes).
            assert!(matches!(
                a.data_type(),
                arrow::datatypes::DataType::Decimal128(_, 0)
            ));
            out.extend(
                d.values()
                    .iter()
                    .map(|v| u64::try_from(*v).expect("fits u64")),
            );
        } else {
            out.extend(
                a.as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .map(|v| *v as u64),
            );
        }
    }
    out
}

/// One number from a single-row, single-column result.
pub fn scalar(warehouse: &Path, sql: &str) -> u64 {
    let b = query(warehouse, sql);
    let v = u64s(&b, 0);
    assert_eq!(v.len(), 1, "{sql}");
    v[0]
}

/// The generator's ground truth: bytes per (hour µs, connection, direction).
pub fn truth(dir: &Path) -> BTreeMap<(i64, String, String), u64> {
    let text = std::fs::read_to_string(dir.join("ground_truth.csv")).unwrap();
    let mut m = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let hour = chrono::DateTime::parse_from_rfc3339(f[0])
            .unwrap()
            .timestamp()
            * 1_000_000;
        m.insert(
            (hour, f[1].to_string(), f[2].to_string()),
            f[3].parse().unwrap(),
        );
    }
    m
}

/// Billable bytes per (hour µs, connection, direction) in a warehouse.
pub fn metered(wh: &Path) -> BTreeMap<(i64, String, String), u64> {
    let b = query(
        wh,
        "SELECT CAST(usage_hour AS BIGINT), connection_arn, direction, CAST(SUM(bytes) AS BIGINT) \
         FROM billable_flows GROUP BY 1, 2, 3",
    );
    let hours = u64s(&b, 0);
    let conns = strings(&b, 1);
    let dirs = strings(&b, 2);
    let bytes = u64s(&b, 3);
    let mut m = BTreeMap::new();
    for i in 0..hours.len() {
        m.insert(
            (hours[i] as i64, conns[i].clone(), dirs[i].clone()),
            bytes[i],
        );
    }
    m
}

/// Everything in `flows` except the run id, in a stable order: the warehouse's content.
pub fn flows_fingerprint(wh: &Path) -> (u64, Vec<String>) {
    let b = query(
        wh,
        "SELECT input_id, date, hour, CAST(usage_hour AS BIGINT), source_line, bytes, packets, status, \
         COALESCE(reason, ''), direction, observed_at, COALESCE(connection_arn, ''), COALESCE(endpoint_eni, '') \
         FROM flows ORDER BY input_id, source_line, 4",
    );
    let n: usize = b.iter().map(|b| b.num_rows()).sum();
    let mut rows = vec![String::new(); n];
    for c in 0..13 {
        for (i, v) in strings(&b, c).into_iter().enumerate() {
            rows[i].push_str(&v);
            rows[i].push('|');
        }
    }
    (n as u64, rows)
}

/// Every file under a directory, sorted.
pub fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out.sort();
    out
}

/// A gzip file's text.
pub fn gunzip(p: &Path) -> String {
    use std::io::Read;
    let mut s = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    s
}

/// Writes text gzipped.
pub fn gzip(p: &Path, text: &str) {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(
        std::fs::File::create(p).unwrap(),
        flate2::Compression::default(),
    );
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap();
}

/// Asserts that a warehouse's billable bytes equal an estate's ground truth, key by key.
pub fn assert_matches_truth(estate: &Path, wh: &Path) {
    let want = truth(estate);
    let got = metered(wh);
    assert!(!want.is_empty());
    let wrong: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .take(5)
        .map(|(k, v)| (k, v, got.get(k)))
        .collect();
    assert!(
        wrong.is_empty(),
        "differs from truth (first 5: key, want, got): {wrong:?}\n got {} keys, want {}",
        got.len(),
        want.len()
    );
    assert_eq!(got.len(), want.len(), "metered keys that the truth lacks");
}

/// Runs `linkmeter generate --out OUT` with options written as one string (`"--days 2 …"`).
pub fn generate(dir: &Path, out: &str, opts: &str) {
    let mut args = vec!["generate", "--out", out];
    args.extend(opts.split_whitespace());
    ok(dir, &args);
}

/// A small generated estate (1 day, 6 accounts), ingested: (its temp dir, the estate).
pub fn ingested_estate() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    generate(
        tmp.path(),
        "estate",
        "--days 1 --accounts 6 --instances 1 --noise 1",
    );
    let e = tmp.path().join("estate");
    ok(&e, &["ingest"]);
    (tmp, e)
}

/// The "N read," count of inputs in an ingest summary.
pub fn inputs_read(out: &str) -> u64 {
    out.split(" read,")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|s| s.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("no read count in {out}"))
}

/// Copies an estate directory (its inputs and config), leaving out its warehouse.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (p, q) = (e.path(), to.join(e.file_name()));
        if e.file_name() == "warehouse" {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &q);
        } else {
            std::fs::copy(&p, &q).unwrap();
        }
    }
}

/// A CSV document's rows, header first, parsed as RFC 4180 (quoted cells may hold commas).
pub fn csv_rows(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}
