//! A check of every page header of a Parquet file before the parquet crate reads it.
//!
//! The parquet crate trusts page headers: a dictionary page that claims 1.4 billion values is
//! given a buffer of that many values (`DictDecoder::set_dict`, found by fuzzing: a 5.5 GB
//! allocation from a 9 KB file), and a page's claimed uncompressed size is allocated before it
//! is decompressed. So each header is read here first (Thrift compact protocol, only the
//! fields that size allocations) and a file whose claims do not fit its bytes is refused.

use parquet::basic::Type as Physical;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::ChunkReader;

/// The largest page accepted from a small file, uncompressed. Writers aim at 1 MiB pages
/// (parquet-mr, arrow-rs and AWS's flow-log Parquet alike); some put a whole column chunk in
/// one page (fastparquet), so a larger file may hold data pages up to four times its own size
/// (within the input's decompressed limit): memory follows the input's size, never a claim.
/// Dictionary pages are held to this limit whatever the file's size.
pub const PAGE_LIMIT: i64 = 16 << 20;

/// The largest page accepted from a file of `len` bytes whose total is held to `limit`.
fn page_limit(len: u64, limit: u64) -> i64 {
    let by_size = i64::try_from(len.saturating_mul(4)).unwrap_or(i64::MAX);
    PAGE_LIMIT
        .max(by_size)
        .min(i64::try_from(limit).unwrap_or(i64::MAX))
}

/// Longest page header read (statistics may hold long min/max values).
const HEADER_LIMIT: u64 = 1 << 20;

/// What one page header claims.
#[derive(Debug, Default, PartialEq, Eq)]
struct Header {
    uncompressed: i64,
    compressed: i64,
    /// Values in a dictionary page (`None` for other pages).
    dict_values: Option<i64>,
}

/// Checks every page of every column chunk; `Err` says what is wrong (for a quarantine
/// reason), naming the row group and column.
pub fn check<R: ChunkReader>(file: &R, meta: &ParquetMetaData, limit: u64) -> Result<(), String> {
    let mut total: u64 = 0;
    let largest = page_limit(file.len(), limit);
    for (g, rg) in meta.row_groups().iter().enumerate() {
        for c in rg.columns() {
            let at = || format!("row group {g}, column {:?}", c.column_path().string());
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let end = start.saturating_add(c.compressed_size());
            let width = min_width(
                c.column_descr().physical_type(),
                c.column_descr().type_length(),
            );
            let mut pos = start;
            while pos < end {
                let (h, len) = header_at(file, pos as u64, (end - pos) as u64)
                    .map_err(|e| format!("{}: page at offset {pos}: {e}", at()))?;
                if let Some(why) = page_problem(&h, largest, width) {
                    return Err(format!("{}: page at offset {pos}: {why}", at()));
                }
                total = total.saturating_add(h.uncompressed as u64);
                if total > limit {
                    return Err(format!(
                        "pages hold more than the {limit}-byte limit for this input uncompressed (max_decompressed_ratio, max_decompressed_bytes)"
                    ));
                }
                pos = pos.saturating_add(len as i64).saturating_add(h.compressed);
            }
        }
    }
    Ok(())
}

/// What is wrong with one page's claims, if anything: sizes, and for a dictionary page its
/// size and its number of values (PLAIN: every value takes at least `width` bits).
fn page_problem(h: &Header, largest: i64, width: i64) -> Option<String> {
    if h.compressed < 0 || h.uncompressed < 0 {
        return Some("a negative size".into());
    }
    if h.uncompressed > largest {
        return Some(format!(
            "{} bytes uncompressed, more than the {largest}-byte page limit for this file",
            h.uncompressed
        ));
    }
    let n = h.dict_values?;
    if h.uncompressed > PAGE_LIMIT {
        // A dictionary is held whole as decoded values (several times its page size);
        // writers cap dictionaries at 1 MiB, so 16 MiB always suffices.
        return Some(format!(
            "a dictionary page of {} bytes uncompressed, more than {PAGE_LIMIT}",
            h.uncompressed
        ));
    }
    if n < 0 || n.saturating_mul(width) > h.uncompressed.saturating_mul(8) {
        return Some(format!(
            "a dictionary page claims {n} values in {} bytes",
            h.uncompressed
        ));
    }
    None
}

