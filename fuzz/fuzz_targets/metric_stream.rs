//! Any bytes through the CloudWatch metric-stream decoder: no panic, every datapoint sane.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linkmeter_ingest::decode::metric_stream::MetricStreamDecoder;
use linkmeter_ingest::decode::{Decoder, Event, RAW_LIMIT};

fuzz_target!(|data: &[u8]| {
    let _ = MetricStreamDecoder::new(data).decode(&mut |ev| match ev {
        Event::Metric(p, _) => {
            assert!(p.time_ms >= 0);
            assert!(p.sum.is_none_or(|s| s.is_finite() && s >= 0.0));
            let _ = p.bytes();
        }
        Event::Bad(b) => assert!(b.raw.len() <= RAW_LIMIT + "…[cut]".len()),
        Event::Record(..) | Event::Ignored(_) => unreachable!("a metric decoder"),
    });
});
