//! CSV as linkmeter writes it for people (the finance and FOCUS exports, `sql --format csv`):
//! RFC 4180 quoting by the `csv-core` writer, and text cells neutralized against spreadsheet
//! formula injection.
//!
//! A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a `'` in
//! front (OWASP's advice) and is then always double-quoted: unquoted, a leading `'` makes CSV
//! sniffers (DuckDB's `read_csv` among them) guess `'` as the quote character and mis-read the
//! rows. Numbers are never neutralized: a negative amount must stay a number.

use csv_core::{QuoteStyle, WriteResult, Writer, WriterBuilder};

/// The neutralized form of a text cell, or `None` when it needs none.
pub fn neutralize(s: &str) -> Option<String> {
    s.starts_with(['=', '+', '-', '@', '\t', '\r'])
        .then(|| format!("'{s}"))
}

/// Builds CSV text row by row.
#[derive(Debug)]
pub struct CsvOut {
    out: Vec<u8>,
    necessary: Writer,
    always: Writer,
    row_open: bool,
}

impl Default for CsvOut {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvOut {
    /// An empty document.
    pub fn new() -> Self {
        CsvOut {
            out: Vec::new(),
            necessary: WriterBuilder::new()
                .quote_style(QuoteStyle::Necessary)
                .build(),
            always: WriterBuilder::new().quote_style(QuoteStyle::Always).build(),
            row_open: false,
        }
    }

    /// A row of fixed names (a header), quoted only where RFC 4180 needs it.
    pub fn header<S: AsRef<str>>(&mut self, names: &[S]) {
        for n in names {
            self.value(n.as_ref());
        }
        self.end_row();
    }

    /// A cell of free text (names, ids, descriptions): neutralized, then quoted if it was
    /// neutralized or holds a comma, quote or line break.
    pub fn text(&mut self, s: &str) -> &mut Self {
        match neutralize(s) {
            Some(n) => self.field(n.as_bytes(), true),
            None => self.field(s.as_bytes(), false),
        }
        self
    }

    /// A cell linkmeter formatted itself (a number, a date, a fixed token, or empty for null):
    /// never neutralized, quoted only where RFC 4180 needs it.
    pub fn value(&mut self, s: &str) -> &mut Self {
        self.field(s.as_bytes(), false);
        self
    }

    /// Ends the current row.
    pub fn end_row(&mut self) {
        if self.row_open {
            // Every field is followed by a delimiter; the row's last one becomes the newline.
            self.out.pop();
        }
        self.out.push(b'\n');
        self.row_open = false;
    }

    /// The document so far.
    pub fn finish(mut self) -> String {
        if self.row_open {
            self.end_row();
        }
        // Every byte written came from `&str` input or ASCII punctuation.
        String::from_utf8(self.out).unwrap_or_default()
    }

    fn field(&mut self, input: &[u8], force_quotes: bool) {
        let w = if force_quotes {
            &mut self.always
        } else {
            &mut self.necessary
        };
        // The worst case is every byte a quote: doubled, plus two quotes and a delimiter.
        let start = self.out.len();
        self.out.resize(start + 2 * input.len() + 3, 0);
        let (res, nin, n1) = w.field(input, &mut self.out[start..]);
        debug_assert!(matches!(res, WriteResult::InputEmpty) && nin == input.len());
        let (_, n2) = w.delimiter(&mut self.out[start + n1..]);
        self.out.truncate(start + n1 + n2);
        self.row_open = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[(&str, bool)]) -> String {
        let mut c = CsvOut::new();
        for (s, text) in cells {
            if *text {
                c.text(s);
            } else {
                c.value(s);
            }
        }
        c.end_row();
        c.finish()
    }

    #[test]
    fn formula_cells_are_neutralized_and_quoted() {
        assert_eq!(
            row(&[("=HYPERLINK(\"x\")", true)]),
            "\"'=HYPERLINK(\"\"x\"\")\"\n"
        );
        assert_eq!(row(&[("+1", true)]), "\"'+1\"\n");
        assert_eq!(row(&[("@SUM(A1)", true)]), "\"'@SUM(A1)\"\n");
        assert_eq!(row(&[("\tx", true)]), "\"'\tx\"\n");
        assert_eq!(
            row(&[("a,b", true), ("payments", true)]),
            "\"a,b\",payments\n"
        );
        assert_eq!(row(&[("line\nbreak", true)]), "\"line\nbreak\"\n");
    }

    #[test]
    fn values_are_not_neutralized_and_nulls_stay_empty() {
        assert_eq!(
            row(&[("-2.50", false), ("", false), ("x", true)]),
            "-2.50,,x\n"
        );
        assert_eq!(row(&[("", true), ("", false)]), ",\n");
    }

    #[test]
    fn a_reader_gets_the_cells_back() {
        let cells = ["=1+2", "a \"quoted\" name", "x,y", "-3", "plain", ""];
        let mut c = CsvOut::new();
        c.header(&["a", "b", "c", "d", "e", "f"]);
        for s in cells {
            c.text(s);
        }
        c.end_row();
        let text = c.finish();
        let mut r = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let rec = r.records().next().unwrap().unwrap();
        let got: Vec<&str> = rec.iter().collect();
        assert_eq!(
            got,
            ["'=1+2", "a \"quoted\" name", "x,y", "'-3", "plain", ""]
        );
    }
}
