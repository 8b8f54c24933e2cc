//! A text column of few distinct values kept as one code per row and finished as an Arrow
//! dictionary, which `parquet_io::encode_columns` writes from the codes. A value the
//! inventory gives through an endpoint ENI is coded once per ENI, so such rows cost no
//! string copy, hash or comparison at all.

use std::sync::Arc;

use arrow::array::{ArrayRef, DictionaryArray, StringArray, UInt32Array};
use arrow::datatypes::UInt32Type;

/// The code of a null value.
const NULL: u32 = u32::MAX;

/// Builds one text column as codes into the distinct values of the rows appended since the
/// last [`finish`](CodedText::finish).
pub(super) struct CodedText {
    codes: Vec<u32>,
    values: Vec<String>,
    index: rustc_hash::FxHashMap<String, u32>,
    /// The code each inventory ENI's value got (by ENI index), [`NULL`] while unasked.
    of_eni: Vec<u32>,
    /// The codes of `ACCEPT` and `REJECT`, [`NULL`] while unused.
    actions: [u32; 2],
}

impl Default for CodedText {
    fn default() -> Self {
        CodedText {
            codes: Vec::new(),
            values: Vec::new(),
            index: Default::default(),
            of_eni: Vec::new(),
            actions: [NULL; 2],
        }
    }
}

impl CodedText {
    /// Appends a record's own value.
    pub fn push(&mut self, value: Option<&str>) {
        let code = value.map_or(NULL, |v| self.code(v));
        self.codes.push(code);
    }

    /// Appends the value the inventory gives for endpoint ENI `eni`; `value` is asked only
    /// for the first row of each ENI (rows must come from one inventory until `finish`).
    pub fn push_of_eni<'v>(&mut self, eni: usize, value: impl FnOnce() -> &'v str) {
        if self.of_eni.len() <= eni {
            self.of_eni.resize(eni + 1, NULL);
        }
        let mut code = self.of_eni[eni];
        if code == NULL {
            code = self.code(value());
            self.of_eni[eni] = code;
        }
        self.codes.push(code);
    }

    /// Appends a flow log's `action`: `ACCEPT` and `REJECT` are told apart inline, without
    /// hashing; anything else is coded as [`push`](Self::push) codes it.
    pub fn push_action(&mut self, value: Option<&str>) {
        let (k, v) = match value {
            Some(v @ "ACCEPT") => (0, v),
            Some(v @ "REJECT") => (1, v),
            other => return self.push(other),
        };
        let mut code = self.actions[k];
        if code == NULL {
            code = self.code(v);
            self.actions[k] = code;
        }
        self.codes.push(code);
    }

    fn code(&mut self, v: &str) -> u32 {
        if let Some(&c) = self.index.get(v) {
            return c;
        }
        let c = self.values.len() as u32;
        self.values.push(v.to_string());
        self.index.insert(v.to_string(), c);
        c
    }

    /// Takes the rows as a `Dictionary(UInt32, Utf8)` array and starts afresh (values too:
    /// a batch's dictionary holds only what its rows use, and never grows past a batch).
    pub fn finish(&mut self) -> ArrayRef {
        let codes: UInt32Array = std::mem::take(&mut self.codes)
            .into_iter()
            .map(|c| (c != NULL).then_some(c))
            .collect();
        let values = StringArray::from(std::mem::take(&mut self.values));
        self.index.clear();
        self.of_eni.clear();
        self.actions = [NULL; 2];
        Arc::new(DictionaryArray::<UInt32Type>::new(codes, Arc::new(values)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    fn spelled(a: &ArrayRef) -> Vec<Option<String>> {
        let a = arrow::compute::cast(a, &arrow::datatypes::DataType::Utf8).unwrap();
        a.as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    #[test]
    fn rows_spell_what_was_pushed_and_each_eni_is_asked_once() {
        let mut c = CodedText::default();
        let mut asked = Vec::new();
        let names = ["vpc-a", "vpc-b", "vpc-a"];
        for (eni, own) in [(Some(2), None), (None, Some("vpc-x")), (Some(0), None)]
            .into_iter()
            .cycle()
            .take(9)
        {
            match eni {
                Some(e) => c.push_of_eni(e, || {
                    asked.push(e);
                    names[e]
                }),
                None => c.push(own),
            }
        }
        c.push(None);
        let a = c.finish();
        let want = ["vpc-a", "vpc-x", "vpc-a"].map(|s| Some(s.to_string()));
        let mut want: Vec<_> = want.iter().cycle().take(9).cloned().collect();
        want.push(None);
        assert_eq!(spelled(&a), want);
        assert_eq!(asked, vec![2, 0]);
        // ENIs 2 and 0 spell the same text: one value.
        assert_eq!(a.as_any_dictionary().values().len(), 2);
        assert_eq!(a.null_count(), 1);
        // Actions: inline for the two AWS writes, coded like any value otherwise.
        for v in [
            Some("REJECT"),
            Some("ACCEPT"),
            None,
            Some("odd"),
            Some("REJECT"),
        ] {
            c.push_action(v);
        }
        c.push("ACCEPT".into());
        let a = c.finish();
        let want = [
            Some("REJECT"),
            Some("ACCEPT"),
            None,
            Some("odd"),
            Some("REJECT"),
            Some("ACCEPT"),
        ];
        assert_eq!(spelled(&a), want.map(|v| v.map(str::to_string)));
        assert_eq!(a.as_any_dictionary().values().len(), 3);
        // The next batch starts from nothing and asks again.
        c.push_of_eni(2, || "vpc-new");
        assert_eq!(spelled(&c.finish()), vec![Some("vpc-new".to_string())]);
    }
}
