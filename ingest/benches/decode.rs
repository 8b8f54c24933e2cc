//! Decoder and attribution throughput on generated flow-log text (plain and gzip).
//! Run: cargo bench -p linkmeter-ingest --bench decode

use std::io::Write;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use linkmeter_ingest::attribute::{attribute, Outcome};
use linkmeter_ingest::decode::flow_text::TextDecoder;
use linkmeter_ingest::decode::{Decoder, Event};
use linkmeter_ingest::fields::{Format, DEFAULT_FORMAT};
use linkmeter_ingest::inventory::Inventory;

const N: usize = 200_000;

fn sample_text() -> String {
    let mut s = String::from(DEFAULT_FORMAT);
    s.push('\n');
    for i in 0..N {
        let t = 1_790_812_800 + (i as u64 % 86_400);
        // One in four records is MSK traffic through an endpoint ENI, the rest noise.
        if i % 4 == 0 {
            s.push_str(&format!("2 unknown eni-0a1b2c3d4e5f60718 10.1.100.{} 10.1.1.10 {} 1400{} 6 {} {} {t} {} ACCEPT OK\n", i % 200, 40000 + i % 20000, 1 + i % 3, 10 + i % 90, 1000 + i * 7 % 9_000_000, t + 59));
        } else {
            s.push_str(&format!("2 123456789012 eni-0f0e0d0c0b0a09080 10.1.100.{} 10.{}.{}.{} {} 443 6 {} {} {t} {} ACCEPT OK\n", i % 200, 200 + i % 50, i % 250, 1 + i % 250, 30000 + i % 30000, 1 + i % 90, 40 + i * 13 % 2_000_000, t + 30));
        }
    }
    s
}

fn gz(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

const INVENTORY: &str = r#"
[[accounts]]
id = "123456789012"
name = "t"
[[clusters]]
arn = "arn:aws:kafka:us-east-1:999999999999:cluster/c/1"
connectivity = [{ auth = "SASL_IAM", on = "2020-01-01T00:00:00Z" }]
[[connections]]
arn = "arn:aws:kafka:us-east-1:123456789012:vpc-connection/999999999999/c/1"
cluster = "c"
auth = "SASL_IAM"
client_account = "123456789012"
vpc_id = "vpc-1"
endpoint_id = "vpce-1"
created = "2020-01-01T00:00:00Z"
enis = [{ id = "eni-0a1b2c3d4e5f60718", az_id = "use1-az1", ips = ["10.1.1.10"] }]
"#;

fn bench(c: &mut Criterion) {
    let text = sample_text();
    let packed = gz(&text);
    let fmt = Format::parse(DEFAULT_FORMAT).unwrap();
    let ix = Inventory::from_toml(INVENTORY, "bench").unwrap();
    let mut g = c.benchmark_group("flow_text");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.bench_function("decode_plain", |b| {
        b.iter(|| {
            let mut n = 0u64;
            TextDecoder::new(text.as_bytes(), fmt.clone())
                .decode(&mut |ev| {
                    if let Event::Record(..) = ev {
                        n += 1
                    }
                })
                .unwrap();
            assert_eq!(n, N as u64);
        })
    });
    g.bench_function("decode_gzip", |b| {
        b.iter(|| {
            let mut n = 0u64;
            TextDecoder::new(&packed[..], fmt.clone())
                .decode(&mut |ev| {
                    if let Event::Record(..) = ev {
                        n += 1
                    }
                })
                .unwrap();
            assert_eq!(n, N as u64);
        })
    });
    g.bench_function("decode_gzip_attribute", |b| {
        b.iter(|| {
            let mut relevant = 0u64;
            TextDecoder::new(&packed[..], fmt.clone())
                .decode(&mut |ev| {
                    if let Event::Record(r, _) = ev {
                        if let Outcome::Relevant(_) = attribute(r, None, &ix) {
                            relevant += 1;
                        }
                    }
                })
                .unwrap();
            assert_eq!(relevant, (N / 4) as u64);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
