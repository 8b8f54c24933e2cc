//! What a Kafka source's inputs are called and where their lines came from: topic URIs, the
//! input keys that record a partition's offset range in the warehouse, where reading resumes,
//! how far the consumer group may be moved, and each line's message offset for lineage.

use std::collections::{BTreeMap, VecDeque};

/// Splits `kafka://host:port[,host:port]/topic` into bootstrap servers and topic.
pub fn parse_uri(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix("kafka://")?;
    let (hosts, topic) = rest.split_once('/')?;
    let topic = topic.trim_matches('/');
    (!hosts.is_empty() && !topic.is_empty() && !topic.contains('/'))
        .then(|| (hosts.to_string(), topic.to_string()))
}

/// The key of an input holding `first..=last` of a partition. The cluster id is part of it:
/// offsets mean nothing across clusters, so a topic moved to a new cluster (or the source
/// pointed at another one) is read afresh rather than taken as already held.
pub(super) fn input_key(
    name: &str,
    cluster: &str,
    topic: &str,
    partition: i32,
    first: i64,
    last: i64,
) -> String {
    format!("{name}:{cluster}/{topic}/{partition}/{first:020}-{last:020}")
}

/// The partition and offset range an input key of this source, cluster and topic names.
pub fn parse_key(key: &str, name: &str, cluster: &str, topic: &str) -> Option<(i32, i64, i64)> {
    let rest = key
        .strip_prefix(name)?
        .strip_prefix(':')?
        .strip_prefix(cluster)?
        .strip_prefix('/')?
        .strip_prefix(topic)?
        .strip_prefix('/')?;
    let (p, range) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((p.parse().ok()?, a.parse().ok()?, b.parse().ok()?))
}

/// Where a partition's reading starts, given the ranges the warehouse holds and the
/// partition's first offset still in the log (`low`): after the ranges that run without a gap
/// from `low`. Ranges further on are skipped while reading. (Two workers commit independently,
/// so a crash can leave a gap anywhere, even before the first held range.)
pub fn start_offset(ranges: &[(i64, i64)], low: i64) -> i64 {
    let mut r = ranges.to_vec();
    r.sort();
    let mut next = low;
    for (a, b) in r {
        if a > next {
            break;
        }
        next = next.max(b + 1);
    }
    next
}

pub(super) fn covered(ranges: &[(i64, i64)], offset: i64) -> bool {
    ranges.iter().any(|(a, b)| *a <= offset && offset <= *b)
}

/// Where each message of a stream input starts, so lineage can name a record's message offset
/// instead of a byte offset in the joined text.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LineOffsets(Vec<(u64, i64)>);

impl LineOffsets {
    /// From (first line of a message, its offset) pairs, first lines strictly increasing (each
    /// message holds at least one line).
    pub fn new(pairs: Vec<(u64, i64)>) -> Self {
        LineOffsets(pairs)
    }

    /// The offset of the message that holds `line` (0 before the first message).
    pub fn offset_of(&self, line: u64) -> u64 {
        // One line per message, the usual case: the line's own entry, without a search (a
        // search per record measured at 2% of a Kafka run). Lines are strictly increasing,
        // so an entry that starts at `line` is the one holding it.
        if let Some(&(l, o)) = line
            .checked_sub(1)
            .and_then(|i| self.0.get(usize::try_from(i).ok()?))
        {
            if l == line {
                return o.max(0) as u64;
            }
        }
        let i = self.0.partition_point(|(l, _)| *l <= line);
        i.checked_sub(1)
            .map(|i| self.0[i].1.max(0) as u64)
            .unwrap_or(0)
    }
}

/// The inputs handed to the workers and not yet known to be held, per partition in offset
/// order: how far the consumer group may be moved when workers commit them out of order.
#[derive(Debug, Default)]
pub(super) struct Unheld(BTreeMap<i32, VecDeque<(i64, i64, bool)>>);

impl Unheld {
    /// An input handed over (inputs of a partition are handed over in offset order).
    pub(super) fn push(&mut self, partition: i32, first: i64, last: i64) {
        self.0
            .entry(partition)
            .or_default()
            .push_back((first, last, false));
    }

