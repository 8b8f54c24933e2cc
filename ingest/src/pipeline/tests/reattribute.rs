//! Inventory changes re-attribute the stored rows in place: no input is read again (it may
//! have expired), the result is the rows a fresh ingest under the new inventory writes, and
//! rows that are no longer MSK traffic leave with their bytes reported.

use super::*;
use crate::reattribute::{reattribute, rows::ATTRIBUTION_COLUMNS, Summary};
use arrow::util::display::array_value_to_string;

impl Wh {
    /// A whole run as `run` does it: re-attribute, then ingest.
    fn run(&self, src: &Path, ix: &Index) -> (Summary, Report) {
        let s = reattribute(&self.wh, ix, self.rt.handle(), false, "t", 2).unwrap();
        let r = self.ingest(&jobs(src), ix, &Options::default()).unwrap();
        (s, r)
    }

    /// Every `flows` row as text (line, hour, bytes, then what attribution writes), sorted.
    fn flow_rows(&self) -> Vec<String> {
        let Some(t) = self
            .rt
            .block_on(self.wh.read_table(&registry::FLOWS))
            .unwrap()
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for b in self.rt.block_on(t.read_all()).unwrap() {
            for i in 0..b.num_rows() {
                let cols = ["source_line", "usage_hour", "bytes"]
                    .iter()
                    .chain(ATTRIBUTION_COLUMNS);
                let row: Vec<String> = cols
                    .map(|c| array_value_to_string(b.column_by_name(c).unwrap(), i).unwrap())
                    .collect();
                out.push(row.join(" "));
            }
        }
        out.sort();
        out
    }
}

/// The sample inventory without connection `aaaa` (client account 111111111111).
fn without_aaaa() -> Index {
    let s = crate::inventory::tests::SAMPLE;
    let first = s.find("[[connections]]").unwrap();
    let second = first + 1 + s[first + 1..].find("[[connections]]").unwrap();
    Inventory::from_toml(&format!("{}{}", &s[..first], &s[second..]), "no-aaaa").unwrap()
}

fn write_input(src: &Path, lines: &[String]) {
    std::fs::create_dir_all(src).unwrap();
    std::fs::write(
        src.join("a.log"),
        format!("{HEADER}\n{}\n", lines.join("\n")),
    )
    .unwrap();
}

#[test]
fn a_name_change_rewrites_nothing_and_removing_an_eni_reattributes_without_reading() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in");
    write_input(
        &src,
        &[format!(
            "2 unknown eni-1a 10.0.9.9 10.0.1.10 40000 14001 6 1 500 {T0} {} ACCEPT OK",
            T0 + 5
        )],
    );
    let h = Wh::new(&dir.path().join("wh"));
    let (s, r) = h.run(&src, &ix());
    assert!(!s.ran(), "a new warehouse has nothing to re-attribute");
    assert_eq!(r.tally.attributed, 1);
    // Names, cost centers and new accounts are joined at invoice time.
    let renamed =
        crate::inventory::tests::SAMPLE.replacen("cost_center = \"", "cost_center = \"renamed-", 1)
            + "\n[[accounts]]\nid = \"333333333333\"\nname = \"new-team\"\n";
    let ix_renamed = Inventory::from_toml(&renamed, "t1").unwrap();
    assert_ne!(ix_renamed.hash, ix().hash);
    let (s, r) = h.run(&src, &ix_renamed);
    assert!(!s.ran());
    assert_eq!((r.tally.inputs_read, r.tally.inputs_skipped), (0, 1));
    // eni-1a leaves the inventory: its row is re-attributed from the warehouse, the input
    // (gone at its source now) is not read.
    std::fs::remove_file(src.join("a.log")).unwrap();
    let text = crate::inventory::tests::SAMPLE.replace(
        "{ id = \"eni-1a\", az_id = \"use1-az1\", ips = [\"10.0.1.10\"] },",
        "",
    );
    let ix2 = Inventory::from_toml(&text, "t2").unwrap();
    let (s, r) = h.run(&src, &ix2);
    assert_eq!(r.tally.inputs_read, 0);
    assert_eq!(s.files, (1, 1, 1), "{s}");
    assert_eq!(
        s.moves
            .by_change
            .get(&("attributed".into(), "unknown_endpoint".into())),
        Some(&(1, 500)),
        "{s}"
    );
    assert_eq!(h.sum("flows", "bytes"), (1, 500), "replaced, not added");
    assert!(
        h.flow_rows()[0].contains("unattributed unknown_endpoint"),
        "{:?}",
        h.flow_rows()
    );
    // Idempotent: the next run finds nothing to do.
    let (s, _) = h.run(&src, &ix2);
    assert!(!s.ran(), "{s}");
}

