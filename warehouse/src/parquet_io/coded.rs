//! Text columns written straight from a dictionary and per-row codes. Most `flows` text
//! columns (cluster, connection, account, endpoint, status, lineage) are a few distinct
//! strings picked per row by a code: the Arrow writer would hash every row's text to rebuild
//! the dictionary the codes already are, and compare every row's text for the statistics.
//! Here the dictionary page is the distinct strings, sorted, and the data pages are the rows'
//! positions in it, so a page's bounds are its smallest and largest code.

use arrow::array::{Array, AsArray, DictionaryArray, StringArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, UInt32Type};
use bytes::Bytes;
use parquet::basic::{BoundaryOrder, Compression, Encoding, EncodingMask, PageType, Type};
use parquet::column::page::{CompressedPage, Page, PageWriteSpec, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::ByteArray;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{
    ColumnChunkMetaData, ColumnIndexBuilder, OffsetIndexBuilder, PageEncodingStats,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

use super::hybrid;

/// A column chunk encoded on its own, to splice into a row group.
pub(super) struct Chunk {
    /// The chunk's pages (offsets in `close` are from its start).
    pub bytes: Bytes,
    pub close: ColumnCloseResult,
}

/// `column` as a dictionary this module writes: `UInt32` codes into non-null strings, for a
/// text column the writer settings give a dictionary, version 1 data pages, no Bloom filter
/// and Snappy (or no) compression.
pub(super) fn as_coded<'a>(
    column: &'a dyn Array,
    descr: &ColumnDescPtr,
    props: &WriterProperties,
) -> Option<&'a DictionaryArray<UInt32Type>> {
    let d = column.as_dictionary_opt::<UInt32Type>()?;
    let fits = d.values().data_type() == &DataType::Utf8
        && d.values().null_count() == 0
        && descr.physical_type() == Type::BYTE_ARRAY
        && descr.max_rep_level() == 0
        && props.dictionary_enabled(descr.path())
        && props.writer_version() == WriterVersion::PARQUET_1_0
        && props.bloom_filter_properties(descr.path()).is_none()
        && matches!(
            props.compression(descr.path()),
            Compression::SNAPPY | Compression::UNCOMPRESSED
        );
    fits.then_some(d)
}

/// The distinct strings the non-null rows use, sorted, and each row's position in them.
struct Sorted<'a> {
    dict: Vec<&'a [u8]>,
    /// A row's position in `dict` (anything for a null row).
    codes: Vec<u32>,
    /// Which rows are not null (`None`: all are).
    valid: Option<&'a NullBuffer>,
}

fn sort<'a>(d: &'a DictionaryArray<UInt32Type>) -> Sorted<'a> {
    let values: &StringArray = d.values().as_string();
    let (keys, valid) = (d.keys().values(), d.keys().nulls());
    let mut used = vec![false; values.len()];
    match valid {
        None => keys.iter().for_each(|&k| used[k as usize] = true),
        Some(n) => n
            .valid_indices()
            .for_each(|i| used[keys[i] as usize] = true),
    }
    let mut dict: Vec<&[u8]> = (0..values.len())
        .filter(|&k| used[k])
        .map(|k| values.value(k).as_bytes())
        .collect();
    dict.sort_unstable();
    dict.dedup();
    // An unused entry keeps a position nobody reads.
    let at: Vec<u32> = (0..values.len())
        .map(|k| match used[k] {
            true => dict
                .binary_search(&values.value(k).as_bytes())
                .expect("a used value is in the dictionary") as u32,
            false => 0,
        })
        .collect();
    // A null row's key need not index the values.
    let codes = keys
        .iter()
        .map(|&k| at.get(k as usize).copied().unwrap_or(0))
        .collect();
    Sorted { dict, codes, valid }
}

