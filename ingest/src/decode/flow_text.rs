//! Text flow logs: an optional header line naming the fields, then one record per line;
//! gzip or plain, told apart by the gzip magic bytes rather than the file name.

use std::io::{BufRead, BufReader, Read};

use super::gunzip::Held;
use super::lines::each_line;
use super::{
    cut_raw, parse_line, BadInput, DecodeError, DecodeStats, Decoder, Event, FlowRecord, Position,
};
use crate::fields::{lookup, Format};
use crate::limits::Bounds;
use std::ops::ControlFlow;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const READ_BUF: usize = 256 * 1024;

/// Decodes flow-log text from any reader.
pub struct TextDecoder<R: Read> {
    reader: Option<R>,
    fallback: Format,
    require_metering: bool,
    headerless: bool,
    bounds: Bounds,
}

impl<R: Read> TextDecoder<R> {
    /// A decoder that uses the file's header when it has one, else `fallback` (the source's
    /// configured format, v2 by default).
    pub fn new(reader: R, fallback: Format) -> Self {
        TextDecoder {
            reader: Some(reader),
            fallback,
            require_metering: true,
            headerless: false,
            bounds: Bounds::default(),
        }
    }

    /// Holds the input to these limits (line length, decompressed size).
    pub fn bounded(mut self, bounds: Bounds) -> Self {
        self.bounds = bounds;
        self
    }

    /// Input without a header line whose lines are independent messages (a Kafka partition
    /// range): every line uses the fallback format, and a binary line is one bad line, not a
    /// reason to reject the rest.
    pub fn headerless(mut self) -> Self {
        self.headerless = true;
        self
    }

    /// Accept formats that lack the fields metering needs (for inspecting arbitrary logs).
    pub fn allow_unmeterable(mut self) -> Self {
        self.require_metering = false;
        self
    }
}

/// Whether these first bytes start a gzip stream.
pub fn is_gzip(head: &[u8]) -> bool {
    head.len() >= 2 && head[..2] == GZIP_MAGIC
}

enum FirstLine {
    Header(Format),
    Data,
    Unusable(String),
}

/// Tells a header line from a first data line. A header starts with a known field name, or
/// consists of field-like names at least one of which is known; a line that parses against
/// the configured format is data.
fn classify_first(line: &str, fallback: &Format) -> FirstLine {
    let first = match line.split_ascii_whitespace().next() {
        Some(t) => t.trim_start_matches("${").trim_end_matches('}'),
        None => return FirstLine::Data,
    };
    let header = || match Format::parse(line) {
        Ok(f) => FirstLine::Header(f),
        Err(e) => FirstLine::Unusable(format!("unusable header: {e}")),
    };
    if lookup(first).is_some() {
        return header();
    }
    if first.bytes().all(|b| b.is_ascii_digit()) || first == "-" {
        return FirstLine::Data;
    }
    let mut spans = Vec::new();
    let mut probe = FlowRecord::default();
    if parse_line(fallback, line, &mut spans, &mut probe).is_ok() {
        return FirstLine::Data;
    }
    let names_like = line.split_ascii_whitespace().all(|t| {
        t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_${}".contains(&b))
    });
    match Format::parse(line) {
        Ok(f) if names_like && f.known_count() > 0 => FirstLine::Header(f),
        Err(e) if names_like => FirstLine::Unusable(format!("unusable header: {e}")),
        _ => FirstLine::Data,
    }
}

