//! The bounds that keep one input's memory and time finite whatever its bytes say
//! (`[ingest.limits]` in the config; README "Bad input" lists them with what a breach does).
//!
//! Every bound is on something the input controls: the length of a line, how far compressed
//! bytes expand, how many bad lines it has, how long one record claims to last, how many hours
//! and days it touches, how large and deep a protobuf message is, and how much text from it is
//! stored. A breach is a quarantine row naming the input, the offset and the limit; the rest of
//! the input goes on where that is possible.

use serde::Deserialize;

/// Largest `max_whole_inflate_bytes` accepted.
const MAX_WHOLE_INFLATE: u64 = 1 << 30;

/// Per-input limits, with defaults far above anything AWS delivers (see each field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest line of text (a flow-log record is under 1 KiB; a metric-stream JSON line a few
    /// KiB). A longer line is one quarantine row and is skipped without being buffered.
    pub max_line_bytes: usize,
    /// Most decompressed bytes per stored byte of a gzip input (flow logs compress about 10:1;
    /// a gzip bomb 1000:1). Inputs under 1 MiB are allowed as if they were 1 MiB.
    pub max_decompressed_ratio: u64,
    /// Most decompressed bytes of any one input, however large it is stored.
    pub max_decompressed_bytes: u64,
    /// Quarantine rows per input; after that one more row stands for all the rest, with their
    /// record count, so the balance still holds.
    pub max_quarantine_rows: u64,
    /// Longest time one flow record may span, `end - start`, in seconds. AWS aggregates over
    /// at most 10 minutes (60 s for transit gateways) and stamps the capture window, so an
    /// hour is six times the longest real record; longer records are quarantined rather than
    /// spread over hours they never saw.
    pub max_record_span_secs: i64,
    /// Distinct partitions (flow hours, coverage and metric days) one input may write. A
    /// flow-log file covers minutes and a Kafka round hours; records that would open more are
    /// quarantined (raise it for a backfill of a long, sparse stream).
    pub max_partitions_per_input: usize,
    /// Largest protobuf message (an OpenTelemetry `ExportMetricsServiceRequest`; Firehose
    /// records are at most 1,000 KiB).
    pub max_message_bytes: usize,
    /// Deepest nesting of protobuf values (OpenTelemetry key-value lists and arrays).
    pub max_nesting: usize,
    /// Longest text from an input stored in a quarantine `reason` or `raw` column; longer text
    /// is cut at a character boundary and marked `…[cut]`.
    pub max_text_bytes: usize,
    /// Bytes of rows a worker buffers before writing them out, however many partitions are open.
    pub buffer_bytes: usize,
    /// Largest gzip input, stored and decompressed, inflated in one piece in memory (faster
    /// than streaming); larger ones stream. A worker keeps up to twice this in buffers between
    /// inputs (up to three times when an input's stored size is unknown, as the buffer for its
    /// compressed bytes grows by doubling). 0 streams every input.
    pub max_whole_inflate_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: 64 * 1024,
            max_decompressed_ratio: 100,
            max_decompressed_bytes: 8 << 30,
            max_quarantine_rows: 1000,
            max_record_span_secs: 3600,
            max_partitions_per_input: 168,
            max_message_bytes: 16 << 20,
            max_nesting: 32,
            max_text_bytes: 512,
            buffer_bytes: 128 << 20,
            max_whole_inflate_bytes: 64 << 20,
        }
    }
}

impl Limits {
    /// Decompressed bytes allowed for an input stored in `stored` bytes (unknown: 0).
    pub fn decompressed_allowance(&self, stored: u64) -> u64 {
        self.max_decompressed_ratio
            .saturating_mul(stored.max(1 << 20))
            .min(self.max_decompressed_bytes)
    }

    /// What the decoders need for one input stored in `stored` bytes.
    pub fn bounds(&self, stored: u64) -> Bounds {
        Bounds {
            line: self.max_line_bytes.max(1),
            decompressed: self.decompressed_allowance(stored),
            message: self.max_message_bytes,
            nesting: self.max_nesting,
            text: self.max_text_bytes.max(16),
            stored,
            whole_inflate: self.max_whole_inflate_bytes,
        }
    }

    /// Refuses limits that would make every input fail (zero where a size is needed).
    pub fn check(&self) -> Result<(), String> {
        let zero = [
            ("max_line_bytes", self.max_line_bytes == 0),
            ("max_decompressed_ratio", self.max_decompressed_ratio == 0),
            ("max_decompressed_bytes", self.max_decompressed_bytes == 0),
            ("max_record_span_secs", self.max_record_span_secs <= 0),
            (
                "max_partitions_per_input",
                self.max_partitions_per_input == 0,
            ),
            ("max_message_bytes", self.max_message_bytes == 0),
            ("max_nesting", self.max_nesting == 0),
            ("buffer_bytes", self.buffer_bytes == 0),
        ];
        if let Some((name, _)) = zero.iter().find(|(_, z)| *z) {
            return Err(format!("[ingest.limits] {name} must be greater than zero"));
        }
        // A buffer is reserved for an input of up to this size; past the gzip size field's
        // range (4 GiB) there is nothing to gain and a large file could not be allocated.
        if self.max_whole_inflate_bytes > MAX_WHOLE_INFLATE {
            return Err(format!(
                "[ingest.limits] max_whole_inflate_bytes must be at most {MAX_WHOLE_INFLATE} (1 GiB); larger inputs stream at little cost"
            ));
        }
        Ok(())
    }
}

