//! Which stored rows an inventory change can re-attribute: those naming an ENI whose
//! connection, AZ or addresses changed (as the ENI a record was captured on or as the endpoint
//! it was attributed to), an address of such an ENI, or a region gained or lost. When only a
//! connection's lifetime changed, only the hours between its old and new times can change,
//! and files of other hours are not even opened.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray, RecordBatch, StringArray};

use crate::inventory::{ConnInfo, Index};

/// The columns [`Keys::touches`] reads.
pub const COLUMNS: &[&str] = &[
    "endpoint_eni",
    "interface_id",
    "srcaddr",
    "dstaddr",
    "region",
    "log_region",
];

/// The clock hours (Unix seconds of their start, both ends included) whose rows a change can
/// affect; `None` leaves that end open.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Hours {
    from: Option<i64>,
    to: Option<i64>,
}

impl Hours {
    /// Every hour.
    const ALL: Hours = Hours {
        from: None,
        to: None,
    };

    fn contains(&self, hour: i64) -> bool {
        self.from.is_none_or(|f| hour >= f) && self.to.is_none_or(|t| hour <= t)
    }

    /// The smallest span holding both.
    fn hull(self, o: Hours) -> Hours {
        Hours {
            from: self.from.zip(o.from).map(|(a, b)| a.min(b)),
            to: self.to.zip(o.to).map(|(a, b)| a.max(b)),
        }
    }
}

/// The hours a change of connection lifetime can affect (attribution's rule: a record is
/// outside the lifetime when it ends before `created` or starts at or after `deleted`). A
/// later `created` moves records that end before it: their rows are in hours up to its hour.
/// An earlier `deleted` moves records that start after it: rows from its hour on.
fn lifetime_hours(a: &ConnInfo, b: &ConnInfo) -> Hours {
    let hour = |t: i64| t.div_euclid(3600) * 3600;
    let mut h: Option<Hours> = None;
    let mut add = |x: Hours| h = Some(h.map_or(x, |y| y.hull(x)));
    if a.created != b.created {
        add(Hours {
            from: None,
            to: Some(hour(a.created.max(b.created))),
        });
    }
    if a.deleted != b.deleted {
        let first = match (a.deleted, b.deleted) {
            (Some(x), Some(y)) => x.min(y),
            (Some(x), None) | (None, Some(x)) => x,
            (None, None) => i64::MAX,
        };
        add(Hours {
            from: Some(hour(first)),
            to: None,
        });
    }
    h.unwrap_or(Hours::ALL)
}

/// What changed between two inventories, as the values stored rows hold, each with the hours
/// it can affect.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Keys {
    all: bool,
    enis: HashMap<String, Hours>,
    ips: HashMap<String, Hours>,
    regions: HashSet<String>,
}

/// What attribution reads of one ENI: a difference here can change a row's verdict. With
/// `lifetime` false, the connection's created and deleted times are left out.
fn signature(ix: &Index, e: usize, lifetime: bool) -> String {
    let eni = &ix.enis[e];
    let mut ips = eni.ips.clone();
    ips.sort();
    let mut conn = ix.conn_of(e).clone();
    if !lifetime {
        (conn.created, conn.deleted) = (0, None);
    }
    format!("{}|{ips:?}|{conn:?}", eni.az_id)
}

impl Keys {
    /// Every row.
    pub fn all() -> Keys {
        Keys {
            all: true,
            ..Default::default()
        }
    }

    /// Whether every row is a candidate.
    pub fn is_all(&self) -> bool {
        self.all
    }

    /// Whether nothing can change.
    pub fn is_empty(&self) -> bool {
        !self.all && self.enis.is_empty() && self.ips.is_empty() && self.regions.is_empty()
    }

    /// Adds another difference.
    pub fn merge(&mut self, o: Keys) {
        self.all |= o.all;
        for (mine, theirs) in [(&mut self.enis, o.enis), (&mut self.ips, o.ips)] {
            for (k, h) in theirs {
                let e = mine.entry(k).or_insert(h);
                *e = e.hull(h);
            }
        }
        self.regions.extend(o.regions);
    }

    /// What differs between the inventory rows were attributed under and the current one.
    pub fn between(old: &Index, new: &Index) -> Keys {
        let ids = |ix: &Index| -> HashMap<String, usize> {
            (0..ix.enis.len())
                .map(|e| (ix.enis[e].id.clone(), e))
                .collect()
        };
        let (a, b) = (ids(old), ids(new));
        let mut k = Keys::default();
        let mut add = |ix: &Index, e: usize, h: Hours| {
            let eni = &ix.enis[e];
            let mut one = Keys::default();
            one.enis.insert(eni.id.clone(), h);
            one.ips.extend(eni.ips.iter().map(|ip| (ip.to_string(), h)));
            k.merge(one);
        };
        for (id, &e) in &a {
            match b.get(id) {
                None => add(old, e, Hours::ALL),
                Some(&f) if signature(old, e, true) == signature(new, f, true) => {}
                Some(&f) if signature(old, e, false) == signature(new, f, false) => {
                    let h = lifetime_hours(old.conn_of(e), new.conn_of(f));
                    add(old, e, h);
                }
                Some(&f) => {
                    add(old, e, Hours::ALL);
                    add(new, f, Hours::ALL);
                }
            }
        }
        for (id, &f) in &b {
            if !a.contains_key(id) {
                add(new, f, Hours::ALL);
            }
        }
        let (ra, rb): (HashSet<&str>, HashSet<&str>) =
            (old.regions().collect(), new.regions().collect());
        k.regions = ra
            .symmetric_difference(&rb)
            .map(|r| r.to_string())
            .collect();
        k
    }