#[test]
fn adding_a_missing_connection_bills_its_rows_as_a_fresh_ingest_would() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in");
    let lines = [
        // Client 111111111111 to eni-1a's address, then the response: unknown endpoints
        // while connection aaaa is missing from the inventory.
        format!(
            "2 111111111111 eni-c1 10.0.9.9 10.0.1.10 40000 14001 6 1 500 {T0} {} ACCEPT OK",
            T0 + 5
        ),
        format!(
            "2 111111111111 eni-c1 10.0.1.10 10.0.9.9 14002 40000 6 1 900 {} {} ACCEPT OK",
            T0 + 1100,
            T0 + 1300
        ),
        // Another connection's traffic, attributed either way.
        format!(
            "2 222222222222 eni-2a 10.0.9.8 10.0.1.10 40000 14001 6 1 300 {T0} {} ACCEPT OK",
            T0 + 5
        ),
        // Noise: filtered either way.
        format!(
            "2 111111111111 eni-c1 10.0.9.9 10.9.9.9 40000 443 6 1 100 {T0} {} ACCEPT OK",
            T0 + 5
        ),
    ];
    write_input(&src, &lines);
    let fresh = Wh::new(&dir.path().join("fresh"));
    fresh.run(&src, &ix());
    let h = Wh::new(&dir.path().join("wh"));
    let (_, r) = h.run(&src, &without_aaaa());
    assert_eq!(
        (r.tally.attributed, r.tally.unattributed),
        (1, 2),
        "{}",
        r.tally
    );
    assert_ne!(h.flow_rows(), fresh.flow_rows());
    // The raw log expires, then the connection is added.
    std::fs::remove_file(src.join("a.log")).unwrap();
    let (s, r) = h.run(&src, &ix());
    assert_eq!(r.tally.inputs_read, 0);
    assert_eq!(
        s.moves
            .by_change
            .get(&("unknown_endpoint".into(), "attributed".into())),
        Some(&(3, 1400)),
        "three rows (the response spans two hours), every byte: {s}"
    );
    assert_eq!(h.flow_rows(), fresh.flow_rows());
    assert_eq!(h.sum("flows", "bytes"), fresh.sum("flows", "bytes"));
}

#[test]
fn rows_no_longer_msk_traffic_leave_with_their_bytes_reported() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in");
    // Captured on endpoint ENI eni-1a, but not on a broker port: stored as unexpected_port.
    write_input(
        &src,
        &[format!(
            "2 111111111111 eni-1a 10.0.9.9 10.0.1.10 40000 443 6 1 700 {T0} {} ACCEPT OK",
            T0 + 5
        )],
    );
    let h = Wh::new(&dir.path().join("wh"));
    let (_, r) = h.run(&src, &ix());
    assert_eq!(
        r.tally.by_reason.get("unexpected_port").map(|e| e.0),
        Some(1)
    );
    let (s, _) = h.run(&src, &without_aaaa());
    assert_eq!(
        s.moves
            .by_change
            .get(&("unexpected_port".into(), "filtered".into())),
        Some(&(1, 700)),
        "{s}"
    );
    assert_eq!(s.files, (1, 1, 1));
    assert_eq!(h.sum("flows", "bytes"), (0, 0));
    assert!(h.files("flows").is_empty(), "the file held only that row");
    assert!(
        s.to_string()
            .contains("unexpected_port → filtered: 1 rows, 700 bytes"),
        "{s}"
    );
}

