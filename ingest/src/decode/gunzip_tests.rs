//! Tests of the choice between inflating in memory and streaming: both give the same text
//! and the same errors; the tests check which path ran through the held buffer.

use super::*;
use crate::limits::Limits;
use std::io::Write;

fn gzip(text: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text).unwrap();
    e.finish().unwrap()
}

fn bounds(stored: u64, whole: u64) -> Bounds {
    Limits {
        max_whole_inflate_bytes: whole,
        ..Limits::default()
    }
    .bounds(stored)
}

/// Everything `open` yields: the text, or the error after the text read before it.
fn read_all(held: &mut Held, input: &[u8], b: &Bounds) -> (Vec<u8>, Option<String>) {
    let mut r = open(held, input, b);
    let mut text = Vec::new();
    let err = r.read_to_end(&mut text).err().map(|e| e.to_string());
    (text, err)
}

fn text(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            format!(
                "2 123456789012 eni-{i:08x} 10.0.0.{} 10.1.0.9 443 14001 6 3 {} 1 2 ACCEPT OK\n",
                i % 250,
                i * 7
            )
        })
        .collect::<String>()
        .into_bytes()
}

#[test]
fn an_input_that_fits_is_inflated_in_memory() {
    let t = text(500);
    let gz = gzip(&t);
    let mut held = Held::take();
    assert_eq!(
        read_all(&mut held, &gz, &bounds(gz.len() as u64, 1 << 20)),
        (t.clone(), None)
    );
    assert_eq!(&held.0.text[..t.len()], &t[..], "the in-memory path ran");
}

#[test]
fn too_large_or_several_members_or_a_lying_trailer_stream_the_same_text() {
    let t = text(500);
    let gz = gzip(&t);
    let two = [gzip(&t[..1000]), gzip(&t[1000..])].concat();
    let mut lying = gz.clone();
    let n = lying.len();
    lying[n - 4..].copy_from_slice(&10u32.to_le_bytes()); // ISIZE says 10 bytes
    let cases: [(&str, &[u8], Bounds); 5] = [
        (
            "stored size over the cap",
            &gz,
            bounds(gz.len() as u64, 100),
        ),
        ("unknown size, longer than the cap", &gz, bounds(0, 100)),
        ("listed small, longer than the cap", &gz, bounds(10, 100)),
        ("two members", &two, bounds(two.len() as u64, 1 << 20)),
        ("trailer's size field lies", &lying, bounds(0, 1 << 20)),
    ];
    for (what, input, b) in cases {
        let mut held = Held::default();
        let (got, err) = read_all(&mut held, input, &b);
        if what.contains("lies") {
            // flate2 checks the size field too: the text, then the same complaint as before.
            assert_eq!(got, t, "{what}");
            assert!(err.is_some(), "{what}");
        } else {
            assert_eq!((got, err), (t.clone(), None), "{what}");
        }
        assert!(held.0.text.len() < t.len(), "{what}: streamed");
    }
}

#[test]
fn damage_and_limits_give_the_streaming_path_errors() {
    let t = text(2000);
    let gz = gzip(&t);
    for (what, input, b) in [
        ("cut off", &gz[..gz.len() / 2], bounds(0, 1 << 20)),
        ("over the decompressed limit", &gz[..], {
            let mut b = bounds(0, 1 << 20);
            b.decompressed = 1000;
            b
        }),
    ] {
        let whole = read_all(&mut Held::default(), input, &b);
        let streamed = read_all(
            &mut Held::default(),
            input,
            &Bounds {
                whole_inflate: 0,
                ..b
            },
        );
        assert_eq!(whole, streamed, "{what}");
        assert!(whole.1.is_some(), "{what}: an error");
        assert!(t.starts_with(&whole.0), "{what}: the text before the error");
    }
}

/// Reads its bytes, then fails.
struct FailsAfter<'a>(&'a [u8]);

impl Read for FailsAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(std::io::Error::other("connection reset")),
            n => Ok(n),
        }
    }
}

#[test]
fn a_read_failure_surfaces_after_the_text_read_before_it() {
    let t = text(3000);
    let gz = gzip(&t);
    let part = &gz[..gz.len() * 2 / 3];
    // Failing while the input is read whole, and after a cap the input is over (the rest
    // streams straight from the source).
    for cap in [1 << 20, 1000] {
        let b = bounds(gz.len() as u64 / 2, cap);
        let read = |b: &Bounds| {
            let mut held = Held::default();
            let mut r = open(&mut held, FailsAfter(part), b);
            let mut got = Vec::new();
            let err = r.read_to_end(&mut got).unwrap_err().to_string();
            (got, err)
        };
        let (got, err) = read(&b);
        assert_eq!(err, "connection reset", "cap {cap}");
        assert!(
            got.len() > t.len() / 2 && t.starts_with(&got),
            "{} bytes",
            got.len()
        );
        assert_eq!(
            (got, err),
            read(&Bounds {
                whole_inflate: 0,
                ..b
            }),
            "cap {cap}"
        );
    }
}

