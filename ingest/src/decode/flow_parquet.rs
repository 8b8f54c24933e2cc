//! AWS's Parquet flow-log files: underscore column names (`interface_id`), typed columns
//! (`aws-facts.md` §3.4). Each row becomes a [`FlowRecord`] like a text line would.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::file::reader::ChunkReader;

use super::parquet_pages;
use super::{
    check_record, cut_raw, panic_text, BadInput, DecodeError, DecodeStats, Decoder, Event,
    FlowRecord, Position,
};
use crate::fields::{lookup, Column, Field, Format};
use crate::limits::Bounds;

/// The four magic bytes that open (and close) every Parquet file.
pub const PARQUET_MAGIC: &[u8; 4] = b"PAR1";

/// Decodes an AWS Parquet flow-log file.
pub struct ParquetDecoder<T: ChunkReader + 'static> {
    input: Option<T>,
    bounds: Bounds,
}

impl<T: ChunkReader + 'static> ParquetDecoder<T> {
    /// A decoder over a whole Parquet file (a `File` or in-memory `Bytes`).
    pub fn new(input: T) -> Self {
        ParquetDecoder {
            input: Some(input),
            bounds: Bounds::default(),
        }
    }

    /// Holds the file to these limits (decompressed size, longest value).
    pub fn bounded(mut self, bounds: Bounds) -> Self {
        self.bounds = bounds;
        self
    }
}

/// Decoded bytes one batch may hold: the batch size is chosen from the row groups' sizes so
/// that rows of long values come in small batches.
const BATCH_BYTES: u64 = 32 << 20;

/// Rows per batch for a file, and its uncompressed size as its metadata claims it.
pub(crate) fn batch_rows(meta: &parquet::file::metadata::ParquetMetaData) -> (usize, u64) {
    let (mut total, mut widest) = (0u64, 1u64);
    for rg in meta.row_groups() {
        let size = rg.total_byte_size().max(0) as u64;
        total = total.saturating_add(size);
        widest = widest.max(size / (rg.num_rows().max(1) as u64));
    }
    ((BATCH_BYTES / widest).clamp(1, 8192) as usize, total)
}

/// A column chunk whose metadata points outside the file: the parquet crate asserts on
/// negative offsets (a panic, found by fuzzing), so they are refused before any read.
pub(crate) fn chunk_problem(
    meta: &parquet::file::metadata::ParquetMetaData,
    file_len: u64,
) -> Option<String> {
    for (g, rg) in meta.row_groups().iter().enumerate() {
        for c in rg.columns() {
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let (data, len) = (c.data_page_offset(), c.compressed_size());
            let end = u64::try_from(start)
                .ok()
                .zip(u64::try_from(len).ok())
                .and_then(|(s, l)| s.checked_add(l));
            if data < 0 || end.is_none_or(|e| e > file_len) {
                return Some(format!(
                    "row group {g}, column {:?}: the metadata puts the column at offset {start}, {len} bytes long, outside the {file_len}-byte file",
                    c.column_path().string()
                ));
            }
        }
    }
    None
}

/// A column of one batch, cast to a type the row loop reads directly.
enum Col {
    Str(Arc<dyn Array>),
    Int(Arc<dyn Array>),
}

fn bad_file(reason: String, records: u64, row: u64) -> BadInput {
    BadInput {
        position: Position {
            line: row,
            offset: row,
        },
        reason,
        raw: String::new(),
        records,
    }
}

fn prepare(batch: &RecordBatch, columns: &[(usize, Column)]) -> Result<Vec<(Column, Col)>, String> {
    let mut out = Vec::with_capacity(columns.len());
    for (i, col) in columns {
        let a: &ArrayRef = batch.column(*i);
        let numeric = matches!(col, Column::Field(f) if f.is_count());
        let name = batch.schema().field(*i).name().clone();
        let c = if numeric {
            if !a.data_type().is_integer() && a.data_type() != &DataType::Null {
                return Err(format!(
                    "column `{name}` has type {}, expected an integer type",
                    a.data_type()
                ));
            }
            Col::Int(cast(a, &DataType::Int64).map_err(|e| format!("column `{name}`: {e}"))?)
        } else {
            Col::Str(cast(a, &DataType::Utf8).map_err(|e| format!("column `{name}`: {e}"))?)
        };
        out.push((col.clone(), c));
    }
    Ok(out)
}

