//! The distributed engine on a real cluster: a Ballista scheduler and two executors, each its
//! own `linkmeter ballista …` process talking gRPC and Arrow Flight over loopback. The month
//! close run on it writes the same rollups, invoice lines and CSVs as the local engine, and the
//! README's ten questions and the reconciliation view give the same answers on both.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use linkmeter_test_support::*;

use crate::s3;

/// Cluster processes, stopped when dropped.
pub(crate) struct Cluster {
    children: Vec<Child>,
    /// The scheduler's URL for `--engine` and `[engine] scheduler`.
    pub(crate) url: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str, children: &mut [Child]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        for c in children.iter_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!("a cluster process exited ({status}) before the {what} listened");
            }
        }
        assert!(
            Instant::now() < deadline,
            "the {what} never listened on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spawn(dir: &Path, log: &str, args: &[&str]) -> Child {
    let log = std::fs::File::create(dir.join(log)).unwrap();
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("LINKMETER_CONFIG")
        .env_remove("LINKMETER_WAREHOUSE")
        .env("LINKMETER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("linkmeter runs")
}

/// A scheduler and two executors of two task slots each; `extra` goes to every role (the
/// config of an S3 warehouse, whose store they register).
pub(crate) fn cluster(dir: &Path, extra: &[&str]) -> Cluster {
    let sched = free_port();
    let bind = format!("127.0.0.1:{sched}");
    let mut args = vec!["ballista", "scheduler", "--bind", &bind];
    args.extend(extra);
    let mut children = vec![spawn(dir, "scheduler.log", &args)];
    wait_for_port(sched, "scheduler", &mut children);
    for i in 0..2 {
        let (port, grpc) = (free_port(), free_port());
        let (port_s, grpc_s) = (port.to_string(), grpc.to_string());
        let mut args = vec![
            "ballista",
            "executor",
            "--scheduler",
            &bind,
            "--bind-host",
            "127.0.0.1",
            "--external-host",
            "127.0.0.1",
            "--port",
            &port_s,
            "--grpc-port",
            &grpc_s,
            "--concurrent-tasks",
            "2",
        ];
        args.extend(extra);
        children.push(spawn(dir, &format!("executor-{i}.log"), &args));
        wait_for_port(port, "executor", &mut children);
    }
    Cluster {
        children,
        url: format!("df://127.0.0.1:{sched}"),
    }
}

/// A query's CSV rows, sorted (engines may return rows of equal sort keys in any order).
fn rows(dir: &Path, wh: &Path, engine: &str, sql: &str) -> Vec<String> {
    let out = ok(
        dir,
        &[
            "sql",
            "-w",
            wh.to_str().unwrap(),
            "--engine",
            engine,
            "--format",
            "csv",
            sql,
        ],
    );
    let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// The ten questions of the README's "Asking questions" section, as written there.
fn readme_questions() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("## Asking questions")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("the README has an Asking questions section");
    section
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("`SELECT") && l.ends_with('`'))
        .map(|l| l.trim_matches('`').to_string())
        .collect()
}

#[test]
fn the_month_close_and_the_readme_questions_give_the_same_answers_on_a_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // 14 accounts: the README's second question asks about the 13th.
    generate(d, "local", "--days 1 --accounts 14 --noise 1");
    ok(d, &["ingest", "--config", "local/linkmeter.toml"]);
    // The same warehouse twice: one closed by each engine.
    copy_dir(&d.join("local"), &d.join("dist"));
    copy_dir(
        &d.join("local").join("warehouse"),
        &d.join("dist").join("warehouse"),
    );
    let c = cluster(d, &[]);
    let cfg = d.join("dist").join("linkmeter.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[engine]\nkind = \"ballista\"\nscheduler = \"{}\"\n",
        c.url
    ));
    std::fs::write(&cfg, text).unwrap();

    let month = "2026-10";
    ok(
        d,
        &[
            "invoice",
            "--config",
            "local/linkmeter.toml",
            "--month",
            month,
        ],
    );
    let out = ok(
        d,
        &[
            "invoice",
            "--config",
            "dist/linkmeter.toml",
            "--month",
            month,
        ],
    );
    assert!(out.contains(&c.url), "the summary names the cluster: {out}");

    let (lw, dw) = (d.join("local/warehouse"), d.join("dist/warehouse"));
    let reports = format!("reports/month={month}");
    for csv in [
        "finance-aws.csv",
        "finance-chargeback.csv",
        "focus-aws.csv",
        "focus-chargeback.csv",
    ] {
        let a = std::fs::read(lw.join(&reports).join(csv)).unwrap();
        let b = std::fs::read(dw.join(&reports).join(csv)).unwrap();
        assert!(a.len() > 200, "{csv} has lines");
        assert!(
            a == b,
            "{csv} differs between the local engine and the cluster"
        );
    }
    for table in [
        "usage_hourly",
        "endpoint_hours",
        "connectivity_hours",
        "invoice_lines",
    ] {
        let sql = format!("SELECT * FROM {table}");
        let a = rows(d, &lw, "local", &sql);
        assert!(a.len() > 10, "{table} has rows: {a:?}");
        assert_eq!(
            a,
            rows(d, &dw, "local", &sql),
            "{table} written by the cluster differs"
        );
    }

    // Ad hoc SQL: the README's questions and the reconciliation view, on the same warehouse.
    let questions = readme_questions();
    assert_eq!(questions.len(), 10, "{questions:#?}");
    let recon = "SELECT * FROM reconciliation".to_string();
    for q in questions.iter().chain([&recon]) {
        let local = rows(d, &lw, "local", q);
        assert!(local.len() > 1, "{q} answers something: {local:?}");
        assert_eq!(local, rows(d, &lw, &c.url, q), "{q}");
    }
}

#[test]
fn an_unreachable_scheduler_is_named_with_what_to_do() {
    let (_tmp, e) = ingested_estate();
    let port = free_port();
    let url = format!("df://127.0.0.1:{port}");
    let out = linkmeter(
        &e,
        &["sql", "-w", "warehouse", "--engine", &url, "SELECT 1"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot reach the Ballista scheduler at {url}"))
            && err.contains("linkmeter ballista scheduler"),
        "{err}"
    );
}

/// A Ballista cluster over an S3 warehouse: every role registers the bucket's store from the
/// config (its `[s3]` endpoint), and the executors read the pinned files from the bucket.
#[test]
fn a_cluster_answers_from_an_s3_warehouse_as_the_local_engine_does() {
    let rt = s3::rt();
    let c = s3::client(&rt);
    let e = s3::estate("bal", "1", &rt, &c);
    let s3cfg = s3::warehouse_in_bucket(&e, &s3::endpoint());
    s3::ingest(&e, &s3cfg, &[]);
    let cfg = s3cfg.to_str().unwrap();
    let cluster = cluster(&e.dir, &["--config", cfg]);
    let q = "SELECT CAST(usage_hour AS BIGINT) AS h, connection_arn, direction, CAST(SUM(bytes) AS BIGINT) AS b \
             FROM billable_flows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
    let sql = |engine: &str| {
        ok(
            &e.dir,
            &[
                "sql", "--config", cfg, "--engine", engine, "--format", "csv", q,
            ],
        )
    };
    let local = sql("local");
    assert!(local.lines().count() > 100, "{local}");
    assert_eq!(sql(&cluster.url), local);
}
