//! End to end against a real S3-compatible server (moto, started by `.ci/test`; its URL is in
//! `S3_ENDPOINT`): a generated estate uploaded under every AWS key layout, gzip text and
//! Parquet objects, more than 1,000 objects (several listing pages), ingested by the real
//! binary and checked against the generator's ground truth; reruns, an ETag change,
//! `--shard`, `--since/--until`, and an S3 warehouse. Faults: `s3_faults.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use linkmeter_test_support::*;

pub(crate) fn endpoint() -> String {
    std::env::var("S3_ENDPOINT").expect(
        "S3_ENDPOINT is not set: run the tests with .ci/test, which starts an S3-compatible server",
    )
}

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) fn client(rt: &tokio::runtime::Runtime) -> aws_sdk_s3::Client {
    let ep = endpoint();
    rt.block_on(async {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(ep)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "static",
            ))
            .load()
            .await;
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf)
                .force_path_style(true)
                .build(),
        )
    })
}

/// A bucket name no other test uses.
pub(super) fn bucket(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("lm-{tag}-{}-{}", std::process::id(), n % 1_000_000_000)
}

/// The key an AWS delivery with `layout` would give a generated file.
pub(super) fn aws_key(rel: &str, layout: usize) -> String {
    // rel = AWSLogs/ACCT/vpcflowlogs/REGION/YYYY/MM/DD/NAME (hour is in NAME: ..._YYYYMMDDTHHmmZ_...)
    let p: Vec<&str> = rel.split('/').collect();
    let (acct, region, y, m, d, name) = (p[1], p[3], p[4], p[5], p[6], p[7]);
    let hh = &name[name.find('T').unwrap() + 1..][..2];
    match layout {
        0 => rel.to_string(),
        1 => format!("AWSLogs/aws-account-id={acct}/aws-service=vpcflowlogs/aws-region={region}/year={y}/month={m}/day={d}/{name}"),
        2 => format!("AWSLogs/{acct}/vpcflowlogs/{region}/{y}/{m}/{d}/{hh}/{name}"),
        _ => format!("AWSLogs/aws-account-id={acct}/aws-service=vpcflowlogs/aws-region={region}/year={y}/month={m}/day={d}/hour={hh}/{name}"),
    }
}

/// Converts a generated default-format (v2) gzip file to a Parquet flow-log file with AWS's
/// column names and types (`aws-facts.md` §3.4).
pub(super) fn to_parquet(gz: &Path) -> Vec<u8> {
    use arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
    let text = gunzip(gz);
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("version account-id"), "{header}");
    let rows: Vec<Vec<&str>> = lines
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .filter(|f| f.len() == 14 && f[9].parse::<i64>().is_ok())
        .collect();
    let s = |i: usize| -> ArrayRef {
        Arc::new(StringArray::from(
            rows.iter().map(|r| r[i].to_string()).collect::<Vec<_>>(),
        ))
    };
    let i32c = |i: usize| -> ArrayRef {
        Arc::new(Int32Array::from(
            rows.iter()
                .map(|r| r[i].parse::<i32>().unwrap())
                .collect::<Vec<_>>(),
        ))
    };
    let i64c = |i: usize| -> ArrayRef {
        Arc::new(Int64Array::from(
            rows.iter()
                .map(|r| r[i].parse::<i64>().unwrap())
                .collect::<Vec<_>>(),
        ))
    };
    let batch = RecordBatch::try_from_iter(vec![
        ("version", i32c(0)),
        ("account_id", s(1)),
        ("interface_id", s(2)),
        ("srcaddr", s(3)),
        ("dstaddr", s(4)),
        ("srcport", i32c(5)),
        ("dstport", i32c(6)),
        ("protocol", i64c(7)),
        ("packets", i64c(8)),
        ("bytes", i64c(9)),
        ("start", i64c(10)),
        ("end", i64c(11)),
        ("action", s(12)),
        ("log_status", s(13)),
    ])
    .unwrap();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

