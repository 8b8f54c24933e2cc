//! Any bytes through the OpenTelemetry 1.0.0 metric-stream decoder: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linkmeter_ingest::decode::otel::OtelDecoder;
use linkmeter_ingest::decode::{Decoder, Event, RAW_LIMIT};

fuzz_target!(|data: &[u8]| {
    let _ = OtelDecoder::new(data).decode(&mut |ev| match ev {
        Event::Metric(p, _) => assert!(p.time_ms >= 0),
        Event::Bad(b) => assert!(b.raw.len() <= RAW_LIMIT + "…[cut]".len()),
        Event::Ignored(_) | Event::Record(..) => unreachable!("the OpenTelemetry decoder"),
    });
});