    /// Whether rows of this clock hour (a file's partition; `None` when unknown) can change.
    pub fn may_touch_hour(&self, hour: Option<i64>) -> bool {
        let Some(h) = hour else {
            return !self.is_empty();
        };
        self.all
            || !self.regions.is_empty()
            || self
                .enis
                .values()
                .chain(self.ips.values())
                .any(|w| w.contains(h))
    }

    /// Whether a row of `b` (with some of [`COLUMNS`], as text or dictionaries of text) may
    /// be a candidate. A dictionary's values are checked whether or not a row uses them: a
    /// file read for nothing costs time, never a wrong row.
    pub fn touches(&self, b: &RecordBatch) -> bool {
        if self.all {
            return true;
        }
        let (enis, ips) = (&self.enis, &self.ips);
        holds(b, "endpoint_eni", &|v| enis.contains_key(v))
            || holds(b, "interface_id", &|v| enis.contains_key(v))
            || holds(b, "srcaddr", &|v| ips.contains_key(v))
            || holds(b, "dstaddr", &|v| ips.contains_key(v))
            || holds(b, "log_region", &|v| self.regions.contains(v))
            || holds(b, "region", &|v| self.regions.contains(v))
    }
}

/// Whether a text (or dictionary of text) column of `b` holds a value `hit` picks.
fn holds(b: &RecordBatch, name: &str, hit: &dyn Fn(&str) -> bool) -> bool {
    let Some(c) = b.column_by_name(name) else {
        return false;
    };
    let values = match c.as_any_dictionary_opt() {
        Some(d) => d.values().clone(),
        None => c.clone(),
    };
    // A column of another type than the writers produce: assume a hit (reading a file for
    // nothing costs time; skipping one could leave a row wrong).
    values
        .as_string_opt::<i32>()
        .is_none_or(|a: &StringArray| (0..a.len()).any(|i| a.is_valid(i) && hit(a.value(i))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;
    use std::sync::Arc;

    fn ix(text: &str) -> Index {
        Inventory::from_toml(text, "t").unwrap()
    }

    fn batch(cols: &[(&str, Option<&str>)]) -> RecordBatch {
        RecordBatch::try_from_iter(cols.iter().map(|(n, v)| {
            (
                *n,
                Arc::new(StringArray::from(vec![*v])) as arrow::array::ArrayRef,
            )
        }))
        .unwrap()
    }

    #[test]
    fn a_name_change_touches_nothing_and_a_removed_connection_its_enis_and_addresses() {
        let base = crate::inventory::tests::SAMPLE;
        let a = ix(base);
        assert!(Keys::between(&a, &a).is_empty());
        let renamed = ix(&base.replacen("name = \"payments\"", "name = \"payments-eu\"", 1));
        assert!(Keys::between(&a, &renamed).is_empty());
        let none = ix("");
        let k = Keys::between(&a, &none);
        assert_eq!(k.enis.len(), a.enis.len());
        let ip = a.enis[0].ips[0].to_string();
        assert!(k.ips.contains_key(&ip));
        assert!(k.touches(&batch(&[("dstaddr", Some(&ip))])));
        assert!(k.touches(&batch(&[("endpoint_eni", Some(&a.enis[0].id))])));
        assert!(!k.touches(&batch(&[
            ("dstaddr", Some("192.0.2.250")),
            ("interface_id", None)
        ])));
        assert!(!Keys::default().touches(&batch(&[("dstaddr", Some(&ip))])));
        assert!(Keys::all().touches(&batch(&[("dstaddr", None)])));
        // Read as dictionaries (how files are scanned), the same answers.
        let dict = |v: &str| {
            let d: arrow::array::DictionaryArray<arrow::datatypes::Int32Type> =
                vec![v, "other"].into_iter().collect();
            RecordBatch::try_from_iter([("dstaddr", Arc::new(d) as arrow::array::ArrayRef)])
                .unwrap()
        };
        assert!(k.touches(&dict(&ip)));
        assert!(!k.touches(&dict("192.0.2.250")));
        // A connection deleted at 10:20 moves records from then on: hours from 10:00.
        let base_deleted = base.replace(
            "created = \"2026-01-02T00:00:00Z\"\nenis",
            "created = \"2026-01-02T00:00:00Z\"\ndeleted = \"2026-10-01T10:20:00Z\"\nenis",
        );
        let d = ix(&base_deleted);
        assert!(d.conns[0].deleted.is_some(), "the edit applies");
        let kd = Keys::between(&a, &d);
        let ten = crate::inventory::parse_time("2026-10-01T10:00:00Z").unwrap();
        assert!(!kd.may_touch_hour(Some(ten - 3600)));
        assert!(kd.may_touch_hour(Some(ten)));
        assert!(kd.may_touch_hour(Some(ten + 86_400)));
        assert!(kd.may_touch_hour(None));
        assert!(kd.touches(&batch(&[("endpoint_eni", Some("eni-1a"))])));
        assert!(!Keys::default().may_touch_hour(Some(ten)));
        let region = a.regions().next().unwrap().to_string();
        assert!(k.regions.contains(&region));
        assert!(k.touches(&batch(&[("log_region", Some(&region))])));
    }
}
