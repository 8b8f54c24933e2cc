//! Any bytes through the Parquet flow-log decoder: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linkmeter_ingest::decode::flow_parquet::ParquetDecoder;
use linkmeter_ingest::decode::{Decoder, Event};

fuzz_target!(|data: &[u8]| {
    let _ = ParquetDecoder::new(bytes::Bytes::copy_from_slice(data)).decode(&mut |ev| {
        if let Event::Record(r, _) = ev {
            if let (Some(s), Some(e)) = (r.start, r.end) {
                assert!(s <= e);
            }
        }
    });
});
