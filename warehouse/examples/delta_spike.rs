//! Spike: what Delta Lake (delta-rs 1.1) costs for linkmeter's write pattern.
//!
//!   cargo run --release -p linkmeter-warehouse --example delta_spike -- append DIR SEGMENTS INPUTS ROWS
//!   ... replace DIR | concurrent DIR | read DIR | s3 ENDPOINT BUCKET
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use deltalake::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use deltalake::kernel::engine::arrow_conversion::TryFromArrow;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Add, StructType};
use deltalake::logstore::LogStoreRef;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableBuilder, ObjectStore};
use object_store::{ObjectStoreExt, PutPayload};
use url::Url;

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new(
            "usage_hour",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("bytes", DataType::Int64, false),
        Field::new("endpoint_eni", DataType::Utf8, true),
        Field::new("input_id", DataType::Utf8, false),
        Field::new("source_uri", DataType::Utf8, false),
    ]))
}

fn table_schema() -> StructType {
    let mut f = schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect::<Vec<_>>();
    f.push(Field::new("date", DataType::Utf8, true));
    f.push(Field::new("hour", DataType::Utf8, true));
    StructType::try_from_arrow(&Schema::new(f)).unwrap()
}

fn batch(rows: usize, seed: usize, hour: i64) -> RecordBatch {
    let ids: Vec<String> = (0..rows)
        .map(|i| format!("{:016x}", (seed * 31 + i % 100) as u64))
        .collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(
                TimestampMicrosecondArray::from(vec![hour * 1_000_000; rows]).with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from((0..rows as i64).collect::<Vec<_>>())),
            Arc::new(StringArray::from(
                (0..rows)
                    .map(|i| format!("eni-{:08x}", i % 500))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(vec![
                format!(
                    "s3://bucket/AWSLogs/123/vpcflowlogs/file-{seed}.log.gz"
                );
                rows
            ])),
        ],
    )
    .unwrap()
}

fn parquet_bytes(b: &RecordBatch) -> Vec<u8> {
    let mut buf = Vec::new();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, b.schema(), Some(props)).unwrap();
    w.write(b).unwrap();
    w.close().unwrap();
    buf
}

async fn open_or_create(url: Url, store: Option<Arc<dyn ObjectStore>>) -> DeltaTable {
    let mut b = DeltaTableBuilder::from_url(url.clone()).unwrap();
    if let Some(s) = store {
        b = b.with_storage_backend(s, url.clone());
    }
    let mut t = b.build().unwrap();
    match t.load().await {
        Ok(()) => t,
        Err(_) => t
            .create()
            .with_columns(table_schema().fields().cloned())
            .with_partition_columns(["date", "hour"])
            .await
            .unwrap(),
    }
}

async fn write_segment(
    t: &DeltaTable,
    seg: usize,
    hours: i64,
    rows_per_hour: usize,
) -> Vec<Action> {
    let store = t.log_store().object_store(None);
    let mut adds = Vec::new();
    for h in 0..hours {
        let hour = 1_790_812_800 + h * 3600;
        let date = chrono::DateTime::from_timestamp(hour, 0).unwrap();
        let (d, hh) = (
            date.format("%Y-%m-%d").to_string(),
            date.format("%H").to_string(),
        );
        let path = format!("date={d}/hour={hh}/seg{seg:06}.0.parquet");
        let bytes = parquet_bytes(&batch(rows_per_hour, seg, hour));
        let size = bytes.len() as i64;
        store
            .put(
                &object_store::path::Path::from(path.as_str()),
                PutPayload::from(bytes),
            )
            .await
            .unwrap();
        let mut pv = HashMap::new();
        pv.insert("date".to_string(), Some(d));
        pv.insert("hour".to_string(), Some(hh));
        adds.push(Action::Add(Add {
            path,
            partition_values: pv,
            size,
            modification_time: chrono::Utc::now().timestamp_millis(),
            data_change: true,
            stats: Some(format!("{{\"numRecords\":{rows_per_hour}}}")),
            ..Default::default()
        }));
    }
    adds
}

