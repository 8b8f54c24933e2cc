//! The planner: which listed inputs to read and which committed segments they supersede. A pure
//! function of what the sources list and what the checkpoint holds, so every rule is tested
//! without files.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use linkmeter_warehouse::inputs::{Committed, InputRow};

use super::identity::time_key;

/// One listed input, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Stable id (a hash of the key).
    pub id: String,
    /// Source name and path.
    pub key: String,
    /// Where it is.
    pub uri: String,
    /// Its content's identity and size, or `None` when it could not be read to find out.
    pub content: Option<(String, u64)>,
}

/// Settings the plan depends on.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Read every input, whatever its checkpoint says.
    pub force: bool,
    /// The decoders' generation: an input an older one quarantined whole is read again.
    pub decoders: u64,
}

/// What to do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Indexes of the inputs to read, in reading order (by the time in AWS file names, then
    /// by key, so consecutive inputs share hours).
    pub todo: Vec<usize>,
    /// Committed segments whose every input is read again: their rows are removed first.
    pub supersede: BTreeSet<String>,
    /// Committed segments that hold inputs to read again and inputs that stay (unchanged, not
    /// listed by this run, or gone from their source): the rows of those that stay are
    /// carried into a new segment, never read again, and the rest are replaced.
    pub carry: BTreeMap<String, Vec<InputRow>>,
}

