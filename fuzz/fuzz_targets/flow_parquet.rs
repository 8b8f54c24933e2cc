//! Any bytes through the Parquet flow-log decoder: no panic of ours, every record sane.
//!
//! The parquet crate panics on some malformed pages; the decoder catches those and quarantines
//! the rest of the file (`decode/flow_parquet.rs`). libFuzzer's panic hook would abort on them
//! before the catch, so this target's hook lets panics raised inside the parquet and arrow
//! crates unwind to the decoder and aborts on every other panic, as libFuzzer's does.
#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use linkmeter_ingest::decode::flow_parquet::ParquetDecoder;
use linkmeter_ingest::decode::{Decoder, Event};

static HOOK: Once = Once::new();

fn contained(info: &std::panic::PanicHookInfo<'_>) -> bool {
    info.location().is_some_and(|l| {
        let f = l.file();
        f.contains("/parquet-") || f.contains("/arrow-")
    })
}

fuzz_target!(|data: &[u8]| {
    HOOK.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !contained(info) {
                fuzzer_hook(info);
            }
        }));
    });
    let _ = ParquetDecoder::new(bytes::Bytes::copy_from_slice(data)).decode(&mut |ev| {
        if let Event::Record(r, _) = ev {
            if let (Some(s), Some(e)) = (r.start, r.end) {
                assert!(s <= e);
            }
        }
    });
});