/// Uploads objects (key, bytes), 16 at a time.
pub(super) fn upload(
    rt: &tokio::runtime::Runtime,
    c: &aws_sdk_s3::Client,
    bucket: &str,
    objs: Vec<(String, Vec<u8>)>,
) {
    rt.block_on(async {
        c.create_bucket().bucket(bucket).send().await.unwrap();
        let sem = Arc::new(tokio::sync::Semaphore::new(16));
        let mut set = tokio::task::JoinSet::new();
        for (k, v) in objs {
            let (c, b, p) = (
                c.clone(),
                bucket.to_string(),
                sem.clone().acquire_owned().await.unwrap(),
            );
            set.spawn(async move {
                let _p = p;
                c.put_object()
                    .bucket(b)
                    .key(k)
                    .body(ByteStream::from(v))
                    .send()
                    .await
                    .unwrap();
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    });
}

/// A generated estate uploaded to a fresh bucket: the estate dir, bucket, keys uploaded.
pub(crate) struct Estate {
    pub(super) _tmp: tempfile::TempDir,
    pub(crate) dir: PathBuf,
    pub(super) bucket: String,
    pub(super) keys: Vec<String>,
}

pub(crate) fn estate(
    tag: &str,
    days: &str,
    rt: &tokio::runtime::Runtime,
    c: &aws_sdk_s3::Client,
) -> Estate {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(
        d,
        "estate",
        &format!("--days {days} --accounts 12 --instances 1 --noise 1"),
    );
    let dir = d.join("estate");
    let root = dir.join("flowlogs");
    let mut objs = Vec::new();
    let mut parquet_done = false;
    for (i, f) in walk(&root).into_iter().enumerate() {
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let key = aws_key(&rel, i % 4);
        let text = gunzip(&f);
        // Parquet for a default-format file whose every line is a plain record (no coverage
        // or malformed lines, which the conversion would not carry).
        let plain = text.starts_with("version account-id")
            && text.lines().skip(1).all(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                f.len() == 14 && f[9].parse::<u64>().is_ok()
            });
        if !parquet_done && plain && i > 10 {
            // One object as Parquet, as AWS delivers with file format `parquet`.
            parquet_done = true;
            objs.push((
                format!("central/{}", key.replace(".log.gz", ".log.parquet")),
                to_parquet(&f),
            ));
            continue;
        }
        objs.push((format!("central/{key}"), std::fs::read(&f).unwrap()));
    }
    assert!(parquet_done);
    let bucket = bucket(tag);
    let keys = objs.iter().map(|(k, _)| k.clone()).collect();
    upload(rt, c, &bucket, objs);
    Estate {
        _tmp: tmp,
        dir,
        bucket,
        keys,
    }
}

/// Writes a config reading `s3://BUCKET/central/` through `endpoint` into a fresh warehouse.
pub(super) fn config(e: &Estate, name: &str, endpoint: &str, extra: &str) -> PathBuf {
    let p = e.dir.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "warehouse = \"{name}-wh\"\ninventory = \"inventory.toml\"\nprices = \"prices.toml\"\n\n\
             [s3]\nendpoint_url = \"{endpoint}\"\nforce_path_style = true\nregion = \"us-east-1\"\n{extra}\n\
             [[sources]]\nname = \"central\"\nuri = \"s3://{}/central/\"\n",
            e.bucket
        ),
    )
    .unwrap();
    p
}

/// A config with the same sources whose warehouse is `s3://BUCKET/warehouse/v1`.
pub(crate) fn warehouse_in_bucket(e: &Estate, endpoint: &str) -> PathBuf {
    let p = config(e, "remote", endpoint, "");
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "warehouse = \"remote-wh\"",
        &format!("warehouse = \"s3://{}/warehouse/v1\"", e.bucket),
    );
    std::fs::write(&p, text).unwrap();
    p
}

pub(crate) fn ingest(e: &Estate, cfg: &Path, args: &[&str]) -> String {
    ingest_env(e, cfg, args, &[])
}

