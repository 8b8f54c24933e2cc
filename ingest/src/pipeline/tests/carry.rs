//! Replacing segments: the rows of inputs that stay are carried, never lost or doubled, and a
//! file is read only to the size it was listed at.

use super::*;

#[test]
fn replacing_a_segment_keeps_the_rows_of_inputs_this_run_does_not_list() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in");
    two_inputs(&src);
    let wh = dir.path().join("wh");
    let h = Wh::new(&wh);
    let opts = Options {
        workers: 1,
        ..Default::default()
    };
    h.ingest(&jobs(&src), &ix(), &opts).unwrap();
    assert_eq!(
        h.sum("flows", "bytes"),
        (2, 1200),
        "a.log 500 bytes, b.log 700"
    );
    // a.log changes, and b.log has expired at its source (a lifecycle rule): b.log's rows
    // share a.log's segment and cannot be read again, so they are carried into a new one.
    std::fs::write(src.join("a.log"), format!("{HEADER}\n")).unwrap();
    std::fs::remove_file(src.join("b.log")).unwrap();
    let r = h.ingest(&jobs(&src), &ix(), &opts).unwrap();
    assert_eq!(
        (r.tally.inputs_read, r.superseded, r.carried),
        (1, 1, 1),
        "a.log read again, its segment replaced, b.log carried"
    );
    assert_eq!(
        h.sum("flows", "bytes"),
        (1, 700),
        "exactly b.log's row remains"
    );
    let segs: std::collections::BTreeSet<String> = h
        .files("flows")
        .iter()
        .map(|f| linkmeter_warehouse::segment::segment_of(f.name()).to_string())
        .collect();
    assert_eq!(segs.len(), 1, "{segs:?}");
    assert!(segs.iter().all(|s| s.contains("-c00000")), "{segs:?}");
    // The checkpoint names the new segment; a rerun changes nothing.
    let r = h.ingest(&jobs(&src), &ix(), &opts).unwrap();
    assert_eq!((r.tally.inputs_read, r.superseded), (0, 0));
    assert_eq!(h.sum("flows", "bytes"), (1, 700));
}

#[test]
fn a_segment_carried_by_another_writer_meanwhile_is_not_switched_twice() {
    // Two shards whose changed inputs share one old segment both plan to carry it: the second
    // switch must fail rather than count the carried rows twice.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in");
    two_inputs(&src);
    let h = Wh::new(&dir.path().join("wh"));
    let opts = Options {
        workers: 1,
        ..Default::default()
    };
    h.ingest(&jobs(&src), &ix(), &opts).unwrap();
    let committed =
        h.rt.block_on(linkmeter_warehouse::inputs::read(&h.wh))
            .unwrap();
    let rows: Vec<InputRow> = committed.inputs.values().cloned().collect();
    assert_eq!(rows.len(), 2);
    let seg = rows[0].segment_id.clone();
    assert_eq!(rows[1].segment_id, seg, "one segment");
    let (a, b): (Vec<InputRow>, Vec<InputRow>) = rows
        .into_iter()
        .partition(|r| r.source_uri.ends_with("a.log"));
    let carry = |keep: &[InputRow], to: &str| {
        h.rt.block_on(linkmeter_warehouse::segment::carry(&h.wh, &seg, keep, to))
    };
    assert_eq!(carry(&b, "x-s0of2-c00000").unwrap(), 1);
    let e = carry(&a, "y-s1of2-c00000").unwrap_err().to_string();
    assert!(e.contains("replaced by another writer"), "{e}");
    // Only b.log's row counts, and a.log is not checkpointed (its shard reads it again).
    // (Here the winner had already removed the old files, so the loser copied nothing; had
    // they copied at once, the loser's copy would be an orphan for recovery.)
    let committed =
        h.rt.block_on(linkmeter_warehouse::inputs::read(&h.wh))
            .unwrap();
    assert_eq!(committed.inputs.len(), 1);
    let live: std::collections::HashSet<&str> = committed
        .inputs
        .values()
        .map(|r| r.segment_id.as_str())
        .collect();
    assert_eq!(live, std::collections::HashSet::from(["x-s0of2-c00000"]));
    let orphans =
        h.rt.block_on(linkmeter_warehouse::segment::recover(
            &h.wh,
            &committed,
            &|_| true,
        ))
        .unwrap();
    assert!(orphans.is_empty(), "{orphans:?}");
    assert_eq!(h.sum("flows", "bytes"), (1, 700));
}

#[test]
fn a_file_that_grows_while_read_is_read_to_its_listed_size_then_again_whole() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in");
    std::fs::create_dir_all(&src).unwrap();
    let line = |b: u64| {
        format!(
            "2 unknown eni-1a 10.0.9.9 10.0.1.10 40000 14001 6 1 {b} {T0} {} ACCEPT OK\n",
            T0 + 5
        )
    };
    std::fs::write(src.join("a.log"), format!("{HEADER}\n{}", line(500))).unwrap();
    let h = Wh::new(&dir.path().join("wh"));
    // Listed (and sized) now; the writer appends a line before the reader gets to the file.
    let listed = jobs(&src);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(src.join("a.log"))
        .unwrap();
    std::io::Write::write_all(&mut f, line(700).as_bytes()).unwrap();
    drop(f);
    let r = h.ingest(&listed, &ix(), &Options::default()).unwrap();
    assert_eq!(r.tally.records_in, 1, "only what the listing saw");
    assert_eq!(h.sum("flows", "bytes"), (1, 500));
    // The next run lists the new size: the content changed, so the file is read again whole
    // and its first read is replaced, not added to.
    let r = h.ingest(&jobs(&src), &ix(), &Options::default()).unwrap();
    assert_eq!((r.tally.inputs_read, r.tally.records_in), (1, 2));
    assert_eq!(h.sum("flows", "bytes"), (2, 1200));
}
