//! The hostile corpus (`linkmeter_test_support::hostile`) against the real binary under an
//! address-space limit: every case ends (exit 0 or 3) within 60 s, names its cause in the
//! quarantine, balances, leaves the good files beside it metered exactly as without it, and
//! a rerun succeeds without counting anything twice.

use std::path::Path;
use std::process::Command;

use linkmeter_test_support::hostile::{cases, Case};
use linkmeter_test_support::*;

/// 1.5 GiB of address space: the bound, far below what the cases once took.
const ADDRESS_SPACE: &str = "--as=1610612736";

/// Seconds a case may take: the 60 s for an optimized binary. A debug binary (what
/// `cargo test` builds) decodes several times slower, so it gets five times as long; the
/// release figures are measured by hand (README "Bad input").
const SECONDS: &str = if cfg!(debug_assertions) { "300" } else { "60" };

/// Runs `linkmeter ingest` in `estate` under the limit and a kill after [`SECONDS`]; (exit
/// code, stdout, stderr).
fn bounded_ingest(estate: &Path) -> (i32, String, String) {
    let out = Command::new("timeout")
        .args(["-s", "KILL", SECONDS, "prlimit", ADDRESS_SPACE, "--"])
        .arg(bin())
        .args(["ingest", "--workers", "2"])
        .current_dir(estate)
        .env("LINKMETER_LOG", "warn")
        .output()
        .expect("timeout and prlimit (util-linux, coreutils) are installed");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check(
    case: &Case,
    base: &Path,
    tmp: &Path,
    want: &std::collections::BTreeMap<(i64, String, String), u64>,
) {
    let estate = tmp.join(case.name);
    copy_dir(base, &estate);
    let file = estate.join("flowlogs").join(case.file_name());
    (case.write)(&file);
    for attempt in ["first run", "rerun"] {
        let started = std::time::Instant::now();
        let (code, out, err) = bounded_ingest(&estate);
        // Printed, not asserted (the machine is noisy): README "Limits" quotes these.
        eprintln!(
            "hostile case {}: {attempt} took {:.1} s",
            case.name,
            started.elapsed().as_secs_f64()
        );
        assert!(
            code == 0 || code == 3,
            "{} ({attempt}): exit {code}\nstdout:\n{out}\nstderr:\n{}",
            case.name,
            err.chars().take(3000).collect::<String>()
        );
        assert!(
            out.contains("[balanced]"),
            "{} ({attempt}): {out}",
            case.name
        );
    }
    let wh = estate.join("warehouse");
    assert_eq!(
        &metered(&wh),
        want,
        "{}: good files metered as without it",
        case.name
    );
    let q = query(
        &wh,
        &format!(
            "SELECT reason FROM quarantine WHERE source_uri LIKE '%{}'",
            case.file_name()
        ),
    );
    let reasons = strings(&q, 0);
    if case.reasons.is_empty() {
        assert!(reasons.is_empty(), "{}: {reasons:?}", case.name);
    } else {
        assert!(
            reasons
                .iter()
                .any(|r| case.reasons.iter().any(|w| r.contains(w))),
            "{}: no quarantine reason names {:?}: {:?}",
            case.name,
            case.reasons,
            reasons.iter().take(5).collect::<Vec<_>>()
        );
        assert!(
            reasons.len() <= 1001,
            "{}: {} quarantine rows",
            case.name,
            reasons.len()
        );
    }
    // Nothing was read twice: one run row read the file, the rerun skipped it.
    let runs = query(&wh, "SELECT inputs_read FROM runs ORDER BY started_at");
    assert_eq!(
        u64s(&runs, 0)[1],
        0,
        "{}: the rerun read nothing again",
        case.name
    );
}

#[test]
fn every_hostile_input_ends_quarantined_within_bounds_and_good_data_is_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    generate(
        tmp.path(),
        "base",
        "--days 1 --accounts 3 --instances 1 --noise 0",
    );
    let base = tmp.path().join("base");
    ok(&base, &["ingest"]);
    let want = metered(&base.join("warehouse"));
    assert!(!want.is_empty());
    for case in cases() {
        check(&case, &base, tmp.path(), &want);
    }
}

#[test]
fn byte_sums_do_not_wrap() {
    // 65,536 records of 2^48 bytes: 2^64 in one hour, which a u64 total wraps to 0.
    let tmp = tempfile::tempdir().unwrap();
    generate(
        tmp.path(),
        "base",
        "--days 1 --accounts 2 --instances 1 --noise 0",
    );
    let base = tmp.path().join("base");
    let case = cases()
        .into_iter()
        .find(|c| c.name == "65536-records-of-2-pow-48-bytes")
        .unwrap();
    (case.write)(&base.join("flowlogs").join(case.file_name()));
    let out = ok(&base, &["ingest"]);
    assert!(out.contains("[balanced]"), "{out}");
    let wh = base.join("warehouse");
    let hostile = query(
        &wh,
        &format!(
            "SELECT CAST(SUM(CAST(bytes AS DECIMAL(38, 0))) AS VARCHAR) FROM flows WHERE source_uri LIKE '%{}'",
            case.file_name()
        ),
    );
    assert_eq!(strings(&hostile, 0), ["18446744073709551616"]);
    let by_reason = query(
        &wh,
        "SELECT CAST(SUM(bytes) AS VARCHAR) FROM unattributed_by_reason WHERE reason = 'unknown_endpoint'",
    );
    let total: u128 = strings(&by_reason, 0)[0].parse().unwrap();
    assert!(total >= 1 << 64, "{total}");
    let runs = query(&wh, "SELECT CAST(bytes_in AS VARCHAR) FROM runs");
    let bytes_in: u128 = strings(&runs, 0)[0].parse().unwrap();
    assert!(
        bytes_in >= 1 << 64,
        "the run's total holds 2^64: {bytes_in}"
    );
}

#[cfg(unix)]
#[test]
fn links_out_of_the_source_and_to_devices_are_not_read() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    generate(
        tmp.path(),
        "base",
        "--days 1 --accounts 2 --instances 1 --noise 0",
    );
    let base = tmp.path().join("base");
    let secret = tmp.path().join("secret.txt");
    std::fs::write(&secret, "private: do not read\n").unwrap();
    symlink(&secret, base.join("flowlogs/a-link-to-secret.log")).unwrap();
    symlink("/dev/zero", base.join("flowlogs/a-link-to-zero.log")).unwrap();
    let (code, out, err) = bounded_ingest(&base);
    assert!(code == 0 || code == 3, "exit {code}: {out}\n{err}");
    assert!(err.contains("symbolic link"), "a warning says why: {err}");
    let wh = base.join("warehouse");
    let leaked = query(&wh, "SELECT raw FROM quarantine WHERE raw LIKE '%private%'");
    assert!(strings(&leaked, 0).is_empty());
    let read = query(&wh, "SELECT source_uri FROM inputs WHERE source_uri LIKE '%link-to%' OR source_uri LIKE '%secret%'");
    assert!(strings(&read, 0).is_empty());
}
