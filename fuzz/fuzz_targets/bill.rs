//! Any bytes through the bill-export reader (CUR 2.0 / FOCUS Parquet): no panic of ours, and
//! every kept line is one of linkmeter's meters or a related usage type with a period.
//!
//! As in `flow_parquet`, panics raised inside the parquet and arrow crates unwind to the
//! reader, which turns them into an error for the file; any other panic aborts.
#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use linkmeter_ingest::bill::decode::{read, relevance, Relevance};
use linkmeter_ingest::limits::Limits;

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
    let bounds = Limits::default().bounds(data.len() as u64);
    let _ = read(bytes::Bytes::copy_from_slice(data), None, &bounds, &mut |r| {
        let rel = relevance(
            &r.product,
            &r.usage_type,
            r.operation.as_deref().unwrap_or(""),
            r.unit.as_deref().unwrap_or(""),
        );
        assert_ne!(rel, Relevance::Other, "a kept line is relevant");
        assert!(r.row >= 1);
    });
});