async fn commit(t: &mut DeltaTable, actions: Vec<Action>, seg: usize) -> i64 {
    let snapshot = t.snapshot().unwrap();
    let mut meta = HashMap::new();
    meta.insert(
        "linkmeter.segment".to_string(),
        serde_json::json!(format!("seg{seg:06}")),
    );
    let v = CommitBuilder::from(deltalake::kernel::transaction::CommitProperties::default())
        .with_actions(actions)
        .with_app_metadata(meta)
        .build(
            Some(snapshot),
            t.log_store(),
            DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: None,
                predicate: None,
            },
        )
        .await
        .unwrap();
    let version = v.version();
    t.update_incremental(None).await.unwrap();
    version as i64
}

fn dir_size(p: &std::path::Path) -> (u64, usize) {
    let mut s = (0, 0);
    for e in std::fs::read_dir(p).unwrap().flatten() {
        s.0 += e.metadata().unwrap().len();
        s.1 += 1;
    }
    s
}

async fn append(dir: &str, segments: usize, hours: i64, rows: usize) {
    let url = Url::from_directory_path(std::fs::canonicalize(dir).unwrap()).unwrap();
    let mut t = open_or_create(url.clone(), None).await;
    let t0 = Instant::now();
    let mut slowest = 0f64;
    for s in 0..segments {
        let c0 = Instant::now();
        let adds = write_segment(&t, s, hours, rows).await;
        let w = c0.elapsed().as_secs_f64();
        let c1 = Instant::now();
        commit(&mut t, adds, s).await;
        let c = c1.elapsed().as_secs_f64();
        slowest = slowest.max(c);
        if s % 100 == 0 || s + 1 == segments {
            let (bytes, files) = dir_size(&std::path::Path::new(dir).join("_delta_log"));
            println!("segment {s}: write {w:.3}s commit {c:.3}s; log {files} files {bytes} bytes; table files {}", t.snapshot().unwrap().log_data().num_files());
        }
    }
    println!(
        "append: {segments} segments in {:.2}s ({:.1} commits/s), slowest commit {slowest:.3}s",
        t0.elapsed().as_secs_f64(),
        segments as f64 / t0.elapsed().as_secs_f64()
    );
    let l0 = Instant::now();
    let t2 = open_or_create(url, None).await;
    println!(
        "load snapshot: {:.3}s, version {:?}, files {}",
        l0.elapsed().as_secs_f64(),
        t2.version(),
        t2.snapshot().unwrap().log_data().num_files()
    );
}

async fn replace(dir: &str, seg: usize) {
    let url = Url::from_directory_path(std::fs::canonicalize(dir).unwrap()).unwrap();
    let mut t = open_or_create(url, None).await;
    let t0 = Instant::now();
    let name = format!("seg{seg:06}.");
    let removes: Vec<Action> = t
        .snapshot()
        .unwrap()
        .log_data()
        .iter()
        .filter(|f| f.path().rsplit('/').next().unwrap().starts_with(&name))
        .map(|f| Action::Remove(f.remove_action(true)))
        .collect();
    let n = removes.len();
    let mut actions = removes;
    actions.extend(write_segment(&t, 900_000 + seg, 24, 1000).await);
    commit(&mut t, actions, 900_000 + seg).await;
    println!(
        "replace: removed {n} files, added 24, in {:.3}s",
        t0.elapsed().as_secs_f64()
    );
}

async fn concurrent(url: Url, store: Option<Arc<dyn ObjectStore>>, each: usize) {
    let t = open_or_create(url.clone(), store.clone()).await;
    let before = t.snapshot().unwrap().log_data().num_files();
    let t0 = Instant::now();
    let mut hs = Vec::new();
    for w in 0..2usize {
        let (url, store) = (url.clone(), store.clone());
        hs.push(tokio::spawn(async move {
            let mut t = open_or_create(url, store).await;
            for i in 0..each {
                let seg = 500_000 + w * 10_000 + i;
                let adds = write_segment(&t, seg, 2, 100).await;
                commit(&mut t, adds, seg).await;
            }
        }));
    }
    for h in hs {
        h.await.unwrap();
    }
    let t2 = open_or_create(url, store).await;
    let after = t2.snapshot().unwrap().log_data().num_files();
    println!("concurrent: 2 writers x {each} commits in {:.2}s; files {before} -> {after} (expected +{}), version {:?}", t0.elapsed().as_secs_f64(), 2 * each * 2, t2.version());
    assert_eq!(after - before, 2 * each * 2);
}