/// The limits a decoder applies to one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Longest line, bytes.
    pub line: usize,
    /// Most decompressed bytes.
    pub decompressed: u64,
    /// Largest protobuf message, bytes.
    pub message: usize,
    /// Deepest protobuf nesting.
    pub nesting: usize,
    /// Longest stored text, bytes.
    pub text: usize,
    /// The input's stored size (0: unknown), for messages.
    pub stored: u64,
    /// Largest gzip input inflated in one piece (0: always stream).
    pub whole_inflate: u64,
}

impl Bounds {
    /// A decompressing reader held to these bounds.
    pub fn gunzip<R: std::io::Read>(&self, r: R) -> Capped<flate2::read::MultiGzDecoder<R>> {
        Capped::new(
            flate2::read::MultiGzDecoder::new(r),
            self.decompressed,
            self.stored,
        )
    }
}

impl Default for Bounds {
    fn default() -> Self {
        Limits::default().bounds(0)
    }
}

/// A reader that fails once more than `limit` bytes came through it: wraps a decompressor so
/// a small input cannot expand without end.
pub struct Capped<R> {
    inner: R,
    left: u64,
    limit: u64,
    stored: u64,
}

impl<R> Capped<R> {
    /// Caps `inner` at `limit` bytes; `stored` is the input's size, for the message.
    pub fn new(inner: R, limit: u64, stored: u64) -> Self {
        Capped {
            inner,
            left: limit,
            limit,
            stored,
        }
    }
}

impl<R: std::io::Read> std::io::Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // One more byte tells a stream that ends exactly at the limit from a longer one.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(format!(
                    "decompressed size limit reached: {} bytes from an input of {} bytes (limits max_decompressed_ratio and max_decompressed_bytes); the rest is not read",
                    self.limit, self.stored
                ))),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads one line (through `\n`) into `buf`, keeping at most `max` bytes of it; the rest of a
/// longer line is consumed without being stored. Returns the bytes consumed (0 at the end) and
/// whether the line was longer than `max`. On an error, `consumed` still says how far it got.
pub fn read_line<R: std::io::BufRead + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
    consumed: &mut u64,
) -> std::io::Result<bool> {
    *consumed = 0;
    let mut long = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(long);
        }
        let (take, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        if !long {
            let room = max.saturating_sub(buf.len());
            if take <= room {
                buf.extend_from_slice(&avail[..take]);
            } else {
                buf.extend_from_slice(&avail[..room]);
                long = true;
            }
        }
        r.consume(take);
        *consumed += take as u64;
        if done {
            return Ok(long);
        }
    }
}

/// Cuts text to at most `max` bytes at a character boundary, marking the cut.
pub fn cut_text(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…[cut]", &s[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    #[test]
    fn a_long_line_is_skipped_without_being_stored() {
        let mut text = vec![b'x'; 100_000];
        text.extend_from_slice(b"\nshort\nlast");
        let mut r = BufReader::with_capacity(1000, &text[..]);
        let (mut buf, mut n) = (Vec::new(), 0);
        assert!(read_line(&mut r, &mut buf, 64, &mut n).unwrap());
        assert_eq!((buf.len(), n), (64, 100_001));
        buf.clear();
        assert!(!read_line(&mut r, &mut buf, 64, &mut n).unwrap());
        assert_eq!((&buf[..], n), (&b"short\n"[..], 6));
        buf.clear();
        assert!(!read_line(&mut r, &mut buf, 64, &mut n).unwrap());
        assert_eq!((&buf[..], n), (&b"last"[..], 4));
        buf.clear();
        assert!(!read_line(&mut r, &mut buf, 64, &mut n).unwrap());
        assert_eq!(n, 0, "the end");
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_not_long() {
        let mut r = BufReader::new(&b"abcd\nx"[..]);
        let (mut buf, mut n) = (Vec::new(), 0);
        assert!(!read_line(&mut r, &mut buf, 5, &mut n).unwrap());
        assert_eq!(buf, b"abcd\n");
    }

    #[test]
    fn capped_reader_fails_past_the_limit_and_not_at_it() {
        let data = vec![7u8; 1000];
        let mut exact = Vec::new();
        Capped::new(&data[..], 1000, 10)
            .read_to_end(&mut exact)
            .unwrap();
        assert_eq!(exact.len(), 1000);
        let mut over = Vec::new();
        let e = Capped::new(&data[..], 999, 10)
            .read_to_end(&mut over)
            .unwrap_err();
        assert_eq!(over.len(), 999);
        assert!(e.to_string().contains("max_decompressed_ratio"), "{e}");
    }

    #[test]
    fn allowance_scales_with_size_up_to_the_ceiling() {
        let l = Limits::default();
        assert_eq!(
            l.decompressed_allowance(0),
            100 << 20,
            "small inputs count as 1 MiB"
        );
        assert_eq!(l.decompressed_allowance(10 << 20), 1000 << 20);
        assert_eq!(l.decompressed_allowance(u64::MAX), 8 << 30);
        assert!(l.check().is_ok());
        let bad = Limits {
            max_nesting: 0,
            ..l
        };
        assert!(bad.check().unwrap_err().contains("max_nesting"));
        let huge = Limits {
            max_whole_inflate_bytes: u64::MAX,
            ..l
        };
        assert!(huge
            .check()
            .unwrap_err()
            .contains("max_whole_inflate_bytes"));
        let off = Limits {
            max_whole_inflate_bytes: 0,
            ..l
        };
        assert!(off.check().is_ok(), "0 streams every input");
    }

    #[test]
    fn cut_text_keeps_characters_whole() {
        assert_eq!(cut_text("short", 10), "short");
        assert_eq!(cut_text("ééé", 3), "é…[cut]");
    }
}
