//! Which stored rows an inventory change can re-attribute: those naming an ENI whose
//! connection, AZ or addresses changed (as the ENI a record was captured on or as the endpoint
//! it was attributed to), an address of such an ENI, or a region gained or lost.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray, RecordBatch, StringArray};

use crate::inventory::Index;

/// The columns [`Keys::touches`] reads.
pub const COLUMNS: &[&str] = &[
    "endpoint_eni",
    "interface_id",
    "srcaddr",
    "dstaddr",
    "region",
    "log_region",
];

/// What changed between two inventories, as the values stored rows hold.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Keys {
    all: bool,
    enis: HashSet<String>,
    ips: HashSet<String>,
    regions: HashSet<String>,
}

/// What attribution reads of one ENI: a difference here can change a row's verdict.
fn signature(ix: &Index, e: usize) -> String {
    let eni = &ix.enis[e];
    let mut ips = eni.ips.clone();
    ips.sort();
    format!("{}|{ips:?}|{:?}", eni.az_id, ix.conn_of(e))
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
        self.enis.extend(o.enis);
        self.ips.extend(o.ips);
        self.regions.extend(o.regions);
    }

    /// What differs between the inventory rows were attributed under and the current one.
    pub fn between(old: &Index, new: &Index) -> Keys {
        let sigs = |ix: &Index| -> HashMap<String, (String, usize)> {
            (0..ix.enis.len())
                .map(|e| (ix.enis[e].id.clone(), (signature(ix, e), e)))
                .collect()
        };
        let (a, b) = (sigs(old), sigs(new));
        let mut k = Keys::default();
        for (ix, mine, theirs) in [(old, &a, &b), (new, &b, &a)] {
            for (id, (sig, e)) in mine {
                if theirs.get(id).map(|t| &t.0) != Some(sig) {
                    k.enis.insert(id.clone());
                    k.ips
                        .extend(ix.enis[*e].ips.iter().map(|ip| ip.to_string()));
                }
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

    /// Whether a row of `b` (with some of [`COLUMNS`]) is a candidate.
    pub fn touches(&self, b: &RecordBatch) -> bool {
        if self.all {
            return true;
        }
        if self.is_empty() {
            return false;
        }
        let col = |n: &str| b.column_by_name(n).and_then(|c| c.as_string_opt::<i32>());
        let any_in = |a: Option<&StringArray>, set: &HashSet<String>| {
            !set.is_empty()
                && a.is_some_and(|a| {
                    (0..a.len()).any(|i| a.is_valid(i) && set.contains(a.value(i)))
                })
        };
        any_in(col("endpoint_eni"), &self.enis)
            || any_in(col("interface_id"), &self.enis)
            || any_in(col("srcaddr"), &self.ips)
            || any_in(col("dstaddr"), &self.ips)
            || any_in(col("log_region"), &self.regions)
            || any_in(col("region"), &self.regions)
    }
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
        assert!(k.ips.contains(&ip));
        assert!(k.touches(&batch(&[("dstaddr", Some(&ip))])));
        assert!(k.touches(&batch(&[("endpoint_eni", Some(&a.enis[0].id))])));
        assert!(!k.touches(&batch(&[
            ("dstaddr", Some("192.0.2.250")),
            ("interface_id", None)
        ])));
        assert!(!Keys::default().touches(&batch(&[("dstaddr", Some(&ip))])));
        assert!(Keys::all().touches(&batch(&[("dstaddr", None)])));
        let region = a.regions().next().unwrap().to_string();
        assert!(k.regions.contains(&region));
        assert!(k.touches(&batch(&[("log_region", Some(&region))])));
    }
}
