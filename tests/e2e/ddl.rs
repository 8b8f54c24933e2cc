//! `linkmeter ddl`: the script for each engine against a golden file (read by hand once, see
//! `tests/golden/README.md`), every statement parsed by sqlglot in that engine's grammar
//! (`tests/ddl_check.py`), and a local warehouse refused as a location.

use linkmeter_test_support::*;

const LOCATION: &str = "s3://example-bucket/linkmeter";

#[test]
fn each_dialect_matches_its_golden_file_and_parses_in_that_grammar() {
    let python = std::env::var("LINKMETER_TEST_PYTHON").expect(
        "LINKMETER_TEST_PYTHON is not set: run the tests with .ci/test, which installs sqlglot",
    );
    let tmp = tempfile::tempdir().unwrap();
    for dialect in ["athena", "trino", "spark"] {
        let out = ok(
            tmp.path(),
            &["ddl", "--dialect", dialect, "--location", LOCATION],
        );
        let golden = root().join(format!("tests/golden/ddl-{dialect}.sql"));
        let want = std::fs::read_to_string(&golden).unwrap();
        assert!(
            out == want,
            "{dialect}: the DDL differs from {}; if the change is meant, read the new output and replace the file",
            golden.display()
        );
        let file = tmp.path().join(format!("{dialect}.sql"));
        std::fs::write(&file, &out).unwrap();
        let check = std::process::Command::new(&python)
            .arg(root().join("tests/ddl_check.py"))
            .arg(dialect)
            .arg(&file)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&check.stdout);
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
        // Every table and view, each a statement sqlglot understood as what it is.
        let n = linkmeter_warehouse::registry::TABLES.len();
        let views = format!("CREATE VIEW={}", linkmeter_sql::VIEWS.len());
        let tables = match dialect {
            "trino" => format!("CALL={n}"),
            _ => format!("CREATE TABLE={n}"),
        };
        assert!(
            said.contains(&tables) && said.contains(&views),
            "{dialect}: {said}"
        );
    }
}

#[test]
fn a_local_warehouse_is_not_a_location() {
    let (_tmp, e) = ingested_estate();
    let out = linkmeter(&e, &["ddl", "--dialect", "athena"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("give --location"), "{err}");
    let out = linkmeter(&e, &["ddl", "--dialect", "hive", "--location", LOCATION]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("athena, trino or spark"));
    // No --location and no config: a configuration problem too.
    let empty = tempfile::tempdir().unwrap();
    let out = linkmeter(empty.path(), &["ddl", "--dialect", "spark"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no --location given"));
}
