//! S3 sources under faults and hostile objects, against the real S3-compatible server (moto):
//! throttling, cut downloads and an always-failing object behind a small HTTP proxy in this
//! test, and Parquet objects past the in-memory size (spilled) or faking their size.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use linkmeter_test_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::s3::*;

/// A proxy in front of the S3 server that answers every `every`-th request with 503 SlowDown,
/// cuts the body of every `cut`-th object download in half, and always fails requests for
/// keys containing `poison`. Returns its address and a request counter.
fn fault_proxy(
    rt: &tokio::runtime::Runtime,
    every: u64,
    cut: u64,
    victim: &str,
) -> (String, Arc<AtomicU64>) {
    let victim = victim.to_string();
    let upstream = endpoint().trim_start_matches("http://").to_string();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let n = Arc::new(AtomicU64::new(0));
    let counter = n.clone();
    rt.spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else { return };
            let k = counter.fetch_add(1, Ordering::SeqCst) + 1;
            // Scrambled so that retries in lockstep do not keep landing on the faulty slot.
            let k = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
            let (upstream, victim) = (upstream.clone(), victim.clone());
            tokio::spawn(async move {
                // Read the request head (these requests have no body).
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match client.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(m) => head.extend_from_slice(&buf[..m]),
                    }
                }
                let line = String::from_utf8_lossy(&head[..head.iter().position(|b| *b == b'\r').unwrap_or(0)]).to_string();
                let is_get_object = line.starts_with("GET ") && !line.contains("list-type");
                let ranged = String::from_utf8_lossy(&head)
                    .to_ascii_lowercase()
                    .contains("\r\nrange:");
                // The victim's body is cut in half and every attempt to resume it refused.
                let victim_hit = line.contains(victim.as_str());
                if line.contains("poison") || (victim_hit && ranged) || k.is_multiple_of(every) {
                    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
                    let resp = format!("HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                    let _ = client.write_all(resp.as_bytes()).await;
                    return;
                }
                let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await else { return };
                if up.write_all(&head).await.is_err() {
                    return;
                }
                if !(is_get_object && (k % cut == 1 || victim_hit)) {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                    return;
                }
                // Forward the response head and half of the body, then hang up.
                let mut resp = Vec::new();
                while !resp.windows(4).any(|w| w == b"\r\n\r\n") {
                    match up.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(m) => resp.extend_from_slice(&buf[..m]),
                    }
                }
                let end = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                let text = String::from_utf8_lossy(&resp[..end]).to_ascii_lowercase();
                let len: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let mut body = resp[end..].to_vec();
                while body.len() < len / 2 {
                    match up.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(m) => body.extend_from_slice(&buf[..m]),
                    }
                }
                body.truncate(len / 2);
                let _ = client.write_all(&resp[..end]).await;
                let _ = client.write_all(&body).await;
                let _ = client.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), n)
}