impl<R: Read> Decoder for TextDecoder<R> {
    // One function on purpose: this is the hot loop of ingest (millions of lines a second per
    // core), and keeping the line buffer, the parsed format and the record in one frame
    // measured faster than splitting it into helpers that pass them around.
    fn decode(&mut self, sink: &mut dyn FnMut(Event<'_, '_>)) -> Result<DecodeStats, DecodeError> {
        let raw = self
            .reader
            .take()
            .expect("decode is called once per decoder");
        let mut head = BufReader::with_capacity(READ_BUF, raw);
        // Stream messages are text: a message that happens to start like gzip is a bad line.
        let gz = match head.fill_buf() {
            Ok(b) => !self.headerless && is_gzip(b),
            Err(e) => {
                return Err(DecodeError::Io {
                    uri: String::new(),
                    source: e,
                })
            }
        };
        let mut held = None;
        let mut reader: Box<dyn BufRead> = if gz {
            super::gunzip::open(held.insert(Held::take()), head, &self.bounds)
        } else {
            Box::new(head)
        };

        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut spans = Vec::with_capacity(32);
        let mut format: Option<Format> = self.headerless.then(|| self.fallback.clone());
        // Set when the whole file is unusable: every further line is counted against it.
        let mut file_bad: Option<BadInput> = None;
        let (mut line_no, mut offset) = (0u64, 0u64);
        let max_line = self.bounds.line;
        let read = each_line(&mut reader, max_line, &mut buf, |l| {
            line_no += 1;
            let pos = Position {
                line: line_no,
                offset,
            };
            offset += l.consumed;
            if l.long {
                let reason = format!(
                    "line is {} bytes, longer than the {max_line}-byte limit (max_line_bytes); skipped",
                    l.consumed
                );
                let bad = BadInput {
                    position: pos,
                    raw: cut_raw(l.raw),
                    records: 1,
                    reason: reason.clone(),
                };
                if let Some(fb) = file_bad.as_mut() {
                    fb.records += 1;
                } else if format.is_none() {
                    // Without its first line the file cannot be interpreted.
                    file_bad = Some(BadInput {
                        reason: format!("{reason}; it is the first line, so every line of this file is quarantined"),
                        ..bad
                    });
                    format = Some(self.fallback.clone());
                } else {
                    sink(Event::Bad(bad));
                }
                return ControlFlow::Continue(());
            }
            // The line without its end of line (and, first, a UTF-8 byte-order mark, which
            // would hide the header's first field name), as a byte range of `l.raw`.
            let mut end = l.raw.len();
            while end > 0 && matches!(l.raw[end - 1], b'\n' | b'\r') {
                end -= 1;
            }
            let line = &l.raw[..end];
            if line.iter().all(|b| *b == b' ' || *b == b'\t') {
                return ControlFlow::Continue(());
            }
            if let Some(bad) = file_bad.as_mut() {
                bad.records += 1;
                return ControlFlow::Continue(());
            }
            let begin = match format.is_none() && line.starts_with(b"\xEF\xBB\xBF") {
                true => 3,
                false => 0,
            };
            let line = &line[begin..];
            let checked = l
                .text
                .map(|t| &t[begin..end])
                .or_else(|| std::str::from_utf8(line).ok().filter(|t| !t.contains('\0')));
            let Some(text) = checked else {
                if format.is_none() {
                    // The first line is binary: this is not a text flow log at all.
                    sink(Event::Bad(BadInput {
                        position: pos,
                        reason:
                            "not a flow-log file: binary content (neither text, gzip nor Parquet)"
                                .to_string(),
                        raw: cut_raw(line),
                        records: 1,
                    }));
                    return ControlFlow::Break(());
                }
                sink(Event::Bad(BadInput {
                    position: pos,
                    reason: "line is not UTF-8 text".to_string(),
                    raw: cut_raw(line),
                    records: 1,
                }));
                return ControlFlow::Continue(());
            };
            if format.is_none() {
                match classify_first(text, &self.fallback) {
                    FirstLine::Header(f) => {
                        let missing = f.missing_for_metering();
                        if self.require_metering && !missing.is_empty() {
                            file_bad = Some(BadInput {
                                position: pos,
                                reason: format!(
                                    "header lacks fields needed for metering ({}); every record of this file is quarantined",
                                    missing.join(", ")
                                ),
                                raw: cut_raw(line),
                                records: 0,
                            });
                        }
                        format = Some(f);
                        return ControlFlow::Continue(());
                    }
                    FirstLine::Data => format = Some(self.fallback.clone()),
                    FirstLine::Unusable(reason) => {
                        file_bad = Some(BadInput {
                            position: pos,
                            reason: format!("{reason}; every line of this file is quarantined"),
                            raw: cut_raw(line),
                            records: 1,
                        });
                        format = Some(self.fallback.clone());
                        return ControlFlow::Continue(());
                    }
                }
            }
            let fmt = format.as_ref().expect("format set above");
            let mut rec = FlowRecord::default();
            match parse_line(fmt, text, &mut spans, &mut rec) {
                Ok(()) => sink(Event::Record(&rec, pos)),
                Err(reason) => sink(Event::Bad(BadInput {
                    position: pos,
                    reason,
                    raw: cut_raw(line),
                    records: 1,
                })),
            }
            ControlFlow::Continue(())
        });
        if let Err(cut) = read {
            // A cut-off or corrupt stream: keep everything before it, quarantine the partial
            // line (it may hold a truncated number) and say why the rest is lost.
            sink(Event::Bad(BadInput {
                position: Position {
                    line: line_no + 1,
                    offset,
                },
                reason: format!(
                    "{} stream is corrupt or cut off after {} bytes of text ({}); the rest of the file cannot be read",
                    if gz { "gzip" } else { "text" },
                    offset + cut.consumed,
                    cut.source
                ),
                raw: cut_raw(&buf),
                records: u64::from(!buf.is_empty()),
            }));
        }
        if let Some(bad) = file_bad {
            sink(Event::Bad(bad));
        }
        Ok(DecodeStats { lines: line_no })
    }
}

#[cfg(test)]
#[path = "flow_text_tests.rs"]
mod tests;
