//! Parquet encoding of warehouse files and the per-file statistics Delta readers skip by.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Int32Type, Int64Type, Schema, SchemaRef, TimestampMicrosecondType,
};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding};
use parquet::file::properties::WriterProperties;

use crate::Error;

mod coded;
mod hybrid;

/// Columns whose values rarely repeat (counts, times, offsets, client ports): a dictionary
/// for them costs a hash per value and saves nothing. Measured on `flows` (benches/ingest.sh):
/// 4% less ingest CPU and files 12% smaller without it.
const NO_DICTIONARY: &[&str] = &[
    "bytes",
    "packets",
    "flow_start",
    "flow_end",
    "record_bytes",
    "record_packets",
    "source_line",
    "source_offset",
    "srcport",
];

/// Writer settings shared by every table. Snappy, not zstd: ingest writes many files, and
/// zstd's per-column-chunk context setup measured at over 40% of ingest CPU. Statistics let
/// query engines prune by time.
pub fn writer_properties(schema: &Schema) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(256 * 1024))
        .set_created_by("linkmeter".to_string());
    for c in NO_DICTIONARY {
        b = b.set_column_dictionary_enabled((*c).into(), false);
        // Integers and times stored as differences from the previous value (times and line
        // offsets climb, counts are small): `flows` files a fifth smaller than plain values
        // under Snappy, and no slower to write (benches/ingest.sh). Not for the same names
        // elsewhere that hold decimals.
        let int = schema.field_with_name(c).is_ok_and(|f| {
            matches!(
                f.data_type(),
                DataType::Int32 | DataType::Int64 | DataType::Timestamp(..)
            )
        });
        if int {
            b = b.set_column_encoding((*c).into(), Encoding::DELTA_BINARY_PACKED);
        }
    }
    b.build()
}

/// An encoded file: its bytes, rows and Delta statistics.
#[derive(Debug)]
pub struct Encoded {
    /// The Parquet file.
    pub bytes: Bytes,
    /// Rows in it.
    pub rows: usize,
    /// Delta `stats` JSON (record count, null counts, min/max of number and time columns).
    pub stats: String,
}

/// A schema's columns as `name:type`, for errors.
fn typed(schema: &Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}:{}", f.name(), f.data_type()))
        .collect()
}

/// Encodes batches (all of `schema`) as one Parquet file.
pub fn encode(schema: &SchemaRef, batches: &[RecordBatch], what: &str) -> Result<Encoded, Error> {
    let perr = |source| Error::Parquet {
        path: what.to_string(),
        source,
    };
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema.clone(), Some(writer_properties(schema)))
        .map_err(perr)?;
    let mut rows = 0;
    for b in batches {
        if b.schema().fields() != schema.fields() {
            return Err(Error::Schema {
                table: what.to_string(),
                message: format!(
                    "columns {:?} do not match the table's {:?}",
                    typed(&b.schema()),
                    typed(schema)
                ),
            });
        }
        rows += b.num_rows();
        w.write(b).map_err(perr)?;
    }
    w.close().map_err(perr)?;
    Ok(Encoded {
        bytes: Bytes::from(buf),
        rows,
        stats: stats(
            schema,
            &batches.iter().map(|b| b.columns()).collect::<Vec<_>>(),
            rows,
        ),
    })
}

