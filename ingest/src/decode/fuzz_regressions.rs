//! Inputs the fuzz targets (`fuzz/`) once failed on, replayed through the same decoders with
//! the same checks, so a fixed crash stays fixed without a nightly toolchain. Only
//! `flow_parquet` has found anything so far; a finding of another target goes in
//! `testdata/fuzz/TARGET/` with a test here.

use std::path::PathBuf;

use super::flow_parquet::ParquetDecoder;
use super::{BadInput, Decoder, Event, RAW_LIMIT};

/// Every file saved for one target, by name.
fn cases(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/decode/testdata/fuzz")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// Runs a decoder and checks what every fuzz target checks; returns the quarantine entries.
fn replay(mut d: impl Decoder) -> Vec<BadInput> {
    let mut bad = Vec::new();
    let _ = d.decode(&mut |ev| match ev {
        Event::Record(r, _) => {
            if let (Some(s), Some(e)) = (r.start, r.end) {
                assert!(s <= e);
            }
        }
        Event::Metric(p, _) => assert!(p.time_ms >= 0),
        Event::Bad(b) => {
            assert!(b.raw.len() <= RAW_LIMIT + "…[cut]".len());
            bad.push(b);
        }
        Event::Ignored(_) => {}
    });
    bad
}

/// Replays the saved Parquet input `name` (it must exist); its quarantine entries.
fn saved(cases: &[(String, Vec<u8>)], name: &str) -> Vec<BadInput> {
    let (_, data) = cases
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("the saved input {name}"));
    replay(ParquetDecoder::new(bytes::Bytes::copy_from_slice(data)))
}

#[test]
fn parquet_metadata_that_panicked_the_parquet_crate_is_handled() {
    // The parquet crate asserts that a column chunk's offsets are not negative; the decoder
    // refuses such metadata first.
    let cases = cases("flow_parquet");
    let bad = saved(&cases, "negative-column-offset");
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].reason.contains("outside the"), "{}", bad[0].reason);
    // An embedded Arrow schema with an integer 65,600 bits wide panicked in arrow-ipc; the
    // decoder no longer reads that schema.
    saved(&cases, "arrow-schema-int-width");
    // A dictionary-encoded page with no dictionary: the parquet crate panics while reading
    // it; the decoder quarantines the rest of the file instead.
    // Its page header is malformed too, so the header check refuses it before any read now;
    // `flow_parquet`'s tests cover a panic while reading.
    let bad = saved(&cases, "dictionary-page-missing");
    assert!(
        bad.iter().any(|b| b.reason.contains("unreadable header")),
        "{bad:?}"
    );
    // A dictionary page claiming 1.4 billion values (and a 10-byte varint the parquet crate
    // wrapped): the parquet crate allocated 5.5 GB for it; the header check refuses it.
    let bad = saved(&cases, "dictionary-of-1.4-billion-values");
    assert!(
        bad.iter().any(|b| b.reason.contains("unreadable header")),
        "{bad:?}"
    );
    // A page header holding a list of 2^60 booleans: the header check itself spun on it; the
    // element count is now held to the bytes left.
    let bad = saved(&cases, "list-of-2-pow-60-booleans");
    assert!(bad.iter().any(|b| b.reason.contains("header")), "{bad:?}");
    for (_, data) in &cases {
        replay(ParquetDecoder::new(bytes::Bytes::copy_from_slice(data)));
    }
}

#[test]
fn the_fuzz_seeds_decode_cleanly() {
    // Real files (pyarrow, with statistics, dictionaries, gzip and snappy): the page-header
    // check must accept them.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/flow_parquet");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        let bad = replay(ParquetDecoder::new(bytes::Bytes::from(data)));
        assert!(bad.is_empty(), "{bad:?}");
        n += 1;
    }
    assert!(n >= 2);
}
