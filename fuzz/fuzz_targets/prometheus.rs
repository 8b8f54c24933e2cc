//! Any bytes through the Prometheus text decoder: no panic, every datapoint sane.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linkmeter_ingest::decode::prometheus::PrometheusDecoder;
use linkmeter_ingest::decode::{Decoder, Event, RAW_LIMIT};

fuzz_target!(|data: &[u8]| {
    let _ = PrometheusDecoder::new(data).decode(&mut |ev| match ev {
        Event::Metric(p, _) => {
            assert!(p.time_ms >= 0);
            assert!(p.counter.is_none_or(|c| c.is_finite() && c >= 0.0));
        }
        Event::Bad(b) => assert!(b.raw.len() <= RAW_LIMIT + "…[cut]".len()),
        Event::Ignored(_) => {}
        Event::Record(..) => unreachable!("a metric decoder"),
    });
});