/// The fewest bits one PLAIN value of a type takes (a byte array has a 4-byte length).
fn min_width(t: Physical, type_length: i32) -> i64 {
    match t {
        Physical::BOOLEAN => 1,
        Physical::INT32 | Physical::FLOAT | Physical::BYTE_ARRAY => 32,
        Physical::INT64 | Physical::DOUBLE => 64,
        Physical::INT96 => 96,
        Physical::FIXED_LEN_BYTE_ARRAY => i64::from(type_length.max(1)) * 8,
    }
}

/// Reads the page header at `pos`: its claims and its length in bytes.
fn header_at<R: ChunkReader>(file: &R, pos: u64, room: u64) -> Result<(Header, usize), String> {
    // Most headers are tens of bytes: read a little, and more only if that was not enough.
    for window in [4096u64, HEADER_LIMIT] {
        let n = window.min(room).min(file.len().saturating_sub(pos));
        let bytes = file
            .get_bytes(pos, n as usize)
            .map_err(|e| format!("cannot read it: {e}"))?;
        let mut r = Compact { b: &bytes, at: 0 };
        match page_header(&mut r) {
            Ok(h) => return Ok((h, r.at)),
            Err(Short) if n == window => continue,
            Err(Short) => return Err("its header runs past the column chunk".into()),
            Err(Bad(e)) => return Err(format!("unreadable header: {e}")),
        }
    }
    Err(format!("its header is longer than {HEADER_LIMIT} bytes"))
}

enum Fail {
    /// The bytes ended inside the header.
    Short,
    /// Not a valid header.
    Bad(&'static str),
}
use Fail::{Bad, Short};

/// A Thrift compact-protocol reader over a slice.
struct Compact<'a> {
    b: &'a [u8],
    at: usize,
}