/// [`ingest`] with extra environment variables.
pub(super) fn ingest_env(e: &Estate, cfg: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut a = vec!["ingest", "--config", cfg.to_str().unwrap()];
    a.extend_from_slice(args);
    let out = std::process::Command::new(bin())
        .args(&a)
        .current_dir(&e.dir)
        .env("LINKMETER_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{a:?}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("[balanced]"), "{text}");
    text
}

#[test]
fn s3_layouts_pages_parquet_reruns_and_etag_changes() {
    let rt = rt();
    let c = client(&rt);
    let e = estate("main", "4", &rt, &c);
    assert!(
        e.keys.len() > 1000,
        "{} objects: more than one listing page",
        e.keys.len()
    );
    let cfg = config(&e, "s3", &endpoint(), "");
    let wh = e.dir.join("s3-wh");

    let out = ingest(&e, &cfg, &[]);
    assert_eq!(inputs_read(&out), e.keys.len() as u64, "{out}");
    assert!(out.contains("S3: "), "{out}");
    assert_matches_truth(&e.dir, &wh);
    // Every object is one committed input, each of the four layouts gave an account.
    assert_eq!(
        scalar(&wh, "SELECT COUNT(DISTINCT input_id) FROM inputs"),
        e.keys.len() as u64
    );
    for layout in [
        "%/vpcflowlogs/us-east-1/____/__/__/21%",
        "%/vpcflowlogs/us-east-1/____/__/__/__/21%",
        "%/aws-region=us-east-1/year=____/month=__/day=__/21%",
        "%/aws-region=us-east-1/year=____/month=__/day=__/hour=__/21%",
    ] {
        let n = scalar(
            &wh,
            &format!("SELECT COUNT(*) FROM flows WHERE status = 'attributed' AND source_uri LIKE '{layout}'"),
        );
        assert!(
            n > 0,
            "no attributed rows from objects laid out as {layout}"
        );
    }
    assert!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM flows WHERE source_uri LIKE '%.parquet'"
        ) > 0
    );
    let (n1, rows1) = flows_fingerprint(&wh);

    // A rerun lists everything and reads nothing.
    let out = ingest(&e, &cfg, &[]);
    assert!(out.contains(" 0 read,"), "{out}");
    assert_eq!(flows_fingerprint(&wh), (n1, rows1.clone()));

    // The same records re-written (a new ETag): that object is read again, nothing doubles.
    let victim = e
        .keys
        .iter()
        .find(|k| k.ends_with(".log.gz"))
        .unwrap()
        .clone();
    let body = rt.block_on(async {
        let o = c
            .get_object()
            .bucket(&e.bucket)
            .key(&victim)
            .send()
            .await
            .unwrap();
        o.body.collect().await.unwrap().into_bytes().to_vec()
    });
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(&body[..]), &mut text)
        .unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut enc, text.as_bytes()).unwrap();
    let rewritten = enc.finish().unwrap();
    assert_ne!(rewritten, body);
    rt.block_on(async {
        c.put_object()
            .bucket(&e.bucket)
            .key(&victim)
            .body(ByteStream::from(rewritten))
            .send()
            .await
            .unwrap();
    });
    let out = ingest(&e, &cfg, &[]);
    assert!(
        !out.contains(" 0 read,"),
        "the changed object was read again: {out}"
    );
    assert!(out.contains("segments 1 replaced"), "{out}");
    assert_matches_truth(&e.dir, &wh);
    assert_eq!(flows_fingerprint(&wh).0, n1);
}

