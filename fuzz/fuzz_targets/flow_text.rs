//! Any bytes through the text decoder (plain or gzip): no panic, and every event is sane.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linkmeter_ingest::decode::flow_text::TextDecoder;
use linkmeter_ingest::decode::{Decoder, Event, RAW_LIMIT};
use linkmeter_ingest::fields::{Format, DEFAULT_FORMAT};

fuzz_target!(|data: &[u8]| {
    let fmt = Format::parse(DEFAULT_FORMAT).unwrap();
    let _ = TextDecoder::new(data, fmt).decode(&mut |ev| match ev {
        Event::Record(r, _) => {
            if let (Some(s), Some(e)) = (r.start, r.end) {
                assert!(s <= e);
            }
        }
        Event::Bad(b) => assert!(b.raw.len() <= RAW_LIMIT + "…[cut]".len()),
        Event::Metric(..) | Event::Ignored(_) => unreachable!("a flow-log decoder"),
    });
});
