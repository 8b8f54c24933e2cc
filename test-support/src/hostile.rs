//! A corpus of hostile inputs: every file here once made ingest crash, hang, exhaust memory or
//! miscount (issue #13), or is a close relative of one that did. Each case writes its file into
//! a source directory and says what the quarantine must name.
//!
//! Files are built without holding their decompressed size in memory (gzip members are
//! compressed once and repeated), so the corpus is cheap to write even where it expands to
//! gigabytes.

use std::fs;
use std::io::Write;
use std::path::Path;

/// A flow-log header (AWS default format v2).
pub const V2: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

/// An address no inventory has: relevant traffic (port 14001) to it is `unknown_endpoint`.
const NOWHERE: &str = "10.254.254.254";

/// One hostile input.
pub struct Case {
    /// Short name; the file is named `hostile-<name>` plus `ext`.
    pub name: &'static str,
    /// File name extension (`.log`, `.log.gz`, `.json`, `.bin`).
    pub ext: &'static str,
    /// What the quarantine must say about it: one of these appears in a reason of a row of
    /// this file. Empty: nothing of it may be quarantined (the case checks arithmetic or
    /// listing instead).
    pub reasons: &'static [&'static str],
    /// Writes the file at the given path.
    pub write: fn(&Path),
}

impl Case {
    /// The file's name.
    pub fn file_name(&self) -> String {
        format!("hostile-{}{}", self.name, self.ext)
    }
}

fn line(start: i64, end: i64, bytes: u64) -> String {
    format!("2 111122223333 eni-0hostile 10.1.1.1 {NOWHERE} 40000 14001 6 1 {bytes} {start} {end} ACCEPT OK\n")
}

fn text(path: &Path, body: impl FnOnce(&mut dyn Write)) {
    let mut f = std::io::BufWriter::new(fs::File::create(path).unwrap());
    body(&mut f);
    f.flush().unwrap();
}

/// One gzip member of `plain`.
fn member(plain: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(plain).unwrap();
    e.finish().unwrap()
}

/// `count` copies of one gzip member: a multi-member stream that expands to `count × plain`.
fn repeated_members(path: &Path, plain: &[u8], count: usize) {
    let m = member(plain);
    text(path, |w| {
        for _ in 0..count {
            w.write_all(&m).unwrap();
        }
    });
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    let mut b = Vec::new();
    varint(v, &mut b);
    b.len()
}

/// An OpenTelemetry `ExportMetricsServiceRequest` whose resource attribute value is a
/// key-value list nested `depth` deep, length-prefixed as metric streams write it. Built
/// outside-in from sizes computed inside-out, so it takes linear time.
fn deep_otel(depth: usize) -> Vec<u8> {
    // Innermost AnyValue: string_value "x".
    let inner: Vec<u8> = vec![0x0a, 1, b'x'];
    // Per level (outermost first): AnyValue{6: KeyValueList{1: KeyValue{1:"k", 2: AnyValue}}}.
    let mut sizes = Vec::with_capacity(depth);
    let mut any = inner.len() as u64;
    for _ in 0..depth {
        let kv = 3 + 1 + varint_len(any) as u64 + any;
        let list = 1 + varint_len(kv) as u64 + kv;
        sizes.push((any, kv, list));
        any = 1 + varint_len(list) as u64 + list;
    }
    let mut body = Vec::with_capacity(any as usize + 64);
    for &(inner_any, kv, list) in sizes.iter().rev() {
        body.push(0x32); // AnyValue.kvlist_value (6, LEN)
        varint(list, &mut body);
        body.push(0x0a); // KeyValueList.values (1, LEN)
        varint(kv, &mut body);
        body.extend_from_slice(&[0x0a, 1, b'k']); // KeyValue.key
        body.push(0x12); // KeyValue.value (2, LEN)
        varint(inner_any, &mut body);
    }
    body.extend_from_slice(&inner);
    // KeyValue{1:"a", 2: body} in Resource.attributes in ResourceMetrics.resource in the request.
    let mut kv = vec![0x0a, 1, b'a', 0x12];
    varint(body.len() as u64, &mut kv);
    kv.extend_from_slice(&body);
    let wrap = |field: u8, inner: Vec<u8>| {
        let mut v = vec![field];
        varint(inner.len() as u64, &mut v);
        v.extend_from_slice(&inner);
        v
    };
    let req = wrap(0x0a, wrap(0x0a, wrap(0x0a, kv)));
    let mut out = Vec::new();
    varint(req.len() as u64, &mut out);
    out.extend_from_slice(&req);
    out
}