#[test]
fn s3_shards_cover_every_object_once_and_time_ranges_prune() {
    let rt = rt();
    let c = client(&rt);
    let e = estate("shard", "2", &rt, &c);
    let cfg = config(&e, "sh", &endpoint(), "");
    let wh = e.dir.join("sh-wh");
    // Three shard tasks at once, one warehouse.
    let children: Vec<_> = (0..3)
        .map(|i| {
            std::process::Command::new(bin())
                .args([
                    "ingest",
                    "--config",
                    cfg.to_str().unwrap(),
                    "--shard",
                    &format!("{i}/3"),
                ])
                .env("LINKMETER_LOG", "warn")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut read = 0u64;
    for ch in children {
        let o = ch.wait_with_output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let n = inputs_read(&out);
        assert!(n > 0, "every shard has work: {out}");
        read += n;
    }
    assert_eq!(
        read,
        e.keys.len() as u64,
        "shards read every object exactly once"
    );
    assert_eq!(
        scalar(&wh, "SELECT COUNT(*) FROM inputs"),
        e.keys.len() as u64
    );
    assert_matches_truth(&e.dir, &wh);

    // --since/--until: a fresh warehouse gets exactly the objects of the first day.
    let cfg2 = config(&e, "day", &endpoint(), "");
    let out = ingest(
        &e,
        &cfg2,
        &["--since", "2026-10-01", "--until", "2026-10-02"],
    );
    let first_day = e.keys.iter().filter(|k| k.contains("_20261001T")).count();
    assert!(first_day > 0 && first_day < e.keys.len());
    assert_eq!(inputs_read(&out), first_day as u64, "{out}");
}

pub(super) fn upload_more(
    rt: &tokio::runtime::Runtime,
    c: &aws_sdk_s3::Client,
    bucket: &str,
    objs: Vec<(String, Vec<u8>)>,
) {
    rt.block_on(async {
        for (k, v) in objs {
            c.put_object()
                .bucket(bucket)
                .key(k)
                .body(ByteStream::from(v))
                .send()
                .await
                .unwrap();
        }
    });
}

#[test]
fn s3_warehouse_ingest_invoice_and_sql_match_a_local_warehouse() {
    let rt = rt();
    let c = client(&rt);
    let e = estate("wh", "1", &rt, &c);
    let ep = endpoint();
    let s3cfg = warehouse_in_bucket(&e, &ep);
    let local = config(&e, "local", &ep, "");

    let out = ingest(&e, &s3cfg, &[]);
    assert!(
        out.contains(&format!("warehouse s3://{}/warehouse/v1", e.bucket)),
        "{out}"
    );
    ingest(&e, &local, &[]);
    // The checkpoint lives in the bucket too: a rerun reads nothing.
    let out = ingest(&e, &s3cfg, &[]);
    assert!(out.contains(" 0 read,"), "{out}");

    let q = "SELECT CAST(usage_hour AS BIGINT) AS h, connection_arn, direction, CAST(SUM(bytes) AS BIGINT) AS b \
             FROM billable_flows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
    let sql = |cfg: &Path| {
        ok(
            &e.dir,
            &[
                "sql",
                "--config",
                cfg.to_str().unwrap(),
                "--format",
                "csv",
                q,
            ],
        )
    };
    let remote_rows = sql(&s3cfg);
    assert!(remote_rows.lines().count() > 100, "{remote_rows}");
    assert_eq!(remote_rows, sql(&local));

    // Invoices from both warehouses: the same finance CSV, byte for byte.
    for cfg in [&s3cfg, &local] {
        ok(
            &e.dir,
            &[
                "invoice",
                "--config",
                cfg.to_str().unwrap(),
                "--month",
                "2026-10",
            ],
        );
    }
    let remote_csv = rt.block_on(async {
        let o = c
            .get_object()
            .bucket(&e.bucket)
            .key("warehouse/v1/reports/month=2026-10/finance-chargeback.csv")
            .send()
            .await
            .unwrap();
        o.body.collect().await.unwrap().into_bytes().to_vec()
    });
    let local_csv = std::fs::read(
        e.dir
            .join("local-wh/reports/month=2026-10/finance-chargeback.csv"),
    )
    .unwrap();
    assert!(local_csv.len() > 200);
    assert_eq!(
        String::from_utf8(remote_csv).unwrap(),
        String::from_utf8(local_csv).unwrap()
    );
    let lines = ok(
        &e.dir,
        &[
            "sql",
            "--config",
            s3cfg.to_str().unwrap(),
            "--format",
            "csv",
            "SELECT COUNT(*) FROM invoice_lines WHERE month = '2026-10'",
        ],
    );
    assert!(
        lines.lines().nth(1).unwrap().parse::<u64>().unwrap() > 0,
        "{lines}"
    );

    // A live lock in the bucket stops a second writer, naming the holder; one its holder
    // stopped renewing for longer than the lock's time-to-live is taken over.
    rt.block_on(async {
        c.put_object()
            .bucket(&e.bucket)
            .key("warehouse/v1/_lock")
            .body(ByteStream::from(
                b"pid 1 on elsewhere, ingest, since then".to_vec(),
            ))
            .send()
            .await
            .unwrap();
    });
    let o = linkmeter(&e.dir, &["ingest", "--config", s3cfg.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("locked") && err.contains("elsewhere"), "{err}");
    std::thread::sleep(std::time::Duration::from_secs(3));
    let ttl = [("LINKMETER_LOCK_TTL_SECS", "2")];
    let out = ingest_env(&e, &s3cfg, &[], &ttl);
    assert!(out.contains(" 0 read,"), "{out}");
}

/// A container has no files of its own: the whole config comes from `LINKMETER_CONFIG_TOML`
/// and the inventory and price book from S3.
#[test]
fn run_from_environment_alone_with_inventory_and_prices_in_s3() {
    let rt = rt();
    let c = client(&rt);
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    generate(d, "estate", "--days 1 --accounts 4 --instances 1 --noise 1");
    let e = d.join("estate");
    let b = bucket("cfg");
    rt.block_on(async {
        c.create_bucket().bucket(&b).send().await.unwrap();
        for f in ["inventory.toml", "prices.toml"] {
            c.put_object()
                .bucket(&b)
                .key(format!("config/{f}"))
                .body(std::fs::read(e.join(f)).unwrap().into())
                .send()
                .await
                .unwrap();
        }
    });
    let toml = format!(
        "warehouse = \"{}\"\ninventory = \"s3://{b}/config/inventory.toml\"\nprices = \"s3://{b}/config/prices.toml\"\n\n[s3]\nendpoint_url = \"{}\"\nforce_path_style = true\n\n[[sources]]\nname = \"flowlogs\"\nuri = \"{}\"\n",
        d.join("wh").display(),
        endpoint(),
        e.join("flowlogs").display()
    );
    let out = std::process::Command::new(bin())
        .args(["run", "--month", "2026-10"])
        .current_dir(d)
        .env_remove("LINKMETER_CONFIG")
        .env("LINKMETER_CONFIG_TOML", toml)
        .env("LINKMETER_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!d.join("linkmeter.toml").exists());
    assert_matches_truth(&e, &d.join("wh"));
    assert!(d.join("wh/reports/month=2026-10/finance-aws.csv").is_file());
}
