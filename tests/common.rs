//! Helpers shared by the end-to-end tests: run the real binary, read the warehouse.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, UInt64Type};

/// Runs `linkmeter` with arguments in a directory, without a terminal.
pub fn linkmeter(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_linkmeter"))
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
    rt.block_on(async {
        let cat = linkmeter_sql::Catalog::open(warehouse).await.unwrap();
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

/// Reads a UInt64 or Int64 column.
pub fn u64s(batches: &[RecordBatch], col: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for b in batches {
        let a = b.column(col);
        if let Some(p) = a.as_primitive_opt::<UInt64Type>() {
            out.extend(p.values().iter().copied());
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
