//! Which inflater a gzip input gets. One small enough to hold (`max_whole_inflate_bytes`, by
//! its stored size and its trailer's size field) is read into memory and inflated in one
//! piece by libdeflate, about 1.5 times the streaming inflater's speed on flow logs (790
//! against 520 MB/s on the benchmark set, where inflate was over a quarter of ingest's CPU).
//! Anything that path does not take — an input too large, of several gzip members, damaged,
//! cut off, or whose read failed — is streamed by flate2 from the bytes already read, exactly
//! as if the first path had not been tried, so what an input yields (lines, offsets, errors,
//! quarantine rows) does not depend on which path ran. Gzip headers that flate2 checks and
//! libdeflate does not (a header CRC, a name or comment over 65,535 bytes) are streamed. One
//! difference is accepted: deflate streams that only a nonconforming encoder writes (reserved
//! code symbols, over-full or incomplete Huffman codes) libdeflate reads where zlib-rs calls
//! them corrupt; the in-memory path then takes them only when the text's CRC-32 and size
//! match the trailer, i.e. it is the text the writer checksummed. zlib's encoder does not
//! write such streams; AWS's writer was not checked.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Cursor, Read};

use super::inflate::{Inflater, Member};
use crate::limits::Bounds;

/// Buffer of the streaming path's decompressed text.
const STREAM_BUF: usize = 256 * 1024;

thread_local! {
    /// A worker's buffers and decompressor, reused from input to input: fresh buffers of tens
    /// of MiB would be paged in, and zeroed by the kernel, for every file.
    static SPARE: RefCell<Option<Bufs>> = const { RefCell::new(None) };
}

/// The buffers one gzip input is read and inflated into.
#[derive(Default)]
struct Bufs {
    inflater: Option<Inflater>,
    gz: Vec<u8>,
    text: Vec<u8>,
}

/// This thread's buffers while one input uses them; given back to the thread on drop.
#[derive(Default)]
pub(crate) struct Held(Bufs);

impl Held {
    /// This thread's spare buffers, or new empty ones.
    pub(crate) fn take() -> Held {
        Held(SPARE.with(|s| s.borrow_mut().take()).unwrap_or_default())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let bufs = std::mem::take(&mut self.0);
        // A thread being torn down has no slot left; the buffers are freed instead.
        let _ = SPARE.try_with(|s| s.replace(Some(bufs)));
    }
}

/// The decompressed text of the gzip input `raw` (whose first bytes are the gzip magic),
/// held to `bounds`: in memory when it fits, else streamed.
pub(crate) fn open<'a, R: Read + 'a>(
    held: &'a mut Held,
    mut raw: R,
    bounds: &Bounds,
) -> Box<dyn BufRead + 'a> {
    let cap = bounds.whole_inflate;
    if cap == 0 || bounds.stored > cap {
        return stream(raw, bounds);
    }
    let held = &mut held.0;
    held.gz.clear();
    held.gz
        .reserve_exact(usize::try_from(bounds.stored).unwrap_or(0) + 1);
    // cap + 1: one byte more tells an input over the cap (its listed size was a claim).
    match (&mut raw)
        .take(cap.saturating_add(1))
        .read_to_end(&mut held.gz)
    {
        Err(e) => stream(Cursor::new(&held.gz[..]).chain(Failed(Some(e))), bounds),
        Ok(_) if held.gz.len() as u64 > cap => stream(Cursor::new(&held.gz[..]).chain(raw), bounds),
        Ok(_) => match inflate(held, cap.min(bounds.decompressed)) {
            Some(n) => Box::new(Chunks(&held.text[..n])),
            None => stream(Cursor::new(&held.gz[..]), bounds),
        },
    }
}

/// Inflates `held.gz` into `held.text` when it is one gzip member of at most `limit` bytes of
/// text; the length of the text, or `None` for the streaming path.
fn inflate(held: &mut Bufs, limit: u64) -> Option<usize> {
    let gz = &held.gz;
    if !header_as_flate2_reads_it(gz) {
        return None;
    }
    // The trailer's size field (RFC 1952 ISIZE, modulo 2^32) sizes the buffer; a member whose
    // text is longer does not fit and is streamed.
    let size = u32::from_le_bytes(gz.get(gz.len().checked_sub(4)?..)?.try_into().ok()?);
    let size = usize::try_from(size).ok()?;
    if size as u64 > limit {
        return None;
    }
    let inflater = match &mut held.inflater {
        Some(i) => i,
        none => none.insert(Inflater::new()?),
    };
    match inflater.gzip_member(gz, &mut held.text, size) {
        // Several members (rare: AWS writes one per file) take the streaming path, which
        // reads them all.
        Member::Done { read, written } if read == gz.len() => Some(written),
        _ => None,
    }
}

/// Whether the gzip header is one flate2 and libdeflate read alike: no header CRC (libdeflate
/// skips it unchecked), and a name and comment of at most 65,535 bytes (flate2's limit).
fn header_as_flate2_reads_it(gz: &[u8]) -> bool {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    const FIELD_MAX: usize = 65_535;
    let Some(&flags) = gz.get(3) else {
        return false;
    };
    if flags & FHCRC != 0 {
        return false;
    }
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let Some(len) = gz.get(at..at + 2) else {
            return false;
        };
        at += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let field = gz.get(at..).unwrap_or_default();
            match memchr::memchr(0, &field[..field.len().min(FIELD_MAX + 1)]) {
                Some(nul) => at += nul + 1,
                None => return false,
            }
        }
    }
    true
}

/// The streaming inflater over `r`, held to the decompressed-size bound.
fn stream<'a>(r: impl Read + 'a, bounds: &Bounds) -> Box<dyn BufRead + 'a> {
    Box::new(BufReader::with_capacity(STREAM_BUF, bounds.gunzip(r)))
}

/// Inflated text handed out a cache-sized piece at a time: the line reader checks and splits
/// each piece in one pass while it is still in cache, not the whole text before parsing it.
struct Chunks<'a>(&'a [u8]);

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl BufRead for Chunks<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        Ok(&self.0[..self.0.len().min(STREAM_BUF)])
    }

    fn consume(&mut self, n: usize) {
        self.0 = &self.0[n..];
    }
}

/// A read failure met while reading an input whole, replayed to the streaming inflater where
/// it happened.
struct Failed(Option<std::io::Error>);

impl Read for Failed {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}

#[cfg(test)]
#[path = "gunzip_tests.rs"]
mod tests;
