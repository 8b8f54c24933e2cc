//! Content detection and decoder choice: what an input holds is told by its first bytes
//! (Parquet, JSON metric streams, Prometheus text, OpenTelemetry protobuf or flow-log text),
//! unless its source says. A stream input (Kafka messages joined by newlines) is never guessed
//! from its first message.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::flow_parquet::{ParquetDecoder, PARQUET_MAGIC};
use super::flow_text::TextDecoder;
use super::metric_stream::MetricStreamDecoder;
use super::otel::OtelDecoder;
use super::prometheus::PrometheusDecoder;
use super::{Content, DecodeError, DecodeStats, Decoder, Event};
use crate::fields::Format;
use crate::limits::Bounds;

/// How much of an input is read to tell what it holds.
pub const HEAD: usize = 4096;

/// What the first bytes say an input holds, given what its source declares.
pub fn detect(head: &[u8], declared: Content, stream: bool) -> Content {
    let is_parquet = head.len() >= 4 && head[..4] == PARQUET_MAGIC[..];
    match declared {
        Content::Auto if stream => Content::FlowLogs,
        Content::Auto if super::is_json(head) => Content::MetricStream,
        Content::Auto if super::prometheus::looks_like(head) => Content::Prometheus,
        Content::Auto if !is_parquet && super::otel::looks_like(head) => Content::OpenTelemetry,
        c => c,
    }
}

/// Why an input could not be decoded to the end.
#[derive(Debug)]
pub enum RouteError {
    /// Its bytes could not be read (after the source's retries): reading again may work.
    Read(std::io::Error),
    /// Its bytes are not a valid input: reading again will not help until they change.
    Content(String),
}

/// An input to decode: its bytes, what its source declares, and where it is.
pub struct Input<'p, R> {
    /// The input's bytes from the start.
    pub reader: R,
    /// What its source says it holds.
    pub declared: Content,
    /// Kafka messages joined by newlines (no header, contents declared by the source).
    pub stream: bool,
    /// Format of headerless text.
    pub format: &'p Format,
    /// The local file, when it is one (Parquet is read in place, with random access).
    pub local: Option<&'p Path>,
    /// The limits this input is held to.
    pub bounds: Bounds,
}

/// Reads an input's first bytes, picks its decoder, and feeds every event to `sink`.
pub fn decode<R: Read>(
    mut input: Input<'_, R>,
    sink: &mut dyn FnMut(Event<'_, '_>),
) -> Result<DecodeStats, RouteError> {
    let mut head = vec![0u8; HEAD];
    let mut n = 0;
    while n < head.len() {
        match input.reader.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(RouteError::Read(e)),
        }
    }
    head.truncate(n);
    let content = detect(&head, input.declared, input.stream);
    let is_parquet = n >= 4 && head[..4] == PARQUET_MAGIC[..];
    let (stream, bounds) = (input.stream, input.bounds);
    let whole = std::io::Cursor::new(head).chain(input.reader);
    let res = match content {
        Content::MetricStream => {
            let d = MetricStreamDecoder::new(whole).bounded(bounds);
            if stream { d.messages() } else { d }.decode(sink)
        }
        Content::OpenTelemetry if stream => {
            // Kafka messages are joined with newlines, which binary records cannot take.
            return Err(RouteError::Content("OpenTelemetry metric streams are read from files and S3, not Kafka; send JSON (content = \"metric-stream\") through Kafka".into()));
        }
        Content::OpenTelemetry => OtelDecoder::new(whole).bounded(bounds).decode(sink),
        Content::Prometheus => {
            let d = PrometheusDecoder::new(whole).bounded(bounds);
            if stream { d.messages() } else { d }.decode(sink)
        }
        _ if !stream && is_parquet => parquet(whole, input.local, &bounds, sink)?,
        _ => {
            let d = TextDecoder::new(whole, input.format.clone()).bounded(bounds);
            if stream { d.headerless() } else { d }.decode(sink)
        }
    };
    res.map_err(|e: DecodeError| RouteError::Content(e.to_string()))
}

/// Objects up to this size are read into memory to decode Parquet; larger ones are spilled to
/// a temporary file, so memory never follows an object's size.
const PARQUET_IN_MEMORY: usize = 8 << 20;

/// Parquet needs random access: a local file is read in place; an object is read into memory
/// when small, else into an unlinked temporary file (AWS writes flow-log Parquet files of up
/// to 75 MB, and a listing's size is only a claim).
fn parquet(
    whole: impl Read,
    local: Option<&Path>,
    bounds: &Bounds,
    sink: &mut dyn FnMut(Event<'_, '_>),
) -> Result<Result<DecodeStats, DecodeError>, RouteError> {
    if let Some(path) = local {
        let f = File::open(path).map_err(RouteError::Read)?;
        return Ok(ParquetDecoder::new(f).bounded(*bounds).decode(sink));
    }
    let mut head = Vec::new();
    let mut whole = whole;
    (&mut whole)
        .take(PARQUET_IN_MEMORY as u64 + 1)
        .read_to_end(&mut head)
        .map_err(RouteError::Read)?;
    if head.len() <= PARQUET_IN_MEMORY {
        let mut d = ParquetDecoder::new(bytes::Bytes::from(head)).bounded(*bounds);
        return Ok(d.decode(sink));
    }
    let mut spill = tempfile::tempfile().map_err(RouteError::Read)?;
    std::io::Write::write_all(&mut spill, &head).map_err(RouteError::Read)?;
    drop(head);
    std::io::copy(&mut whole, &mut spill).map_err(RouteError::Read)?;
    Ok(ParquetDecoder::new(spill).bounded(*bounds).decode(sink))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_are_told_by_their_first_bytes_unless_declared() {
        let json = br#"{"metric_stream_name":"m"}"#;
        assert_eq!(detect(json, Content::Auto, false), Content::MetricStream);
        assert_eq!(
            detect(json, Content::Auto, true),
            Content::FlowLogs,
            "streams never guess"
        );
        assert_eq!(
            detect(b"version account-id", Content::Auto, false),
            Content::Auto
        );
        assert_eq!(detect(b"PAR1....", Content::Auto, false), Content::Auto);
        assert_eq!(
            detect(b"anything", Content::Prometheus, true),
            Content::Prometheus
        );
    }
}