/// Every case of the corpus.
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "span-to-year-9999",
            ext: ".log",
            reasons: &["max_record_span_secs"],
            write: |p| {
                text(p, |w| {
                    write!(w, "{V2}\n{}", line(0, 253_402_300_799, 100)).unwrap()
                })
            },
        },
        Case {
            name: "span-three-years",
            ext: ".log",
            reasons: &["max_record_span_secs"],
            write: |p| {
                let s = 1_790_000_000;
                text(p, |w| {
                    write!(w, "{V2}\n{}", line(s, s + 3 * 365 * 86_400, 100)).unwrap()
                })
            },
        },
        Case {
            name: "100k-records-each-in-its-own-hour",
            ext: ".log",
            reasons: &["max_partitions_per_input"],
            write: |p| {
                text(p, |w| {
                    writeln!(w, "{V2}").unwrap();
                    for i in 0..100_000i64 {
                        let s = 1_500_000_000 + i * 3600;
                        w.write_all(line(s, s + 60, 1).as_bytes()).unwrap();
                    }
                })
            },
        },
        Case {
            name: "gzip-bomb-4096-members-of-1mib-zeros",
            ext: ".log.gz",
            reasons: &["max_line_bytes", "max_decompressed"],
            write: |p| repeated_members(p, &vec![0u8; 1 << 20], 4096),
        },
        Case {
            name: "10mb-srcaddr-on-2000-lines",
            ext: ".log.gz",
            reasons: &["max_line_bytes"],
            write: |p| {
                let mut l = b"2 111122223333 eni-0 ".to_vec();
                l.extend(std::iter::repeat_n(b'a', 10 << 20));
                l.extend_from_slice(b" 10.0.0.1 1 14001 6 1 1 1790000000 1790000060 ACCEPT OK\n");
                let head = member(format!("{V2}\n").as_bytes());
                let m = member(&l);
                text(p, |w| {
                    w.write_all(&head).unwrap();
                    for _ in 0..2000 {
                        w.write_all(&m).unwrap();
                    }
                })
            },
        },
        Case {
            name: "200m-nul-lines",
            ext: ".log.gz",
            reasons: &[
                "not UTF-8",
                "binary",
                "max_decompressed",
                "max_quarantine_rows",
            ],
            write: |p| repeated_members(p, &b"\0\n".repeat(1 << 20), 200),
        },
        Case {
            name: "otel-nested-200000-deep",
            ext: ".bin",
            reasons: &["max_nesting"],
            write: |p| fs::write(p, deep_otel(200_000)).unwrap(),
        },
        Case {
            name: "otel-length-prefix-4gib",
            ext: ".bin",
            reasons: &["max_message_bytes"],
            write: |p| {
                let mut b = Vec::new();
                varint(u32::MAX as u64, &mut b);
                b.extend_from_slice(&[0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x01, b'x']);
                b.extend(std::iter::repeat_n(0u8, 4096));
                fs::write(p, b).unwrap()
            },
        },
        Case {
            name: "par1-then-garbage",
            ext: ".parquet",
            reasons: &["Parquet"],
            write: |p| {
                let mut b = b"PAR1".to_vec();
                b.extend((0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
                b.extend_from_slice(b"\xff\xff\xff\x7fPAR1");
                fs::write(p, b).unwrap()
            },
        },
        Case {
            name: "65536-records-of-2-pow-48-bytes",
            ext: ".log",
            reasons: &[],
            write: |p| {
                text(p, |w| {
                    writeln!(w, "{V2}").unwrap();
                    let l = line(1_790_000_000, 1_790_000_060, 1 << 48);
                    for _ in 0..65_536 {
                        w.write_all(l.as_bytes()).unwrap();
                    }
                })
            },
        },
        Case {
            name: "zip-of-zips",
            ext: ".zip",
            reasons: &["binary"],
            write: |p| {
                let mut b = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
                b.extend(std::iter::repeat_n(0u8, 20));
                b.extend_from_slice(b"inner.zipPK\x03\x04\x14\x00\x00\x00\x08\x00\x00\x00\xff\xfe");
                b.extend(std::iter::repeat_n(0xabu8, 5000));
                fs::write(p, b).unwrap()
            },
        },
        Case {
            name: "truncated-gzip",
            ext: ".log.gz",
            reasons: &["corrupt or cut off"],
            write: |p| {
                let mut body = format!("{V2}\n");
                for i in 0..2000 {
                    body.push_str(&line(1_790_000_000 + i, 1_790_000_060 + i, 7));
                }
                let m = member(body.as_bytes());
                fs::write(p, &m[..m.len() / 2]).unwrap()
            },
        },
        Case {
            name: "header-of-10000-fields",
            ext: ".log",
            reasons: &["header", "max_line_bytes"],
            write: |p| {
                let header: Vec<String> = (0..10_000).map(|i| format!("f{i}")).collect();
                let data: Vec<&str> = vec!["1"; 10_000];
                text(p, |w| {
                    writeln!(w, "{}", header.join(" ")).unwrap();
                    for _ in 0..100 {
                        writeln!(w, "{}", data.join(" ")).unwrap();
                    }
                })
            },
        },
        Case {
            name: "invalid-utf8-in-every-field",
            ext: ".log",
            reasons: &["not UTF-8"],
            write: |p| {
                text(p, |w| {
                    writeln!(w, "{V2}").unwrap();
                    for _ in 0..1000 {
                        let fields: Vec<&[u8]> = vec![b"\xff\xfe"; 14];
                        w.write_all(&fields.join(&b' ')).unwrap();
                        w.write_all(b"\n").unwrap();
                    }
                })
            },
        },
        Case {
            name: "json-nested-30000-deep",
            ext: ".json",
            reasons: &["metric-stream"],
            write: |p| {
                let mut s = String::from("{\"metric_stream_name\":");
                s.push_str(&"[".repeat(30_000));
                s.push_str(&"]".repeat(30_000));
                s.push_str("}\n");
                fs::write(p, s).unwrap()
            },
        },
        Case {
            name: "binary-noise",
            ext: ".log",
            reasons: &["binary", "not UTF-8", "fields"],
            write: |p| {
                let b: Vec<u8> = (0..1_000_000u32)
                    .map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8)
                    .collect();
                fs::write(p, b).unwrap()
            },
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_otel_is_well_formed_protobuf_lengths() {
        // Depth 1 by hand: the outermost length prefix covers the rest exactly.
        for depth in [0, 1, 5, 300] {
            let b = deep_otel(depth);
            let (mut len, mut shift, mut i) = (0u64, 0, 0);
            loop {
                len |= u64::from(b[i] & 0x7f) << shift;
                shift += 7;
                i += 1;
                if b[i - 1] & 0x80 == 0 {
                    break;
                }
            }
            assert_eq!(len as usize, b.len() - i, "depth {depth}");
        }
    }
}