/// Writes one column chunk of `d`'s rows: a dictionary page and data pages of codes, with
/// the statistics, column index and offset index the writer settings ask for.
pub(super) fn write(
    descr: &ColumnDescPtr,
    props: &WriterProperties,
    d: &DictionaryArray<UInt32Type>,
) -> Result<Chunk> {
    let s = sort(d);
    let compression = props.compression(descr.path());
    let mut sink = TrackedWrite::new(Vec::new());
    let mut pages = SerializedPageWriter::new(&mut sink);
    let mut t = Totals::default();

    let mut plain = Vec::new();
    for v in &s.dict {
        plain.extend_from_slice(&(v.len() as u32).to_le_bytes());
        plain.extend_from_slice(v);
    }
    let (buf, n) = squeeze(plain, compression)?;
    let page = Page::DictionaryPage {
        buf,
        num_values: s.dict.len() as u32,
        encoding: Encoding::PLAIN,
        is_sorted: true,
    };
    t.count(&pages.write_page(CompressedPage::new(page, n))?);

    let width = hybrid::bit_width(s.dict.len().saturating_sub(1) as u32);
    let lens: Vec<i64> = s.dict.iter().map(|v| v.len() as i64).collect();
    let nullable = descr.max_def_level() > 0;
    let mut scratch = (Vec::new(), Vec::new());
    let page_rows = props.data_page_row_count_limit().max(1);
    for from in (0..s.codes.len()).step_by(page_rows) {
        let rows = from..(from + page_rows).min(s.codes.len());
        let (buf, facts) = data_page(&s, rows.clone(), nullable, width, &lens, &mut scratch);
        let (buf, n) = squeeze(buf, compression)?;
        let page = Page::DataPage {
            buf,
            num_values: rows.len() as u32,
            encoding: Encoding::RLE_DICTIONARY,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        let spec = pages.write_page(CompressedPage::new(page, n))?;
        t.count(&spec);
        t.data_page(&spec, rows.len(), facts, &s.dict);
    }
    pages.close()?;
    let bytes_written = sink.bytes_written() as u64;
    let bytes = Bytes::from(sink.into_inner()?);
    let close = t.close(descr, props, &s, bytes_written)?;
    Ok(Chunk { bytes, close })
}

/// Compresses a page as the column's settings say: its bytes and its size before.
fn squeeze(buf: Vec<u8>, compression: Compression) -> Result<(Bytes, usize)> {
    let n = buf.len();
    Ok(match compression {
        Compression::SNAPPY => (
            snap::raw::Encoder::new()
                .compress_vec(&buf)
                .map_err(|e| ParquetError::External(Box::new(e)))?
                .into(),
            n,
        ),
        _ => (buf.into(), n),
    })
}

/// What a data page holds, for the indexes and statistics.
struct Facts {
    nulls: u64,
    /// Smallest and largest code (`None`: only nulls).
    bounds: Option<(u32, u32)>,
    /// Bytes of the strings it spells.
    text_bytes: i64,
}

/// A version 1 data page of `rows` before compression: definition levels (when the column
/// is nullable, length-prefixed), the codes' bit width, the codes of the non-null rows.
fn data_page(
    s: &Sorted<'_>,
    rows: std::ops::Range<usize>,
    nullable: bool,
    width: u8,
    lens: &[i64],
    (levels, present): &mut (Vec<u32>, Vec<u32>),
) -> (Vec<u8>, Facts) {
    let mut buf = Vec::new();
    let codes = &s.codes[rows.clone()];
    if nullable {
        levels.clear();
        match s.valid {
            None => levels.resize(codes.len(), 1),
            Some(n) => levels.extend(rows.clone().map(|i| u32::from(n.is_valid(i)))),
        }
        let mut l = Vec::new();
        hybrid::encode(levels, 1, &mut l);
        buf.extend_from_slice(&(l.len() as u32).to_le_bytes());
        buf.extend_from_slice(&l);
    }
    let present: &[u32] = match s.valid {
        None => codes,
        Some(n) => {
            present.clear();
            present.extend(rows.filter(|&i| n.is_valid(i)).map(|i| s.codes[i]));
            &present[..]
        }
    };
    buf.push(width);
    hybrid::encode(present, width, &mut buf);
    let (mut lo, mut hi, mut text_bytes) = (u32::MAX, 0, 0);
    for &c in present {
        lo = lo.min(c);
        hi = hi.max(c);
        text_bytes += lens[c as usize];
    }
    let facts = Facts {
        nulls: (codes.len() - present.len()) as u64,
        bounds: (!present.is_empty()).then_some((lo, hi)),
        text_bytes,
    };
    (buf, facts)
}

/// The chunk's pages so far, for its metadata and indexes.
struct Totals {
    compressed: u64,
    uncompressed: u64,
    first_data: Option<i64>,
    data_pages: i32,
    nulls: u64,
    bounds: Option<(u32, u32)>,
    text_bytes: i64,
    /// Whether page bounds only climb (or only fall), for the column index's order.
    ascending: bool,
    descending: bool,
    last: Option<(u32, u32)>,
    column_index: ColumnIndexBuilder,
    offset_index: OffsetIndexBuilder,
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            compressed: 0,
            uncompressed: 0,
            first_data: None,
            data_pages: 0,
            nulls: 0,
            bounds: None,
            text_bytes: 0,
            ascending: true,
            descending: true,
            last: None,
            column_index: ColumnIndexBuilder::new(Type::BYTE_ARRAY),
            offset_index: OffsetIndexBuilder::new(),
        }
    }
}

