//! The two ways a gzip flow log is inflated (whole, by libdeflate; streamed, by flate2) give
//! the same events and the same result for any input. The first byte picks how the rest is
//! wrapped, so most inputs are valid gzip that the fuzzer then cuts or damages, or whose
//! header flags it chooses.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use linkmeter_ingest::decode::flow_text::TextDecoder;
use linkmeter_ingest::decode::{Decoder, Event};
use linkmeter_ingest::fields::{Format, DEFAULT_FORMAT};
use linkmeter_ingest::limits::Limits;

fn gzip(text: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text).unwrap();
    e.finish().unwrap()
}

/// Every event and the result, spelled out.
fn decode(input: &[u8], whole: u64) -> Vec<String> {
    let limits = Limits {
        max_whole_inflate_bytes: whole,
        ..Limits::default()
    };
    let mut out = Vec::new();
    let fmt = Format::parse(DEFAULT_FORMAT).unwrap();
    let res = TextDecoder::new(input, fmt)
        .bounded(limits.bounds(input.len() as u64))
        .decode(&mut |ev| match ev {
            Event::Record(r, p) => out.push(format!("{p:?} {r:?}")),
            Event::Bad(b) => out.push(format!("{b:?}")),
            Event::Metric(..) | Event::Ignored(_) => unreachable!("a flow-log decoder"),
        });
    out.push(format!("{res:?}"));
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let at = |k: u8| body.len() * usize::from(k) / 256;
    let input = match mode % 6 {
        // A header with the flags the first byte of the rest chooses (reserved bits, a header
        // CRC that is most likely wrong, extra field, name, comment) and a valid body.
        5 => {
            let (&flags, text) = body.split_first().unwrap_or((&0, &[]));
            let mut gz = vec![0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 255];
            if flags & 0x04 != 0 {
                gz.extend([4, 0, b'x', b'y', 2, 0]);
            }
            for field in [0x08, 0x10] {
                if flags & field != 0 {
                    gz.extend(b"field\0");
                }
            }
            if flags & 0x02 != 0 {
                gz.extend([mode, 0x5a]);
            }
            let mut e = flate2::write::DeflateEncoder::new(gz, flate2::Compression::fast());
            e.write_all(text).unwrap();
            let mut gz = e.finish().unwrap();
            let mut crc = flate2::Crc::new();
            crc.update(text);
            gz.extend(crc.sum().to_le_bytes());
            gz.extend((text.len() as u32).to_le_bytes());
            gz
        }
        0 => body.to_vec(),
        1 => gzip(body),
        // Two members, split where the mode byte says.
        2 => [gzip(&body[..at(mode)]), gzip(&body[at(mode)..])].concat(),
        // Cut off.
        3 => {
            let gz = gzip(body);
            gz[..gz.len() * usize::from(mode) / 256].to_vec()
        }
        // One byte flipped.
        _ => {
            let mut gz = gzip(body);
            let i = gz.len() * usize::from(mode) / 256;
            gz[i] ^= mode | 1;
            gz
        }
    };
    assert_eq!(decode(&input, 64 << 20), decode(&input, 0));
});