/// [`encode`] for one batch given as columns, where a text column may come as a dictionary
/// of `UInt32` codes into non-null strings: those are written from the codes, without hashing
/// and comparing each row's text (see `coded.rs`). Other columns go through the Arrow writer.
pub fn encode_columns(
    schema: &SchemaRef,
    columns: &[ArrayRef],
    what: &str,
) -> Result<Encoded, Error> {
    use parquet::arrow::arrow_writer::compute_leaves;
    let perr = |source| Error::Parquet {
        path: what.to_string(),
        source,
    };
    let rows = columns.first().map_or(0, |c| c.len());
    let fits = |f: &arrow::datatypes::Field, c: &ArrayRef| {
        c.len() == rows
            && (c.data_type() == f.data_type()
                || (f.data_type() == &DataType::Utf8
                    && c.data_type()
                        == &DataType::Dictionary(
                            Box::new(DataType::UInt32),
                            Box::new(DataType::Utf8),
                        )))
    };
    if columns.len() != schema.fields().len()
        || !schema.fields().iter().zip(columns).all(|(f, c)| fits(f, c))
    {
        return Err(Error::Schema {
            table: what.to_string(),
            message: format!(
                "columns {:?} ({rows} rows) do not match the table's {:?}",
                columns
                    .iter()
                    .map(|c| format!("{}[{}]", c.data_type(), c.len()))
                    .collect::<Vec<_>>(),
                typed(schema)
            ),
        });
    }
    let mut buf = Vec::new();
    // The Arrow writer's setup (schema conversion, the embedded Arrow schema), then its
    // column writers one row group at a time.
    let (mut w, factory) =
        ArrowWriter::try_new(&mut buf, schema.clone(), Some(writer_properties(schema)))
            .and_then(ArrowWriter::into_serialized_writer)
            .map_err(perr)?;
    let (descrs, props) = (w.schema_descr().columns().to_vec(), w.properties().clone());
    let step = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
    let mut at = 0;
    while at < rows {
        let len = step.min(rows - at);
        let writers = factory.create_column_writers(at / step).map_err(perr)?;
        let mut rg = w.next_row_group().map_err(perr)?;
        for (i, ((field, column), mut cw)) in
            schema.fields().iter().zip(columns).zip(writers).enumerate()
        {
            let column = column.slice(at, len);
            let descr = &descrs[i];
            if let Some(d) = coded::as_coded(&column, descr, &props) {
                let c = coded::write(descr, &props, d).map_err(perr)?;
                rg.append_column(&c.bytes, c.close).map_err(perr)?;
                continue;
            }
            let column = match column.data_type() == field.data_type() {
                true => column,
                false => {
                    arrow::compute::cast(&column, field.data_type()).map_err(|e| perr(e.into()))?
                }
            };
            for leaf in compute_leaves(field, &column).map_err(perr)? {
                cw.write(&leaf).map_err(perr)?;
            }
            cw.close()
                .and_then(|c| c.append_to_row_group(&mut rg))
                .map_err(perr)?;
        }
        rg.close().map_err(perr)?;
        at += len;
    }
    w.close().map_err(perr)?;
    Ok(Encoded {
        bytes: Bytes::from(buf),
        rows,
        stats: stats(schema, &[columns], rows),
    })
}

/// Reads a whole Parquet file into batches.
pub fn decode(bytes: Bytes, what: &str) -> Result<Vec<RecordBatch>, Error> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|source| Error::Parquet {
            path: what.to_string(),
            source,
        })?;
    reader
        .map(|b| {
            b.map_err(|e| Error::Corrupt {
                path: what.to_string(),
                message: e.to_string(),
            })
        })
        .collect()
}

/// Reads some text columns of a Parquet file (those of `names` it has) as dictionary arrays:
/// a scan for given values then looks at each distinct value once, not at every row.
pub fn decode_dictionaries(
    bytes: Bytes,
    names: &[&str],
    what: &str,
) -> Result<Vec<RecordBatch>, Error> {
    use parquet::arrow::arrow_reader::ArrowReaderOptions;
    let perr = |source| Error::Parquet {
        path: what.to_string(),
        source,
    };
    let plain = ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).map_err(perr)?;
    let fields: Vec<arrow::datatypes::FieldRef> = plain
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 if names.contains(&f.name().as_str()) => {
                Arc::new(f.as_ref().clone().with_data_type(DataType::Dictionary(
                    Box::new(DataType::Int32),
                    Box::new(DataType::Utf8),
                )))
            }
            _ => f.clone(),
        })
        .collect();
    let hint = Arc::new(arrow::datatypes::Schema::new(fields));
    let b = ParquetRecordBatchReaderBuilder::try_new_with_options(
        bytes,
        ArrowReaderOptions::new().with_schema(hint),
    )
    .map_err(perr)?;
    let mask = parquet::arrow::ProjectionMask::columns(b.parquet_schema(), names.iter().copied());
    b.with_projection(mask)
        .build()
        .map_err(perr)?
        .map(|b| {
            b.map_err(|e| Error::Corrupt {
                path: what.to_string(),
                message: e.to_string(),
            })
        })
        .collect()
}

/// Min and max of a column as JSON values, for the types worth skipping by.
fn min_max(a: &ArrayRef) -> Option<(serde_json::Value, serde_json::Value)> {
    use serde_json::json;
    match a.data_type() {
        DataType::Int64 => {
            let p = a.as_primitive::<Int64Type>();
            Some((
                json!(arrow::compute::min(p)?),
                json!(arrow::compute::max(p)?),
            ))
        }
        DataType::Int32 => {
            let p = a.as_primitive::<Int32Type>();
            Some((
                json!(arrow::compute::min(p)?),
                json!(arrow::compute::max(p)?),
            ))
        }
        DataType::Timestamp(_, _) => {
            let p = a.as_primitive::<TimestampMicrosecondType>();
            let fmt = |v: i64| {
                chrono::DateTime::from_timestamp_micros(v)
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
            };
            Some((
                json!(fmt(arrow::compute::min(p)?)?),
                json!(fmt(arrow::compute::max(p)?)?),
            ))
        }
        _ => None,
    }
}