#[test]
fn a_lifetime_edit_opens_only_the_hours_it_can_change() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in");
    // The same client traffic two hours apart.
    let line = |t: i64| {
        format!(
            "2 111111111111 eni-c1 10.0.9.9 10.0.1.10 40000 14001 6 1 500 {t} {} ACCEPT OK",
            t + 5
        )
    };
    write_input(&src, &[line(T0), line(T0 + 7200)]);
    let h = Wh::new(&dir.path().join("wh"));
    let (_, r) = h.run(&src, &ix());
    assert_eq!(r.tally.attributed, 2);
    // Connection aaaa is deleted between the two.
    let gone_at = chrono::DateTime::from_timestamp(T0 + 3600, 0)
        .unwrap()
        .to_rfc3339();
    let text = crate::inventory::tests::SAMPLE.replacen(
        "created = \"2026-01-02T00:00:00Z\"\nenis",
        &format!("created = \"2026-01-02T00:00:00Z\"\ndeleted = \"{gone_at}\"\nenis"),
        1,
    );
    let (s, _) = h.run(&src, &Inventory::from_toml(&text, "deleted").unwrap());
    assert_eq!(
        s.files,
        (2, 1, 1),
        "the earlier hour's file is not opened: {s}"
    );
    assert_eq!(
        s.moves
            .by_change
            .get(&("attributed".into(), "outside_connection_lifetime".into())),
        Some(&(1, 500)),
        "{s}"
    );
}

#[test]
fn a_warehouse_without_marks_is_checked_whole_even_when_a_shard_comes_first() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in");
    write_input(
        &src,
        &[format!(
            "2 111111111111 eni-c1 10.0.9.9 10.0.1.10 40000 14001 6 1 500 {T0} {} ACCEPT OK",
            T0 + 5
        )],
    );
    let marks = |h: &Wh| {
        h.rt.block_on(linkmeter_warehouse::marks::list(&h.wh))
            .unwrap()
            .len()
    };
    // Written as a release before marks did: rows and inputs, no `_attribution/`.
    let h = Wh::new(&dir.path().join("wh"));
    h.ingest(&jobs(&src), &without_aaaa(), &Options::default())
        .unwrap();
    assert_eq!(marks(&h), 0);
    // A shard under the full inventory re-attributes nothing, and its own mark must not
    // hide that the old rows were read under another inventory.
    let s = reattribute(&h.wh, &ix(), h.rt.handle(), true, "s", 1).unwrap();
    assert!(s.deferred && !s.ran(), "{s}");
    assert!(s.to_string().contains("the next whole run"), "{s}");
    assert!(
        h.flow_rows()[0].contains("unknown_endpoint"),
        "{:?}",
        h.flow_rows()
    );
    assert_eq!(marks(&h), 2, "the legacy mark and the shard's");
    let s = reattribute(&h.wh, &ix(), h.rt.handle(), false, "w", 1).unwrap();
    assert!(s.full, "every row is checked: {s}");
    assert_eq!(
        s.moves
            .by_change
            .get(&("unknown_endpoint".into(), "attributed".into())),
        Some(&(1, 500)),
        "{s}"
    );
    assert_eq!(marks(&h), 1, "settled on the current inventory");
    // Inputs read under the current inventory: nothing to do but write the mark.
    let dir2 = tempfile::tempdir().unwrap();
    let h2 = Wh::new(&dir2.path().join("wh"));
    h2.ingest(&jobs(&src), &ix(), &Options::default()).unwrap();
    let s = reattribute(&h2.wh, &ix(), h2.rt.handle(), false, "w", 1).unwrap();
    assert!(!s.ran(), "{s}");
    assert_eq!(marks(&h2), 1);
}