#[test]
fn the_caps_are_inclusive() {
    let t = text(300);
    let gz = gzip(&t);
    let (stored, size) = (gz.len() as u64, t.len() as u64);
    for (cap, whole) in [
        (size, true),             // text exactly at the cap
        (size - 1, false),        // one byte over
        (stored.max(size), true), // both within
    ] {
        let mut held = Held::default();
        assert_eq!(
            read_all(&mut held, &gz, &bounds(stored, cap)),
            (t.clone(), None)
        );
        assert_eq!(held.0.text.len() == t.len(), whole, "cap {cap}");
    }
    // Stored size over the cap although the text is not (an incompressible input).
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..5000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    let gz = gzip(&noise);
    assert!(gz.len() > noise.len(), "incompressible");
    let mut held = Held::default();
    let b = bounds(gz.len() as u64, noise.len() as u64);
    assert_eq!(read_all(&mut held, &gz, &b), (noise.clone(), None));
    assert!(held.0.text.is_empty(), "streamed");
}

/// `gz` with the header CRC flag set and two bytes of header CRC inserted (not the right ones).
fn with_wrong_header_crc(gz: &[u8]) -> Vec<u8> {
    let mut v = gz[..10].to_vec();
    v[3] |= 0x02;
    v.extend([0xAB, 0xCD]);
    v.extend(&gz[10..]);
    v
}

fn gzip_named(text: &[u8], name_len: usize) -> Vec<u8> {
    let mut e = flate2::GzBuilder::new()
        .filename(vec![b'n'; name_len])
        .write(Vec::new(), flate2::Compression::fast());
    e.write_all(text).unwrap();
    e.finish().unwrap()
}

#[test]
fn headers_flate2_refuses_are_streamed_and_refused() {
    let t = text(200);
    for (what, gz, ok) in [
        ("wrong header CRC", with_wrong_header_crc(&gzip(&t)), false),
        ("name of 65,536 bytes", gzip_named(&t, 65_536), false),
        ("name of 65,535 bytes", gzip_named(&t, 65_535), true),
    ] {
        let mut held = Held::default();
        let whole = read_all(&mut held, &gz, &bounds(gz.len() as u64, 1 << 20));
        let streamed = read_all(&mut Held::default(), &gz, &bounds(gz.len() as u64, 0));
        assert_eq!(whole, streamed, "{what}");
        assert_eq!(whole.1.is_none(), ok, "{what}: {:?}", whole.1);
        assert_eq!(held.0.text.len() == t.len(), ok, "{what}: the path");
    }
}

#[test]
fn buffers_are_reused_by_the_next_input_on_the_thread() {
    let t = text(200);
    let gz = gzip(&t);
    std::thread::spawn(move || {
        let mut held = Held::take();
        assert_eq!(read_all(&mut held, &gz, &bounds(0, 1 << 20)).0, t);
        let cap = held.0.text.capacity();
        drop(held);
        let again = Held::take();
        assert_eq!(again.0.text.capacity(), cap);
        assert!(again.0.inflater.is_some());
    })
    .join()
    .unwrap();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// Whatever the gzip bytes (members, cut, damage), the in-memory path yields what
    /// streaming yields: the same text and the same error.
    #[test]
    fn in_memory_and_streamed_agree(
        lines in 0usize..400,
        cuts in proptest::collection::vec(0usize..10_000, 0..3),
        end in proptest::option::of(0usize..10_000),
        flip in proptest::option::of((0usize..10_000, 1u8..=255)),
        stored_known in proptest::bool::ANY,
    ) {
        let t = text(lines);
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (t.len() + 1)).collect();
        at.sort_unstable();
        let mut gz = Vec::new();
        let mut from = 0;
        for c in at.into_iter().chain([t.len()]) {
            gz.extend(gzip(&t[from..c]));
            from = c;
        }
        if let Some(e) = end {
            gz.truncate(e % (gz.len() + 1));
        }
        if let Some((i, x)) = flip {
            if !gz.is_empty() {
                let i = i % gz.len();
                gz[i] ^= x;
            }
        }
        let stored = if stored_known { gz.len() as u64 } else { 0 };
        let whole = read_all(&mut Held::default(), &gz, &bounds(stored, 1 << 20));
        let streamed = read_all(&mut Held::default(), &gz, &bounds(stored, 0));
        proptest::prop_assert_eq!(whole, streamed);
    }
}