impl Totals {
    fn count(&mut self, spec: &PageWriteSpec) {
        self.compressed += spec.compressed_size as u64;
        self.uncompressed += spec.uncompressed_size as u64;
    }

    fn data_page(&mut self, spec: &PageWriteSpec, rows: usize, f: Facts, dict: &[&[u8]]) {
        self.first_data.get_or_insert(spec.offset as i64);
        self.data_pages += 1;
        let o = &mut self.offset_index;
        o.append_offset_and_size(spec.offset as i64, spec.compressed_size as i32);
        o.append_row_count(rows as i64);
        o.append_unencoded_byte_array_data_bytes(Some(f.text_bytes));
        let bytes = |c: u32| dict[c as usize].to_vec();
        match f.bounds {
            Some((l, h)) => {
                self.column_index
                    .append(false, bytes(l), bytes(h), f.nulls as i64);
                if let Some((pl, ph)) = self.last {
                    self.ascending &= pl <= l && ph <= h;
                    self.descending &= pl >= l && ph >= h;
                }
                self.last = Some((l, h));
                self.bounds = Some(self.bounds.map_or((l, h), |(a, b)| (a.min(l), b.max(h))));
            }
            None => self
                .column_index
                .append(true, vec![], vec![], f.nulls as i64),
        }
        self.nulls += f.nulls;
        self.text_bytes += f.text_bytes;
    }

    fn close(
        mut self,
        descr: &ColumnDescPtr,
        props: &WriterProperties,
        s: &Sorted<'_>,
        bytes_written: u64,
    ) -> Result<ColumnCloseResult> {
        let stats = props.statistics_enabled(descr.path());
        let mut meta = ColumnChunkMetaData::builder(descr.clone())
            .set_compression(props.compression(descr.path()))
            .set_encodings_mask(EncodingMask::new_from_encodings(
                [Encoding::PLAIN, Encoding::RLE, Encoding::RLE_DICTIONARY].iter(),
            ))
            .set_page_encoding_stats(vec![
                PageEncodingStats {
                    page_type: PageType::DICTIONARY_PAGE,
                    encoding: Encoding::PLAIN,
                    count: 1,
                },
                PageEncodingStats {
                    page_type: PageType::DATA_PAGE,
                    encoding: Encoding::RLE_DICTIONARY,
                    count: self.data_pages,
                },
            ])
            .set_total_compressed_size(self.compressed as i64)
            .set_total_uncompressed_size(self.uncompressed as i64)
            .set_num_values(s.codes.len() as i64)
            .set_data_page_offset(self.first_data.unwrap_or(0))
            .set_dictionary_page_offset(Some(0));
        if stats != EnabledStatistics::None {
            let value = |c: u32| ByteArray::from(s.dict[c as usize].to_vec());
            let (lo, hi) = self.bounds.map(|(l, h)| (value(l), value(h))).unzip();
            let st = ValueStatistics::new(lo, hi, None, Some(self.nulls), false);
            meta = meta
                .set_statistics(Statistics::ByteArray(st))
                .set_unencoded_byte_array_data_bytes(Some(self.text_bytes));
        }
        let column_index = match stats {
            EnabledStatistics::Page => {
                self.column_index
                    .set_boundary_order(match (self.ascending, self.descending) {
                        (true, _) => BoundaryOrder::ASCENDING,
                        (false, true) => BoundaryOrder::DESCENDING,
                        (false, false) => BoundaryOrder::UNORDERED,
                    });
                Some(self.column_index.build()?)
            }
            _ => None,
        };
        Ok(ColumnCloseResult {
            bytes_written,
            rows_written: s.codes.len() as u64,
            metadata: meta.build()?,
            bloom_filter: None,
            column_index,
            offset_index: (!props.offset_index_disabled()).then(|| self.offset_index.build()),
        })
    }
}