impl Compact<'_> {
    fn byte(&mut self) -> Result<u8, Fail> {
        let v = *self.b.get(self.at).ok_or(Short)?;
        self.at += 1;
        Ok(v)
    }

    fn varint(&mut self) -> Result<u64, Fail> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(Bad("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Bad("varint longer than 10 bytes"))
    }

    fn zigzag(&mut self) -> Result<i64, Fail> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// The next field's (id, type), or `None` at the struct's end.
    fn field(&mut self, last: &mut i16) -> Result<Option<(i16, u8)>, Fail> {
        let b = self.byte()?;
        if b == 0 {
            return Ok(None);
        }
        let (delta, ty) = (b >> 4, b & 0x0f);
        let id = if delta == 0 {
            i16::try_from(self.zigzag()?).map_err(|_| Bad("field id out of range"))?
        } else {
            last.checked_add(i16::from(delta))
                .ok_or(Bad("field id out of range"))?
        };
        *last = id;
        Ok(Some((id, ty)))
    }

    /// Every element of a list, set or map takes at least one byte (a boolean element is a
    /// byte of its own there), so a count the bytes cannot hold is refused before any loop
    /// (found by fuzzing: a list of 2^60 booleans spun forever).
    fn count(&mut self, n: u64) -> Result<u64, Fail> {
        if n > (self.b.len() - self.at) as u64 {
            return Err(Short);
        }
        Ok(n)
    }

    fn elem(&mut self, ty: u8, depth: u32) -> Result<(), Fail> {
        match ty {
            1 | 2 => self.byte().map(drop),
            _ => self.skip(ty, depth),
        }
    }

    fn skip(&mut self, ty: u8, depth: u32) -> Result<(), Fail> {
        if depth > 16 {
            return Err(Bad("nested deeper than 16"));
        }
        match ty {
            // A boolean field's value is in its field header.
            1 | 2 => Ok(()),
            3 => self.byte().map(drop),
            4..=6 => self.varint().map(drop),
            7 => self.bytes(8),
            8 => {
                let n = self.varint()?;
                self.bytes(usize::try_from(n).map_err(|_| Short)?)
            }
            9 | 10 => {
                let h = self.byte()?;
                let n = match h >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                for _ in 0..self.count(n)? {
                    self.elem(h & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            11 => {
                let n = self.varint()?;
                if n > 0 {
                    let kv = self.byte()?;
                    for _ in 0..self.count(n)? {
                        self.elem(kv >> 4, depth + 1)?;
                        self.elem(kv & 0x0f, depth + 1)?;
                    }
                }
                Ok(())
            }
            12 => {
                let mut last = 0;
                while let Some((_, t)) = self.field(&mut last)? {
                    self.skip(t, depth + 1)?;
                }
                Ok(())
            }
            _ => Err(Bad("unknown field type")),
        }
    }

    fn bytes(&mut self, n: usize) -> Result<(), Fail> {
        let end = self.at.checked_add(n).ok_or(Short)?;
        if end > self.b.len() {
            return Err(Short);
        }
        self.at = end;
        Ok(())
    }

    fn i32(&mut self, ty: u8) -> Result<i64, Fail> {
        if ty != 5 {
            return Err(Bad("a size field is not an i32"));
        }
        self.zigzag()
    }
}

/// PageHeader: 2 uncompressed_page_size, 3 compressed_page_size, 7 dictionary_page_header
/// (whose field 1 is num_values); everything else is skipped.
fn page_header(r: &mut Compact<'_>) -> Result<Header, Fail> {
    let mut h = Header::default();
    let (mut seen_u, mut seen_c) = (false, false);
    let mut last = 0;
    while let Some((id, ty)) = r.field(&mut last)? {
        match id {
            2 => (h.uncompressed, seen_u) = (r.i32(ty)?, true),
            3 => (h.compressed, seen_c) = (r.i32(ty)?, true),
            7 if ty == 12 => {
                let mut last = 0;
                while let Some((id, ty)) = r.field(&mut last)? {
                    if id == 1 {
                        h.dict_values = Some(r.i32(ty)?);
                    } else {
                        r.skip(ty, 1)?;
                    }
                }
                h.dict_values.get_or_insert(0);
            }
            _ => r.skip(ty, 0)?,
        }
    }
    if !(seen_u && seen_c) {
        return Err(Bad("no page sizes"));
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact-protocol PageHeader with these fields (and a CRC to skip).
    fn header(uncompressed: i32, compressed: i32, dict: Option<i32>) -> Vec<u8> {
        fn zz(v: i64) -> Vec<u8> {
            let mut u = ((v << 1) ^ (v >> 63)) as u64;
            let mut out = Vec::new();
            loop {
                let b = (u & 0x7f) as u8;
                u >>= 7;
                if u == 0 {
                    out.push(b);
                    return out;
                }
                out.push(b | 0x80);
            }
        }
        let mut b = vec![0x15];
        b.extend(zz(if dict.is_some() { 2 } else { 0 })); // 1: type
        b.push(0x15);
        b.extend(zz(uncompressed.into())); // 2
        b.push(0x15);
        b.extend(zz(compressed.into())); // 3
        b.push(0x15);
        b.extend(zz(12345)); // 4: crc
        if let Some(n) = dict {
            b.push(0x3c); // 7: struct (delta 3)
            b.push(0x15);
            b.extend(zz(n.into()));
            b.push(0x15);
            b.extend(zz(0)); // encoding
            b.push(0x11); // is_sorted: true
            b.push(0);
        }
        b.push(0);
        b
    }

    fn parse(b: &[u8]) -> Result<(Header, usize), &'static str> {
        let mut r = Compact { b, at: 0 };
        match page_header(&mut r) {
            Ok(h) => Ok((h, r.at)),
            Err(Short) => Err("short"),
            Err(Bad(e)) => Err(e),
        }
    }

    #[test]
    fn page_claims_are_checked_against_the_limits() {
        let page = |uncompressed: i64, dict: Option<i64>| Header {
            uncompressed,
            compressed: 100,
            dict_values: dict,
        };
        let big = 300 << 20;
        assert_eq!(page_problem(&page(1 << 20, None), big, 32), None);
        assert_eq!(
            page_problem(&page(200 << 20, None), big, 32),
            None,
            "a big data page"
        );
        assert!(page_problem(&page(301 << 20, None), big, 32)
            .unwrap()
            .contains("page limit"));
        assert!(page_problem(&page(-1, None), big, 32)
            .unwrap()
            .contains("negative"));
        assert_eq!(
            page_problem(&page(1000, Some(250)), big, 32),
            None,
            "250 x 4 bytes"
        );
        assert!(page_problem(&page(1000, Some(251)), big, 32)
            .unwrap()
            .contains("251 values"));
        let e = page_problem(&page(17 << 20, Some(1)), big, 32).unwrap();
        assert!(e.contains("a dictionary page of"), "{e}");
    }

    #[test]
    fn the_page_limit_grows_with_the_file_within_its_decompressed_limit() {
        assert_eq!(
            page_limit(9_000, 1 << 30),
            PAGE_LIMIT,
            "a small file: 16 MiB"
        );
        assert_eq!(
            page_limit(75 << 20, 8 << 30),
            300 << 20,
            "a 75 MB file: 4x its size"
        );
        assert_eq!(
            page_limit(75 << 20, 100 << 20),
            100 << 20,
            "never past the total limit"
        );
        assert_eq!(page_limit(u64::MAX, u64::MAX), i64::MAX, "no overflow");
    }

    #[test]
    fn reads_sizes_and_dictionary_values_and_stops_at_the_header_end() {
        let b = header(1000, 300, Some(25));
        let (h, len) = parse(&b).unwrap();
        assert_eq!(
            h,
            Header {
                uncompressed: 1000,
                compressed: 300,
                dict_values: Some(25)
            }
        );
        assert_eq!(len, b.len());
        let (h, _) = parse(&header(7, 7, None)).unwrap();
        assert_eq!(h.dict_values, None);
    }

    #[test]
    fn cut_or_hostile_headers_are_errors_not_panics() {
        let b = header(1000, 300, Some(25));
        for n in 0..b.len() {
            assert_eq!(parse(&b[..n]).unwrap_err(), "short", "cut at {n}");
        }
        // Structs nested 40 deep (each a field 1 of type struct), closed properly.
        let mut deep = vec![0x1c; 40];
        deep.extend([0u8; 41]);
        assert_eq!(parse(&deep).unwrap_err(), "nested deeper than 16");
        // A list of 2^60 booleans in a few bytes: refused at once, not looped over.
        let mut bools = vec![0x19, 0xf1];
        bools.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        bools.extend([1, 1, 1]);
        assert_eq!(parse(&bools).unwrap_err(), "short");
        assert!(parse(&[0x1f, 0x00]).is_err(), "unknown type");
        assert!(parse(&[0x00]).is_err(), "no sizes");
    }

    #[test]
    fn a_real_file_passes_and_a_forged_dictionary_or_a_low_limit_does_not() {
        use arrow::array::{Int32Array, RecordBatch, StringArray};
        use parquet::arrow::ArrowWriter;
        use parquet::file::reader::FileReader;
        let strings: Vec<String> = (0..500).map(|i| format!("value-{}", i % 7)).collect();
        let batch = RecordBatch::try_from_iter(vec![
            ("s", std::sync::Arc::new(StringArray::from(strings)) as _),
            (
                "n",
                std::sync::Arc::new(Int32Array::from_iter_values(0..500)) as _,
            ),
        ])
        .unwrap();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let file = bytes::Bytes::from(buf.clone());
        let reader =
            parquet::file::serialized_reader::SerializedFileReader::new(file.clone()).unwrap();
        let meta = reader.metadata();
        check(&file, meta, u64::MAX).unwrap();
        assert!(check(&file, meta, 10).unwrap_err().contains("limit"));
        // Column `s` has a dictionary of 7 values: make its header claim 63 (one byte either
        // way, so nothing moves): 63 values of at least 4 bytes do not fit its page.
        let at = meta
            .row_group(0)
            .column(0)
            .dictionary_page_offset()
            .unwrap() as usize;
        let (h, len) = parse(&buf[at..]).unwrap();
        assert_eq!(h.dict_values, Some(7));
        let seven = buf[at..at + len]
            .windows(3)
            .position(|w| w[0] & 0x0f == 12 && w[1] == 0x15 && w[2] == 14)
            .expect("dictionary_page_header { num_values: 7 }");
        let mut forged = buf.clone();
        forged[at + seven + 2] = 126;
        let forged = bytes::Bytes::from(forged);
        let e = check(&forged, meta, u64::MAX).unwrap_err();
        assert!(e.contains("claims 63 values in"), "{e}");
        assert!(e.contains("column \"s\""), "{e}");
    }
}