    /// Forgets every input (their offsets were committed another way).
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    /// Marks inputs (partition, first offset) held and returns, for each partition where it
    /// moved, the offset after the last input held with no input before it still unheld.
    pub(super) fn held(&mut self, inputs: impl IntoIterator<Item = (i32, i64)>) -> Vec<(i32, i64)> {
        for (p, first) in inputs {
            if let Some(e) = self
                .0
                .get_mut(&p)
                .and_then(|q| q.iter_mut().find(|e| e.0 == first))
            {
                e.2 = true;
            }
        }
        let mut moved = Vec::new();
        for (p, q) in self.0.iter_mut() {
            let mut to = None;
            while let Some(&(_, last, true)) = q.front() {
                q.pop_front();
                to = Some(last + 1);
            }
            if let Some(o) = to {
                moved.push((*p, o));
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_moves_only_past_inputs_with_nothing_unheld_before_them() {
        let mut u = Unheld::default();
        u.push(0, 0, 9);
        u.push(0, 10, 19);
        u.push(0, 25, 30); // offsets 20..24 were held by an earlier run (skipped)
        u.push(1, 0, 4);
        // The second and third inputs of partition 0 commit first: nothing moves there yet.
        assert_eq!(u.held([(0, 10), (0, 25), (1, 0)]), vec![(1, 5)]);
        // The first commits: partition 0 moves past all three, over the skipped range.
        assert_eq!(u.held([(0, 0)]), vec![(0, 31)]);
        // Unknown inputs change nothing.
        assert_eq!(u.held([(0, 0), (2, 7)]), vec![]);
        u.push(0, 31, 40);
        u.clear();
        assert_eq!(u.held([(0, 31)]), vec![]);
    }

    #[test]
    fn uris_and_keys() {
        assert_eq!(
            parse_uri("kafka://b1:9092,b2:9092/flowlogs"),
            Some(("b1:9092,b2:9092".into(), "flowlogs".into()))
        );
        assert_eq!(parse_uri("kafka://b1:9092/"), None);
        assert_eq!(parse_uri("kafka:///t"), None);
        let k = input_key("fl", "c-1", "t.x", 3, 10, 99);
        assert_eq!(parse_key(&k, "fl", "c-1", "t.x"), Some((3, 10, 99)));
        assert_eq!(parse_key(&k, "other", "c-1", "t.x"), None);
        assert_eq!(
            parse_key(&k, "fl", "c-2", "t.x"),
            None,
            "another cluster's offsets"
        );
        assert_eq!(parse_key(&k, "fl", "c-1", "t"), None);
    }

    #[test]
    fn reading_resumes_at_the_first_gap() {
        assert_eq!(start_offset(&[], 0), 0);
        assert_eq!(start_offset(&[(0, 9)], 0), 10);
        assert_eq!(start_offset(&[(10, 19), (0, 9), (30, 39)], 0), 20);
        assert_eq!(start_offset(&[(0, 9), (5, 12)], 0), 13);
        // The first range was lost in a crash while a later one was committed.
        assert_eq!(start_offset(&[(100, 199)], 0), 0);
        // Retention removed what came before the first held range.
        assert_eq!(start_offset(&[(100, 199)], 100), 200);
        assert_eq!(start_offset(&[(100, 199), (200, 250)], 150), 251);
        assert!(covered(&[(30, 39)], 35));
        assert!(!covered(&[(30, 39)], 40));
    }

    proptest::proptest! {
        /// The one-line-per-message shortcut names the same message as a scan, whatever mix
        /// of one- and many-line messages (and offset gaps) a chunk holds.
        #[test]
        fn a_line_maps_to_the_message_holding_it(
            msgs in proptest::collection::vec((1u64..4, 1i64..3), 0..40),
        ) {
            let (mut pairs, mut line, mut off) = (Vec::new(), 1u64, 5i64);
            for (lines, gap) in &msgs {
                pairs.push((line, off));
                line += lines;
                off += gap;
            }
            let map = LineOffsets::new(pairs.clone());
            for l in 0..line + 2 {
                let want = pairs
                    .iter()
                    .rev()
                    .find(|(first, _)| *first <= l)
                    .map_or(0, |(_, o)| *o as u64);
                proptest::prop_assert_eq!(map.offset_of(l), want, "line {}", l);
            }
        }
    }
}