/// Arrow's dictionary of `values` picked by `codes`, for tests.
#[cfg(test)]
pub(super) fn dictionary(values: &[&str], codes: Vec<Option<u32>>) -> arrow::array::ArrayRef {
    std::sync::Arc::new(DictionaryArray::new(
        arrow::array::UInt32Array::from(codes),
        std::sync::Arc::new(StringArray::from(values.to_vec())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet_io::{decode, encode, encode_columns};
    use arrow::array::{ArrayRef, Int64Array, RecordBatch};
    use arrow::datatypes::{Field, Schema, SchemaRef};
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
    use parquet::file::page_index::column_index::ColumnIndexMetaData;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
            Field::new("t", DataType::Utf8, false),
        ]))
    }

    fn metadata(b: &Bytes) -> Arc<ParquetMetaData> {
        ParquetRecordBatchReaderBuilder::try_new_with_options(
            b.clone(),
            ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required),
        )
        .unwrap()
        .metadata()
        .clone()
    }

    /// Smallest and largest non-null string of `a[from..to]`.
    fn bounds(a: &StringArray, from: usize, to: usize) -> Option<(Vec<u8>, Vec<u8>)> {
        let v = a.slice(from, to - from);
        let v = v.iter().flatten();
        let lo = v.clone().min()?.as_bytes().to_vec();
        Some((lo, v.max()?.as_bytes().to_vec()))
    }

    /// Encodes `s` and `t` from codes and checks the file: it reads back as the strings the
    /// codes pick, its Delta statistics are the Arrow writer's, and its chunk statistics,
    /// column index and offset index hold each page's true bounds, nulls and first row.
    fn round_trip(s: ArrayRef, t: ArrayRef) -> Bytes {
        let schema = schema();
        let n = s.len();
        let cols = vec![
            Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
            s,
            t,
        ];
        let e = encode_columns(&schema, &cols, "t").unwrap();
        assert_eq!(e.rows, n);
        let plain: Vec<ArrayRef> = cols
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| arrow::compute::cast(c, f.data_type()).unwrap())
            .collect();
        let want = RecordBatch::try_new(schema.clone(), plain).unwrap();
        let back = decode(e.bytes.clone(), "t").unwrap();
        assert_eq!(
            arrow::compute::concat_batches(&schema, &back).unwrap(),
            want
        );
        let theirs = encode(&schema, std::slice::from_ref(&want), "t").unwrap();
        assert_eq!(e.stats, theirs.stats);

        let meta = metadata(&e.bytes);
        let mut first = 0;
        for g in 0..meta.num_row_groups() {
            let rows = meta.row_group(g).num_rows() as usize;
            for c in 1..3 {
                let text = want.column(c).as_string::<i32>();
                let chunk = meta.row_group(g).column(c);
                let st = chunk.statistics().unwrap();
                let nulls = text.slice(first, rows).null_count() as u64;
                assert_eq!(st.null_count_opt(), Some(nulls));
                let b = bounds(text, first, first + rows);
                assert_eq!(
                    st.min_bytes_opt().zip(st.max_bytes_opt()),
                    b.as_ref().map(|(l, h)| (&l[..], &h[..]))
                );
                assert!(chunk.dictionary_page_offset().unwrap() < chunk.data_page_offset());
                let pages = &meta.offset_index().unwrap()[g][c].page_locations;
                let ColumnIndexMetaData::BYTE_ARRAY(ix) = &meta.column_index().unwrap()[g][c]
                else {
                    panic!("a column index of strings")
                };
                for (p, loc) in pages.iter().enumerate() {
                    let from = loc.first_row_index as usize;
                    let to = pages
                        .get(p + 1)
                        .map_or(rows, |q| q.first_row_index as usize);
                    assert_eq!(from, p * 20_000, "pages of the writer's row limit");
                    let b = bounds(text, first + from, first + to);
                    assert_eq!(ix.is_null_page(p), b.is_none());
                    if let Some((l, h)) = b {
                        assert_eq!(
                            (ix.min_value(p), ix.max_value(p)),
                            (Some(&l[..]), Some(&h[..]))
                        );
                    }
                    let nulls = text.slice(first + from, to - from).null_count() as i64;
                    assert_eq!(ix.null_count(p), Some(nulls));
                }
            }
            first += rows;
        }
        assert_eq!(first, n);
        e.bytes
    }

    #[test]
    fn codes_are_written_as_the_dictionary_they_are() {
        // Duplicate and unused entries, nulls, runs and scattered codes, three data pages.
        let values = ["b", "a", "b", "unused", "c-long"];
        let codes: Vec<Option<u32>> = (0..45_000u32)
            .map(|i| match i % 97 {
                0 => None,
                k if i < 20_000 => Some(k % 3),
                _ => Some([0, 1, 4][(i / 1000 % 3) as usize]),
            })
            .collect();
        let t = (0..45_000u32)
            .map(|i| Some(u32::from(i >= 30_000)))
            .collect();
        let bytes = round_trip(dictionary(&values, codes), dictionary(&["x", "y"], t));
        let c = metadata(&bytes).row_group(0).column(1).clone();
        assert!(c.encodings().any(|e| e == Encoding::RLE_DICTIONARY));
        // Three distinct strings used: the dictionary page holds those, not the five entries.
        let mut r = parquet::file::serialized_reader::SerializedPageReader::new(
            Arc::new(bytes.clone()),
            &c,
            45_000,
            None,
        )
        .unwrap();
        use parquet::column::page::PageReader;
        match r.get_next_page().unwrap().unwrap() {
            Page::DictionaryPage { num_values, .. } => assert_eq!(num_values, 3),
            p => panic!("a dictionary page first, not {:?}", p.page_type()),
        }
    }

    #[test]
    fn all_null_and_single_value_columns() {
        round_trip(
            dictionary(&["a"], vec![None; 10]),
            dictionary(&["only"], vec![Some(0); 10]),
        );
    }

    #[test]
    fn a_dictionary_with_null_values_goes_through_the_arrow_writer() {
        let values = StringArray::from(vec![Some("a"), None, Some("b")]);
        let keys = arrow::array::UInt32Array::from(vec![Some(0), Some(1), None, Some(2)]);
        let d: ArrayRef = Arc::new(DictionaryArray::new(keys, Arc::new(values)));
        assert!(d.as_dictionary_opt::<UInt32Type>().is_some());
        round_trip(d, dictionary(&["x"], vec![Some(0); 4]));
    }

    #[test]
    fn row_groups_split_at_the_writer_limit() {
        let n = 256 * 1024 + 5;
        let bytes = round_trip(
            dictionary(
                &["p", "q", "r"],
                (0..n as u32).map(|i| Some(i % 3)).collect(),
            ),
            dictionary(&["x"], vec![Some(0); n]),
        );
        assert_eq!(metadata(&bytes).num_row_groups(), 2);
    }

    #[test]
    fn mismatched_columns_are_refused() {
        let s = dictionary(&["a"], vec![Some(0); 3]);
        let n: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        let e = encode_columns(&schema(), &[n, s.clone(), s], "file x").unwrap_err();
        assert!(e.to_string().contains("file x"), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn any_codes_read_back_as_their_strings(
            values in proptest::collection::vec("[a-c]{0,3}|[x-z]{60,70}", 1..12),
            runs in proptest::collection::vec(
                (proptest::option::weighted(0.8, 0u32..64), 1usize..40),
                0..200,
            ),
        ) {
            let k = values.len() as u32;
            let codes: Vec<Option<u32>> = runs
                .iter()
                .flat_map(|&(c, n)| std::iter::repeat_n(c.map(|c| c % k), n))
                .collect();
            let t = codes.iter().map(|c| Some(c.unwrap_or(0))).collect();
            let v: Vec<&str> = values.iter().map(String::as_str).collect();
            round_trip(dictionary(&v, codes), dictionary(&v, t));
        }
    }
}