/// Plans a run.
pub fn plan(listed: &[Listed], committed: &Committed, o: &PlanOptions) -> Plan {
    let segments = committed.segments();
    let by_content: HashMap<&str, &InputRow> = committed
        .inputs
        .values()
        .map(|r| (r.content_hash.as_str(), r))
        .collect();
    let index_of: HashMap<&str, usize> = listed
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id.as_str(), i))
        .collect();
    let mut todo: HashSet<usize> = HashSet::new();
    let mut doomed: BTreeSet<String> = BTreeSet::new();
    let mut seen_content: HashMap<&str, usize> = HashMap::new();
    for (i, l) in listed.iter().enumerate() {
        let entry = committed.inputs.get(&l.id);
        let Some((hash, _)) = l.content.as_ref() else {
            match entry {
                // Unreadable now, but ingested before: keep its rows rather than replace them
                // with a quarantine entry because of a passing error.
                Some(_) => {
                    tracing::warn!(message = "input unreadable; keeping the rows of its previous ingest", input = %l.uri)
                }
                None => {
                    todo.insert(i);
                }
            }
            continue;
        };
        // The same bytes under another identity (a renamed source, a moved root, two sources
        // listing one file) are one input, not two.
        if let Some(&first) = seen_content.get(hash.as_str()) {
            tracing::warn!(message = "same content as another input of this run; ingested once", input = %l.uri, first = %listed[first].uri);
            continue;
        }
        seen_content.insert(hash, i);
        if let Some(other) = by_content.get(hash.as_str()) {
            if other.input_id != l.id && !index_of.contains_key(other.input_id.as_str()) && !o.force
            {
                tracing::warn!(message = "already ingested under another identity; skipped", input = %l.uri, as_input = %other.source_uri);
                continue;
            }
        }
        let same = |r: &InputRow| r.content_hash == *hash;
        let older_quarantine =
            |r: &InputRow| r.decoders < o.decoders && r.records > 0 && r.quarantined == r.records;
        let unchanged = !o.force && entry.is_some_and(|r| same(r) && !older_quarantine(r));
        if !unchanged {
            todo.insert(i);
            if let Some(r) = entry {
                doomed.insert(r.segment_id.clone());
            }
        }
    }
    // By id, not index: an id listed twice must not be both read and carried.
    let read_ids: HashSet<&str> = todo.iter().map(|&i| listed[i].id.as_str()).collect();
    let mut supersede = BTreeSet::new();
    let mut carry = BTreeMap::new();
    for seg in doomed {
        let members = segments
            .get(seg.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        // What is not read again keeps its rows, whether this run lists it or not.
        let keep: Vec<InputRow> = members
            .iter()
            .filter(|r| !read_ids.contains(r.input_id.as_str()))
            .map(|r| (*r).clone())
            .collect();
        if keep.is_empty() {
            supersede.insert(seg);
        } else {
            carry.insert(seg, keep);
        }
    }
    let mut todo: Vec<usize> = todo.into_iter().collect();
    todo.sort_by(|&a, &b| {
        time_key(&listed[a].key)
            .cmp(time_key(&listed[b].key))
            .then(listed[a].key.cmp(&listed[b].key))
    });
    Plan {
        todo,
        supersede,
        carry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INV: &str = "inv1";

    fn listed(name: &str, content: &str) -> Listed {
        Listed {
            id: format!("id-{name}"),
            key: format!("src/{name}"),
            uri: format!("file:///{name}"),
            content: Some((content.to_string(), 10)),
        }
    }

    fn row(name: &str, content: &str, seg: &str) -> InputRow {
        InputRow {
            segment_id: seg.into(),
            input_id: format!("id-{name}"),
            input_key: format!("src/{name}"),
            source_uri: format!("file:///{name}"),
            content_hash: content.into(),
            inventory_hash: INV.into(),
            records: 5,
            decoders: 3,
            ..Default::default()
        }
    }

    fn committed(rows: &[InputRow]) -> Committed {
        Committed {
            inputs: rows
                .iter()
                .map(|r| (r.input_id.clone(), r.clone()))
                .collect(),
        }
    }

    fn run(l: &[Listed], c: &Committed) -> Plan {
        plan(
            l,
            c,
            &PlanOptions {
                force: false,
                decoders: 3,
            },
        )
    }

    #[test]
    fn new_inputs_are_read_and_unchanged_ones_skipped() {
        let l = [listed("a", "h1"), listed("b", "h2")];
        let p = run(&l, &committed(&[row("a", "h1", "s1")]));
        assert_eq!(p.todo, vec![1]);
        assert!(p.supersede.is_empty());
    }

    #[test]
    fn a_changed_input_is_read_and_the_rest_of_its_segment_carried() {
        let l = [listed("a", "h1-new"), listed("b", "h2"), listed("c", "h3")];
        let c = committed(&[
            row("a", "h1", "s1"),
            row("b", "h2", "s1"),
            row("c", "h3", "s2"),
        ]);
        let p = run(&l, &c);
        assert_eq!(
            p.todo,
            vec![0],
            "b is carried, not read again; c is untouched"
        );
        assert!(p.supersede.is_empty());
        let carried: Vec<&str> = p.carry["s1"].iter().map(|r| r.input_id.as_str()).collect();
        assert_eq!(carried, ["id-b"]);
        assert_eq!(p.carry.len(), 1);
        // Every input of the segment changed: nothing to carry, the segment is replaced.
        let l = [listed("a", "h1-new"), listed("b", "h2-new")];
        let p = run(&l, &c);
        assert_eq!(p.todo, vec![0, 1]);
        assert_eq!(p.supersede, BTreeSet::from(["s1".to_string()]));
        assert!(p.carry.is_empty());
    }

    #[test]
    fn an_inventory_change_reads_nothing_and_force_reads_everything() {
        // Inventory changes re-attribute stored rows (crate::reattribute), not inputs.
        let l = [listed("a", "h1")];
        let mut r = row("a", "h1", "s1");
        r.inventory_hash = "an-older-inventory".into();
        let c = committed(&[r]);
        let p = plan(
            &l,
            &c,
            &PlanOptions {
                force: false,
                decoders: 3,
            },
        );
        assert_eq!((p.todo.len(), p.supersede.len()), (0, 0));
        let p = plan(
            &l,
            &c,
            &PlanOptions {
                force: true,
                decoders: 3,
            },
        );
        assert_eq!((p.todo.len(), p.supersede.len()), (1, 1));
    }

    #[test]
    fn inputs_this_run_does_not_list_keep_their_rows() {
        // b expired at its source (or another --source/--shard/--since lists it): a's change
        // must neither fail the run nor drop b's rows.
        let l = [listed("a", "h1-new")];
        let c = committed(&[row("a", "h1", "s1"), row("b", "h2", "s1")]);
        let p = run(&l, &c);
        assert_eq!(p.todo, vec![0]);
        assert_eq!(p.carry["s1"].len(), 1);
        assert_eq!(p.carry["s1"][0].source_uri, "file:///b");
        // Unreadable now but ingested before: carried too, never replaced by an error.
        let mut gone = listed("b", "");
        gone.content = None;
        let p = run(&[listed("a", "h1-new"), gone], &c);
        assert_eq!(p.todo, vec![0]);
        assert_eq!(p.carry["s1"][0].input_id, "id-b");
    }

    #[test]
    fn an_id_listed_twice_is_never_both_read_and_carried() {
        let l = [listed("a", "h1-new"), listed("a", "h1")];
        let p = run(
            &l,
            &committed(&[row("a", "h1", "s1"), row("b", "h2", "s1")]),
        );
        assert_eq!(p.todo, vec![0]);
        let carried: Vec<&str> = p.carry["s1"].iter().map(|r| r.input_id.as_str()).collect();
        assert_eq!(
            carried,
            ["id-b"],
            "a is read, so its old rows are not carried"
        );
    }

    #[test]
    fn same_content_twice_or_under_another_name_is_read_once() {
        let l = [listed("a", "h1"), listed("a-copy", "h1")];
        assert_eq!(run(&l, &committed(&[])).todo, vec![0]);
        // Renamed since the last run (the old name is not listed): skipped.
        let p = run(
            &[listed("renamed", "h1")],
            &committed(&[row("a", "h1", "s1")]),
        );
        assert!(p.todo.is_empty());
    }

    #[test]
    fn unreadable_inputs_keep_their_rows_or_are_read_to_be_quarantined() {
        let mut gone = listed("a", "");
        gone.content = None;
        assert!(run(
            std::slice::from_ref(&gone),
            &committed(&[row("a", "h1", "s1")])
        )
        .todo
        .is_empty());
        assert_eq!(run(&[gone], &committed(&[])).todo, vec![0]);
    }

    #[test]
    fn inputs_an_older_decoder_quarantined_whole_are_read_again() {
        let mut r = row("a", "h1", "s1");
        (r.decoders, r.quarantined) = (1, r.records);
        let p = run(&[listed("a", "h1")], &committed(&[r.clone()]));
        assert_eq!((p.todo.clone(), p.supersede.len()), (vec![0], 1));
        // Also when its segment holds an input this run does not list: that one is carried.
        let p = run(
            &[listed("a", "h1")],
            &committed(&[r.clone(), row("b", "h2", "s1")]),
        );
        assert_eq!(p.todo, vec![0]);
        assert_eq!(p.carry["s1"][0].input_id, "id-b");
        // Not when it was partly good.
        r.quarantined = 1;
        assert!(run(&[listed("a", "h1")], &committed(&[r])).todo.is_empty());
    }

    #[test]
    fn inputs_are_read_in_time_order() {
        let l = [
            listed("x_20261001T1000Z_a.log.gz", "h1"),
            listed("y_20261001T0900Z_b.log.gz", "h2"),
        ];
        assert_eq!(run(&l, &committed(&[])).todo, vec![1, 0]);
    }
}
