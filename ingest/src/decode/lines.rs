//! Lines out of a buffered reader, taken from its buffer in place: the complete lines of each
//! buffer fill are found, and checked for text (UTF-8 without NUL), all at once. Copying each
//! line out and checking it on its own measured at 7% of ingest CPU.

use std::io::BufRead;
use std::ops::ControlFlow;

use crate::limits::read_line;

/// One line as read.
#[derive(Debug)]
pub(crate) struct Line<'a> {
    /// The line's bytes with its end of line, cut to the line limit when longer.
    pub raw: &'a [u8],
    /// The same bytes as text, when they are known to be UTF-8 without NUL; `None` leaves
    /// the check to the caller.
    pub text: Option<&'a str>,
    /// Bytes the line took in the input (all of it, end of line included).
    pub consumed: u64,
    /// Whether it is longer than the limit (then `raw` holds only the first `max` bytes).
    pub long: bool,
}

/// A read that failed part way through a line: the line so far is in the caller's buffer.
#[derive(Debug)]
pub(crate) struct Cut {
    /// Why the read failed.
    pub source: std::io::Error,
    /// Bytes of the unfinished line that were read.
    pub consumed: u64,
}

/// Calls `f` with every line of `r` in order until the end of input or until `f` breaks.
/// Lines are read as [`read_line`] reads them (the same bytes, lengths and limit); `buf` is
/// scratch space for a line that runs past the reader's buffer, and holds the unfinished
/// line when the read fails.
pub(crate) fn each_line<R: BufRead + ?Sized>(
    r: &mut R,
    max: usize,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(Line<'_>) -> ControlFlow<()>,
) -> Result<(), Cut> {
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                buf.clear();
                return Err(Cut {
                    source,
                    consumed: 0,
                });
            }
        };
        let Some(last) = memchr::memrchr(b'\n', avail) else {
            if avail.is_empty() {
                return Ok(());
            }
            // A line that runs past the buffer, or a last line without an end of line.
            buf.clear();
            let mut n = 0;
            let long = match read_line(r, buf, max, &mut n) {
                Ok(long) => long,
                Err(source) => {
                    return Err(Cut {
                        source,
                        consumed: n,
                    })
                }
            };
            let line = Line {
                raw: buf,
                text: None,
                consumed: n,
                long,
            };
            if f(line).is_break() {
                return Ok(());
            }
            continue;
        };
        let chunk = &avail[..=last];
        let text = simdutf8::basic::from_utf8(chunk)
            .ok()
            .filter(|_| memchr::memchr(0, chunk).is_none());
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', chunk) {
            let n = end + 1 - start;
            let long = n > max;
            let line = match long {
                true => Line {
                    raw: &chunk[start..start + max],
                    text: None,
                    consumed: n as u64,
                    long,
                },
                false => Line {
                    raw: &chunk[start..=end],
                    // Both ends follow a newline or the start of the buffer's text: char
                    // boundaries.
                    text: text.map(|t| &t[start..=end]),
                    consumed: n as u64,
                    long,
                },
            };
            if f(line).is_break() {
                return Ok(());
            }
            start = end + 1;
        }
        r.consume(last + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    /// What `read_line` called repeatedly makes of the input: (bytes kept, consumed, long).
    fn by_read_line(input: &[u8], cap: usize, max: usize) -> Vec<(Vec<u8>, u64, bool)> {
        let mut r = BufReader::with_capacity(cap, input);
        let mut out = Vec::new();
        loop {
            let (mut buf, mut n) = (Vec::new(), 0);
            let long = read_line(&mut r, &mut buf, max, &mut n).unwrap();
            if n == 0 {
                return out;
            }
            out.push((buf, n, long));
        }
    }

    fn by_each_line(input: &[u8], cap: usize, max: usize) -> Vec<(Vec<u8>, u64, bool)> {
        let mut r = BufReader::with_capacity(cap, input);
        let mut out = Vec::new();
        each_line(&mut r, max, &mut Vec::new(), |l| {
            if let Some(t) = l.text {
                assert_eq!(t.as_bytes(), l.raw, "text and bytes differ");
                assert!(!t.contains('\0'));
            }
            out.push((l.raw.to_vec(), l.consumed, l.long));
            ControlFlow::Continue(())
        })
        .unwrap();
        out
    }

    proptest::proptest! {
        #[test]
        fn lines_are_read_as_read_line_reads_them(
            input in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b'\n'),
                    proptest::strategy::Just(b'\r'),
                    proptest::strategy::Just(0u8),
                    proptest::strategy::Just(0xC3u8),
                    proptest::strategy::Just(0xA9u8),
                    b'a'..=b'e',
                ],
                0..300,
            ),
            cap in 1usize..64,
            max in 1usize..40,
        ) {
            proptest::prop_assert_eq!(
                by_each_line(&input, cap, max),
                by_read_line(&input, cap, max)
            );
        }
    }

    #[test]
    fn text_is_given_only_for_utf8_without_nul() {
        let input = "é ok\nnul\0here\nplain\n".as_bytes();
        let mut seen = Vec::new();
        each_line(&mut BufReader::new(input), 100, &mut Vec::new(), |l| {
            seen.push(l.text.map(str::to_string));
            ControlFlow::Continue(())
        })
        .unwrap();
        // A NUL anywhere in a buffer fill leaves the check of every line in it to the caller.
        assert_eq!(seen, vec![None, None, None]);
        let mut seen = Vec::new();
        let clean = "é ok\nplain\nlast".as_bytes();
        each_line(&mut BufReader::new(clean), 100, &mut Vec::new(), |l| {
            seen.push(l.text.map(str::to_string));
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![
                Some("é ok\n".to_string()),
                Some("plain\n".to_string()),
                None
            ]
        );
    }

    #[test]
    fn breaking_stops_the_reading() {
        let mut n = 0;
        each_line(
            &mut BufReader::new(&b"a\nb\nc\n"[..]),
            10,
            &mut Vec::new(),
            |_| {
                n += 1;
                if n == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .unwrap();
        assert_eq!(n, 2);
    }

    /// Gives `good` then fails.
    struct Failing<'a>(&'a [u8]);
    impl Read for Failing<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::other("cut off"));
            }
            let k = self.0.len().min(out.len());
            out[..k].copy_from_slice(&self.0[..k]);
            self.0 = &self.0[k..];
            Ok(k)
        }
    }

    #[test]
    fn a_failed_read_keeps_the_unfinished_line() {
        let (mut buf, mut lines) = (Vec::new(), Vec::new());
        let r = each_line(
            &mut BufReader::with_capacity(4, Failing(b"ab\ncdefg")),
            100,
            &mut buf,
            |l| {
                lines.push(l.raw.to_vec());
                ControlFlow::Continue(())
            },
        );
        let cut = r.unwrap_err();
        assert_eq!(lines, vec![b"ab\n".to_vec()]);
        assert_eq!(buf, b"cdefg");
        assert_eq!(cut.consumed, 5);
        assert_eq!(cut.source.to_string(), "cut off");
        // At a line boundary nothing is unfinished.
        let mut buf = b"stale".to_vec();
        let r = each_line(&mut BufReader::new(Failing(b"ab\n")), 100, &mut buf, |_| {
            ControlFlow::Continue(())
        });
        assert_eq!(r.unwrap_err().consumed, 0);
        assert!(buf.is_empty());
    }
}