/// The file's columns as flow-log fields (underscores for dashes), or why the file cannot be
/// metered (every row is then quarantined).
fn columns_of(schema: &arrow::datatypes::SchemaRef) -> Result<Vec<(usize, Column)>, String> {
    let mut columns = Vec::new();
    let mut names = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        let col = match lookup(f.name()) {
            Some(field) => Column::Field(field),
            None => Column::Unknown(f.name().clone()),
        };
        names.push(f.name().replace('_', "-"));
        columns.push((i, col));
    }
    match Format::parse(&names.join(" ")) {
        Err(e) => Err(format!("unusable columns: {e}")),
        Ok(f) if !f.missing_for_metering().is_empty() => Err(format!(
            "columns lack fields needed for metering ({}); every row of this file is quarantined",
            f.missing_for_metering().join(", ")
        )),
        Ok(_) => Ok(columns),
    }
}

/// Fills a record from row `r` of the prepared columns (strings borrowed from the arrays). A
/// row is held to the line limit as a whole, like a text line: unknown columns are kept in the
/// record's `extra` text, which would otherwise grow with the number of columns.
fn fill<'a>(
    rec: &mut FlowRecord<'a>,
    cols: &'a [(Column, Col)],
    r: usize,
    longest: usize,
) -> Result<(), String> {
    let mut text = 0usize;
    for (col, c) in cols {
        match c {
            Col::Int(a) if !a.is_null(r) => {
                let v = a.as_primitive::<Int64Type>().value(r);
                if let Column::Field(f) = col {
                    int_field(rec, *f, v, &format!("{f:?}"))?;
                }
            }
            Col::Str(a) if !a.is_null(r) => {
                let v = a.as_string::<i32>().value(r);
                text = text.saturating_add(v.len());
                if v.len() > longest {
                    return Err(format!(
                        "column {col:?}: a value of {} bytes, longer than the {longest}-byte limit (max_line_bytes)",
                        v.len()
                    ));
                }
                if text > longest {
                    return Err(format!(
                        "the row's text values add up to more than the {longest}-byte limit (max_line_bytes) at column {col:?}"
                    ));
                }
                super::set_field(rec, col, v)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn int_field(rec: &mut FlowRecord<'_>, f: Field, v: i64, name: &str) -> Result<(), String> {
    let range = |ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(format!(
                "column `{name}`: {v} is out of range for this field"
            ))
        }
    };
    match f {
        Field::Version => {
            range((0..=u32::MAX as i64).contains(&v))?;
            rec.version = Some(v as u32)
        }
        Field::SrcPort | Field::DstPort => {
            range((0..=65535).contains(&v))?;
            if f == Field::SrcPort {
                rec.srcport = Some(v as u16)
            } else {
                rec.dstport = Some(v as u16)
            }
        }
        Field::Protocol => {
            range((0..=255).contains(&v))?;
            rec.protocol = Some(v as u8)
        }
        Field::Packets => {
            range(v >= 0)?;
            rec.packets = Some(v as u64)
        }
        Field::Bytes => {
            range(v >= 0)?;
            rec.bytes = Some(v as u64)
        }
        Field::Start => rec.start = Some(v),
        Field::End => rec.end = Some(v),
        Field::TcpFlags => {
            range((0..=u32::MAX as i64).contains(&v))?;
            rec.tcp_flags = Some(v as u32)
        }
        Field::TrafficPath => {
            range((0..=u32::MAX as i64).contains(&v))?;
            rec.traffic_path = Some(v as u32)
        }
        _ => {}
    }
    Ok(())
}

impl<T: ChunkReader + 'static> Decoder for ParquetDecoder<T> {
    fn decode(&mut self, sink: &mut dyn FnMut(Event<'_, '_>)) -> Result<DecodeStats, DecodeError> {
        let input = self
            .input
            .take()
            .expect("decode is called once per decoder");
        let file_len = input.len();
        // The embedded Arrow schema (`ARROW:schema`) is ignored: AWS does not write one, the
        // column types are read from the Parquet schema, and decoding it can panic inside
        // arrow-ipc (found by fuzzing).
        let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
        let opened = catch_unwind(AssertUnwindSafe(|| {
            ArrowReaderMetadata::load(&input, options).map_err(|e| e.to_string())
        }))
        .unwrap_or_else(|p| {
            Err(format!(
                "the parquet crate failed on it: {}",
                panic_text(p.as_ref())
            ))
        });
        let arrow_meta = match opened {
            Ok(m) => m,
            Err(e) => {
                sink(Event::Bad(bad_file(
                    format!("not a readable Parquet file: {e}"),
                    1,
                    0,
                )));
                return Ok(DecodeStats::default());
            }
        };
        let total_rows = arrow_meta.metadata().file_metadata().num_rows().max(0) as u64;
        let (rows_per_batch, claimed) = batch_rows(arrow_meta.metadata());
        if claimed > self.bounds.decompressed {
            sink(Event::Bad(bad_file(
                format!("Parquet file holds {claimed} bytes uncompressed, more than the {}-byte limit for this input (max_decompressed_ratio, max_decompressed_bytes); every row of this file is quarantined", self.bounds.decompressed),
                total_rows.max(1),
                1,
            )));
            return Ok(DecodeStats::default());
        }
        let checked = chunk_problem(arrow_meta.metadata(), file_len).map_or_else(
            || parquet_pages::check(&input, arrow_meta.metadata(), self.bounds.decompressed),
            Err,
        );
        if let Err(reason) = checked {
            sink(Event::Bad(bad_file(reason, total_rows.max(1), 1)));
            return Ok(DecodeStats::default());
        }
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(input, arrow_meta);
        let columns = match columns_of(builder.schema()) {
            Ok(c) => c,
            Err(reason) => {
                sink(Event::Bad(bad_file(reason, total_rows, 1)));
                return Ok(DecodeStats::default());
            }
        };
        let built = catch_unwind(AssertUnwindSafe(|| {
            builder
                .with_batch_size(rows_per_batch)
                .build()
                .map_err(|e| e.to_string())
        }))
        .unwrap_or_else(|p| {
            Err(format!(
                "the parquet crate failed on it: {}",
                panic_text(p.as_ref())
            ))
        });
        let mut reader = match built {
            Ok(r) => r,
            Err(e) => {
                sink(Event::Bad(bad_file(
                    format!("not a readable Parquet file: {e}"),
                    total_rows,
                    1,
                )));
                return Ok(DecodeStats::default());
            }
        };
        let mut row_no = 0u64;
        loop {
            // The parquet crate asserts on some malformed pages (a dictionary-encoded page with
            // no dictionary, found by fuzzing): such a panic ends this file like a read error.
            // The reader is dropped at once, never used after the panic.
            let next = catch_unwind(AssertUnwindSafe(|| {
                reader.next().map(|b| b.map_err(|e| e.to_string()))
            }))
            .unwrap_or_else(|p| {
                Some(Err(format!(
                    "the parquet crate failed on it ({})",
                    panic_text(p.as_ref())
                )))
            });
            let batch = match next {
                None => break,
                Some(Ok(b)) => b,
                Some(Err(e)) => {
                    sink(Event::Bad(bad_file(
                        format!("Parquet data unreadable after row {row_no}: {e}; the rest of the file cannot be read"),
                        total_rows.saturating_sub(row_no),
                        row_no + 1,
                    )));
                    break;
                }
            };
            let cols = match prepare(&batch, &columns) {
                Ok(c) => c,
                Err(reason) => {
                    sink(Event::Bad(bad_file(
                        format!("{reason}; every row of this file is quarantined"),
                        total_rows.saturating_sub(row_no),
                        row_no + 1,
                    )));
                    break;
                }
            };
            for r in 0..batch.num_rows() {
                row_no += 1;
                let pos = Position {
                    line: row_no,
                    offset: row_no - 1,
                };
                let mut rec = FlowRecord::default();
                match fill(&mut rec, &cols, r, self.bounds.line).and_then(|()| check_record(&rec)) {
                    Ok(()) => sink(Event::Record(&rec, pos)),
                    Err(reason) => sink(Event::Bad(BadInput {
                        position: pos,
                        reason: format!("row {row_no}: {reason}"),
                        raw: cut_raw(format!("{rec:?}").as_bytes()),
                        records: 1,
                    })),
                }
            }
        }
        Ok(DecodeStats { lines: row_no })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int64Array, StringArray};
    use arrow::datatypes::{Field as AField, Schema};
    use parquet::arrow::ArrowWriter;

    /// Writes a Parquet file shaped like AWS's (Athena DDL column names and types).
    fn aws_parquet(bytes_col: Vec<Option<i64>>) -> bytes::Bytes {
        let n = bytes_col.len();
        let schema = Arc::new(Schema::new(vec![
            AField::new("version", DataType::Int32, true),
            AField::new("account_id", DataType::Utf8, true),
            AField::new("interface_id", DataType::Utf8, true),
            AField::new("srcaddr", DataType::Utf8, true),
            AField::new("dstaddr", DataType::Utf8, true),
            AField::new("srcport", DataType::Int32, true),
            AField::new("dstport", DataType::Int32, true),
            AField::new("protocol", DataType::Int64, true),
            AField::new("packets", DataType::Int64, true),
            AField::new("bytes", DataType::Int64, true),
            AField::new("start", DataType::Int64, true),
            AField::new("end", DataType::Int64, true),
            AField::new("action", DataType::Utf8, true),
            AField::new("log_status", DataType::Utf8, true),
            AField::new("vpc_id", DataType::Utf8, true),
            AField::new("az_id", DataType::Utf8, true),
        ]));
        let s = |v: &str| Arc::new(StringArray::from(vec![Some(v); n])) as ArrayRef;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int32Array::from(vec![Some(5); n])),
                s("123456789010"),
                s("eni-1235b8ca123456789"),
                s("172.31.16.139"),
                s("172.31.16.21"),
                Arc::new(Int32Array::from(vec![Some(20641); n])),
                Arc::new(Int32Array::from(vec![Some(22); n])),
                Arc::new(Int64Array::from(vec![Some(6); n])),
                Arc::new(Int64Array::from(vec![Some(20); n])),
                Arc::new(Int64Array::from(bytes_col)),
                Arc::new(Int64Array::from(vec![Some(1418530010); n])),
                Arc::new(Int64Array::from(vec![Some(1418530070); n])),
                s("ACCEPT"),
                s("OK"),
                s("vpc-abcdefab012345678"),
                s("use1-az1"),
            ],
        )
        .unwrap();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        bytes::Bytes::from(buf)
    }

    fn run(input: bytes::Bytes) -> (Vec<String>, Vec<BadInput>) {
        let (mut recs, mut bad) = (Vec::new(), Vec::new());
        ParquetDecoder::new(input)
            .decode(&mut |ev| match ev {
                Event::Record(r, p) => recs.push(format!("{}:{r:?}", p.line)),
                Event::Bad(b) => bad.push(b),
                Event::Metric(..) | Event::Ignored(_) => unreachable!("a flow-log decoder"),
            })
            .unwrap();
        (recs, bad)
    }

    #[test]
    fn aws_parquet_rows_decode_like_text() {
        let (recs, bad) = run(aws_parquet(vec![Some(4249), Some(1)]));
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(recs.len(), 2);
        let r = &recs[0];
        for want in [
            "1:",
            "version: Some(5)",
            "interface_id: Some(\"eni-1235b8ca123456789\")",
            "srcaddr: Some(172.31.16.139)",
            "srcport: Some(20641)",
            "protocol: Some(6)",
            "bytes: Some(4249)",
            "start: Some(1418530010)",
            "vpc_id: Some(\"vpc-abcdefab012345678\")",
            "az_id: Some(\"use1-az1\")",
        ] {
            assert!(r.contains(want), "{want} not in {r}");
        }
    }

    #[test]
    fn negative_bytes_row_is_quarantined_others_kept() {
        let (recs, bad) = run(aws_parquet(vec![Some(1), Some(-5), Some(2)]));
        assert_eq!(recs.len(), 2);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].position.line, 2);
        assert!(bad[0].reason.contains("out of range"), "{}", bad[0].reason);
    }

    #[test]
    fn garbage_is_one_bad_file() {
        let (recs, bad) = run(bytes::Bytes::from_static(b"PAR1 this is not parquet PAR1"));
        assert!(recs.is_empty());
        assert_eq!(bad.len(), 1);
        assert!(bad[0].reason.contains("not a readable Parquet file"));
    }

    #[test]
    fn a_row_whose_unknown_columns_add_up_past_the_line_limit_is_quarantined() {
        // Each value is under the limit; together they would be one 96 KB `extra` text.
        let aws = aws_parquet(vec![Some(1), Some(2)]);
        let mut batch = ParquetRecordBatchReaderBuilder::try_new(aws)
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        for name in ["pad_a", "pad_b", "pad_c"] {
            let mut fields = batch.schema().fields().to_vec();
            fields.push(Arc::new(AField::new(name, DataType::Utf8, true)));
            let mut cols = batch.columns().to_vec();
            // The first row is padded, the second is not.
            cols.push(Arc::new(StringArray::from(vec![
                Some("x".repeat(32_000)),
                None,
            ])));
            batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
        }
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let (recs, bad) = run(bytes::Bytes::from(buf));
        assert_eq!(recs.len(), 1, "{recs:?}");
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].position.line, 1);
        assert!(
            bad[0]
                .reason
                .contains("add up to more than the 65536-byte limit"),
            "{}",
            bad[0].reason
        );
    }

    /// Bytes that panic on any read once `fail` is raised: a stand-in for a parquet crate
    /// assertion in the middle of a file.
    struct Failing {
        bytes: bytes::Bytes,
        fail: Arc<std::sync::atomic::AtomicBool>,
    }

    impl parquet::file::reader::Length for Failing {
        fn len(&self) -> u64 {
            self.bytes.len() as u64
        }
    }

    impl ChunkReader for Failing {
        type T = bytes::buf::Reader<bytes::Bytes>;
        fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
            self.get_bytes(start, self.bytes.len() - start as usize)
                .map(bytes::Buf::reader)
        }
        fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
            assert!(
                !self.fail.load(std::sync::atomic::Ordering::Relaxed),
                "reader gives up"
            );
            self.bytes.get_bytes(start, length)
        }
    }

    #[test]
    fn a_panic_while_reading_keeps_the_rows_before_it_and_quarantines_the_rest() {
        // Two row groups of one full batch each (8,192 rows): the first is read, then every
        // read panics.
        let one = aws_parquet(vec![Some(1); 2 * 8192]);
        let batch = arrow::compute::concat_batches(
            &ParquetRecordBatchReaderBuilder::try_new(one.clone())
                .unwrap()
                .schema()
                .clone(),
            &ParquetRecordBatchReaderBuilder::try_new(one)
                .unwrap()
                .build()
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap(),
        )
        .unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(8192))
            .build();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let input = Failing {
            bytes: bytes::Bytes::from(buf),
            fail: fail.clone(),
        };
        let (mut recs, mut bad) = (0, Vec::new());
        ParquetDecoder::new(input)
            .decode(&mut |ev| match ev {
                Event::Record(..) => {
                    recs += 1;
                    fail.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Event::Bad(b) => bad.push(b),
                _ => unreachable!(),
            })
            .unwrap();
        assert_eq!(recs, 8192, "the first row group");
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(
            bad[0]
                .reason
                .contains("the parquet crate failed on it (reader gives up)"),
            "{}",
            bad[0].reason
        );
        assert_eq!((bad[0].records, bad[0].position.line), (8192, 8193));
    }
}