/// Delta's per-file statistics (`numRecords`, `nullCount`, `minValues`, `maxValues`) of
/// batches given as their columns.
fn stats(schema: &SchemaRef, batches: &[&[ArrayRef]], rows: usize) -> String {
    use serde_json::{Map, Value};
    let (mut nulls, mut mins, mut maxs) = (Map::new(), Map::new(), Map::new());
    for (i, field) in schema.fields().iter().enumerate() {
        let cols: Vec<&ArrayRef> = batches.iter().map(|b| &b[i]).collect();
        let n: usize = cols.iter().map(|c| c.logical_null_count()).sum();
        nulls.insert(field.name().clone(), Value::from(n));
        let mut lo: Option<Value> = None;
        let mut hi: Option<Value> = None;
        for c in &cols {
            if let Some((a, b)) = min_max(c) {
                let less = |x: &Value, y: &Value| match (x.as_i64(), y.as_i64()) {
                    (Some(x), Some(y)) => x < y,
                    _ => x.as_str() < y.as_str(),
                };
                if lo.as_ref().is_none_or(|l| less(&a, l)) {
                    lo = Some(a);
                }
                if hi.as_ref().is_none_or(|h| less(h, &b)) {
                    hi = Some(b);
                }
            }
        }
        if let (Some(a), Some(b)) = (lo, hi) {
            mins.insert(field.name().clone(), a);
            maxs.insert(field.name().clone(), b);
        }
    }
    let mut m = Map::new();
    m.insert("numRecords".into(), Value::from(rows));
    m.insert("minValues".into(), Value::Object(mins));
    m.insert("maxValues".into(), Value::Object(maxs));
    m.insert("nullCount".into(), Value::Object(nulls));
    Value::Object(m).to_string()
}

/// An empty batch of a schema (a table that must exist with no rows).
pub fn empty(schema: &SchemaRef) -> RecordBatch {
    RecordBatch::new_empty(Arc::clone(schema))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn climbing_integers_are_delta_encoded_and_read_back() {
        use arrow::array::{Decimal128Array, Int32Array};
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let schema = Arc::new(Schema::new(vec![
            Field::new("source_offset", DataType::Int64, false),
            Field::new("flow_start", crate::registry::ts(), false),
            Field::new("srcport", DataType::Int32, true),
            // A listed name holding a decimal keeps the plain encoding (delta is for integers).
            Field::new("bytes", DataType::Decimal128(38, 0), false),
        ]));
        let n = 5000i64;
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values((0..n).map(|i| i * 97 + i % 7))),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        (0..n).map(|i| 1_790_000_000_000_000 + (i % 600) * 1_000_000),
                    )
                    .with_timezone("UTC"),
                ),
                Arc::new(Int32Array::from_iter(
                    (0..n).map(|i| (i % 11 != 0).then_some((i * 7919 % 65536) as i32)),
                )),
                Arc::new(
                    Decimal128Array::from_iter_values((0..n).map(|i| i128::from(i) << 70))
                        .with_precision_and_scale(38, 0)
                        .unwrap(),
                ),
            ],
        )
        .unwrap();
        let e = encode(&schema, std::slice::from_ref(&b), "t").unwrap();
        let back = decode(e.bytes.clone(), "t").unwrap();
        assert_eq!(arrow::compute::concat_batches(&schema, &back).unwrap(), b);
        let meta = SerializedFileReader::new(e.bytes).unwrap();
        let rg = meta.metadata().row_group(0);
        for (i, want) in [(0, true), (1, true), (2, true), (3, false)] {
            let c = rg.column(i);
            assert_eq!(
                c.encodings().any(|x| x == Encoding::DELTA_BINARY_PACKED),
                want,
                "{}",
                c.column_path()
            );
        }
    }

    #[test]
    fn round_trip_and_stats() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("t", crate::registry::ts(), false),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(5), None, Some(-2)])),
                Arc::new(StringArray::from(vec!["a", "b", "c"])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![0, 3_600_000_000, 7_200_000_000])
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        let e = encode(&schema, &[b.clone(), b.clone()], "t").unwrap();
        assert_eq!(e.rows, 6);
        let back = decode(e.bytes, "t").unwrap();
        assert_eq!(back.iter().map(|b| b.num_rows()).sum::<usize>(), 6);
        let s: serde_json::Value = serde_json::from_str(&e.stats).unwrap();
        assert_eq!(s["numRecords"], 6);
        assert_eq!(s["nullCount"]["n"], 2);
        assert_eq!(
            (&s["minValues"]["n"], &s["maxValues"]["n"]),
            (&(-2).into(), &5.into())
        );
        assert_eq!(s["maxValues"]["t"], "1970-01-01T02:00:00.000000Z");
        assert!(s["minValues"].get("s").is_none(), "no string bounds");
        let wrong = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, true)]));
        assert!(encode(&wrong, &[b], "t").is_err());
    }
}