async fn read(dir: &str) {
    let url = Url::from_directory_path(std::fs::canonicalize(dir).unwrap()).unwrap();
    let t = open_or_create(url, None).await;
    let ctx = deltalake::datafusion::prelude::SessionContext::new();
    let t0 = Instant::now();
    let provider = t.table_provider().build().await.unwrap();
    ctx.register_table("flows", Arc::new(provider)).unwrap();
    println!("provider built in {:.3}s", t0.elapsed().as_secs_f64());
    for q in [
        "SELECT COUNT(*), SUM(bytes) FROM flows",
        "SELECT date, COUNT(*) FROM flows WHERE date = '2026-10-01' GROUP BY date",
        "SELECT endpoint_eni, SUM(bytes) FROM flows GROUP BY 1 ORDER BY 2 DESC LIMIT 2",
    ] {
        let t1 = Instant::now();
        let r = ctx.sql(q).await.unwrap().collect().await.unwrap();
        println!(
            "delta {q}: {:.3}s\n{}",
            t1.elapsed().as_secs_f64(),
            deltalake::arrow::util::pretty::pretty_format_batches(&r).unwrap()
        );
    }
    // The same files as a plain Hive-partitioned listing.
    let ctx2 = deltalake::datafusion::prelude::SessionContext::new();
    let opts =
        deltalake::datafusion::prelude::ParquetReadOptions::default().table_partition_cols(vec![
            ("date".into(), DataType::Utf8),
            ("hour".into(), DataType::Utf8),
        ]);
    ctx2.register_parquet("flows", &format!("{dir}/"), opts)
        .await
        .unwrap();
    for q in [
        "SELECT COUNT(*), SUM(bytes) FROM flows",
        "SELECT endpoint_eni, SUM(bytes) FROM flows GROUP BY 1 ORDER BY 2 DESC LIMIT 2",
    ] {
        let t1 = Instant::now();
        let r = ctx2.sql(q).await.unwrap().collect().await.unwrap();
        println!(
            "listing {q}: {:.3}s\n{}",
            t1.elapsed().as_secs_f64(),
            deltalake::arrow::util::pretty::pretty_format_batches(&r).unwrap()
        );
    }
}

async fn s3(endpoint: &str, bucket: &str) {
    let store: Arc<dyn ObjectStore> = Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap(),
    );
    let url = Url::parse(&format!("s3://{bucket}/spike/flows/")).unwrap();
    // delta-rs builds its prefixed store from the root store and the URL.
    let t0 = Instant::now();
    let mut t = open_or_create(url.clone(), Some(store.clone())).await;
    for s in 0..20 {
        let adds = write_segment(&t, s, 2, 100).await;
        commit(&mut t, adds, s).await;
    }
    println!(
        "s3: 20 commits in {:.2}s, version {:?}",
        t0.elapsed().as_secs_f64(),
        t.version()
    );
    concurrent(url.clone(), Some(store.clone()), 10).await;
    // A second PUT of an existing commit is refused: what makes commits atomic.
    let p = object_store::path::Path::from("spike/flows/_delta_log/00000000000000000001.json");
    let r = store
        .put_opts(
            &p,
            PutPayload::from_static(b"{}"),
            object_store::PutMode::Create.into(),
        )
        .await;
    println!(
        "put-if-absent on an existing commit: {:?}",
        r.err().map(|e| e.to_string())
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let _: Option<LogStoreRef> = None;
    match a[1].as_str() {
        "append" => {
            append(
                &a[2],
                a[3].parse().unwrap(),
                a[4].parse().unwrap(),
                a[5].parse().unwrap(),
            )
            .await
        }
        "replace" => replace(&a[2], a[3].parse().unwrap()).await,
        "concurrent" => {
            let url = Url::from_directory_path(std::fs::canonicalize(&a[2]).unwrap()).unwrap();
            concurrent(url, None, 50).await
        }
        "read" => read(&a[2]).await,
        "s3" => s3(&a[2], &a[3]).await,
        _ => panic!("unknown"),
    }
}