#[test]
fn s3_faults_are_retried_and_totals_match_a_fault_free_run() {
    let rt = rt();
    let c = client(&rt);
    let e = estate("faults", "1", &rt, &c);
    // A corrupt object and one that the proxy always refuses: both quarantined, run goes on.
    upload_more(&rt, &c, &e.bucket, vec![
        ("central/odd/corrupt.log.gz".into(), b"\x1f\x8b\x08\x00garbage that is not deflate".to_vec()),
        ("central/odd/poison.log".into(), b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n".to_vec()),
    ]);
    // One object whose body is cut and can never be resumed: given up mid-way.
    let victim = e
        .keys
        .iter()
        .filter(|k| k.ends_with(".log.gz"))
        .nth(7)
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let (proxy, requests) = fault_proxy(&rt, 5, 3, &victim);
    let cfg = config(
        &e,
        "faulty",
        &proxy,
        "backoff_ms = 5\nmax_attempts = 10\nconcurrency = 4\n",
    );
    let wh = e.dir.join("faulty-wh");
    let out = ingest(&e, &cfg, &[]);
    // moto answers with `Connection: close`, so each proxied connection is one request.
    assert!(requests.load(Ordering::SeqCst) > e.keys.len() as u64);
    let retried: u64 = out
        .split(" retried (")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no retry count: {out}"));
    assert!(retried > 10, "{out}");
    let resumed: u64 = out
        .split(" cut-off bodies resumed")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no resume count: {out}"));
    assert!(resumed > 0, "{out}");
    assert!(
        out.contains(", 2 objects unreadable after retries"),
        "{out}"
    );
    for name in ["poison.log", victim.as_str(), "corrupt.log.gz"] {
        assert!(out.contains(name), "{name} is named in the summary: {out}");
    }
    // The victim's first half was decoded before the read failed: short of the truth now.
    assert_ne!(metered(&wh), truth(&e.dir));

    // Next run straight from the server: the given-up objects are read again, their partial
    // rows replaced, not added to.
    let healed = e.dir.join("faulty.toml");
    let text = std::fs::read_to_string(&healed)
        .unwrap()
        .replace(&proxy, &endpoint());
    std::fs::write(&healed, text).unwrap();
    let out = ingest(&e, &healed, &[]);
    assert!(out.contains(", 0 objects unreadable"), "{out}");
    assert!(!out.contains("poison.log"), "{out}");
    assert!(inputs_read(&out) >= 2, "{out}");
    assert_matches_truth(&e.dir, &wh);

    // The same bucket read once without faults: the same warehouse contents.
    let clean = config(&e, "clean", &endpoint(), "");
    ingest(&e, &clean, &[]);
    assert_eq!(
        flows_fingerprint(&e.dir.join("clean-wh")),
        flows_fingerprint(&wh)
    );
}

/// A valid Parquet flow log of `rows` records on port 443 (not MSK: every one is filtered),
/// each with an unknown `pad` column of `pad` bytes, distinct per row so it does not
/// dictionary-encode away.
fn padded_parquet(rows: usize, pad: usize) -> Vec<u8> {
    use arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
    let s = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v; rows])) };
    let i32c = |v: i32| -> ArrayRef { Arc::new(Int32Array::from(vec![v; rows])) };
    let i64c = |v: i64| -> ArrayRef { Arc::new(Int64Array::from(vec![v; rows])) };
    let pads: Vec<String> = (0..rows)
        .map(|i| format!("{i:08}{}", "x".repeat(pad)))
        .collect();
    let batch = RecordBatch::try_from_iter(vec![
        ("version", i32c(2)),
        ("account_id", s("210000000000")),
        ("interface_id", s("eni-0aaaaaaaaaaaaaaaa")),
        ("srcaddr", s("10.9.9.9")),
        ("dstaddr", s("10.9.9.10")),
        ("srcport", i32c(50000)),
        ("dstport", i32c(443)),
        ("protocol", i64c(6)),
        ("packets", i64c(3)),
        ("bytes", i64c(1000)),
        ("start", i64c(1_790_812_800)), // 2026-10-01T00:00:00Z
        ("end", i64c(1_790_812_860)),
        ("action", s("ACCEPT")),
        ("log_status", s("OK")),
        ("pad", Arc::new(StringArray::from(pads)) as ArrayRef),
    ])
    .unwrap();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

#[test]
fn s3_parquet_over_the_in_memory_size_is_spilled_and_a_fake_one_quarantined() {
    // Parquet needs random access, so an S3 object is read whole before decoding: up to 8 MiB
    // in memory, past that into an unlinked temporary file. Before the limits, an object
    // starting with `PAR1` was read into one buffer of its listed size.
    let rt = rt();
    let c = client(&rt);
    let tmp = tempfile::tempdir().unwrap();
    generate(
        tmp.path(),
        "estate",
        "--days 1 --accounts 2 --instances 1 --noise 1",
    );
    let dir = tmp.path().join("estate");
    let prefix = "central/AWSLogs/210000000000/vpcflowlogs/us-east-1/2026/10/01";
    let big = padded_parquet(400, 30_000);
    assert!(big.len() > 10 << 20, "{} bytes", big.len());
    let mut fake = b"PAR1".to_vec();
    fake.resize(9 << 20, b'Z');
    let small = padded_parquet(3, 10);
    let objs = vec![
        (format!("{prefix}/big.log.parquet"), big),
        (format!("{prefix}/fake.log.parquet"), fake),
        (format!("{prefix}/small.log.parquet"), small),
    ];
    let keys = objs.iter().map(|(k, _)| k.clone()).collect();
    let b = bucket("spill");
    upload(&rt, &c, &b, objs);
    let e = Estate {
        _tmp: tmp,
        dir,
        bucket: b,
        keys,
    };
    let cfg = config(&e, "spill", &endpoint(), "");
    let wh = e.dir.join("spill-wh");
    let out = ingest(&e, &cfg, &[]);
    assert_eq!(inputs_read(&out), 3, "{out}");
    let per_input = |name: &str, col: &str| {
        scalar(
            &wh,
            &format!("SELECT CAST({col} AS BIGINT) FROM inputs WHERE input_key LIKE '%/{name}.log.parquet'"),
        )
    };
    // Every record of the spilled object was decoded (and filtered: port 443), none lost.
    assert_eq!(per_input("big", "records"), 400);
    assert_eq!(per_input("big", "quarantined"), 0);
    assert_eq!(per_input("small", "records"), 3);
    // The fake is one quarantine entry, read once, the others unaffected.
    assert_eq!(per_input("fake", "quarantined"), 1);
    assert_eq!(
        scalar(
            &wh,
            "SELECT COUNT(*) FROM quarantine WHERE source_uri LIKE '%/fake.log.parquet' AND reason LIKE 'not a readable Parquet file%'"
        ),
        1
    );
    // A rerun reads nothing again.
    let out = ingest(&e, &cfg, &[]);
    assert!(out.contains(" 0 read,"), "{out}");
}
