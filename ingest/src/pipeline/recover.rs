//! Recovery at the start of a run: the files of segments an earlier run wrote but did not
//! checkpoint (it died between its commits) are removed before anything is written, so their
//! inputs, which have no checkpoint, are read again and counted once.

use linkmeter_warehouse::inputs::{self, Committed};
use linkmeter_warehouse::Warehouse;

use super::identity::run_shard;
use super::IngestError;

/// Whether this run may remove an unfinished segment: a run over the whole warehouse never
/// overlaps another (the writer lock), so every leftover is its to undo; a shard undoes its own
/// shard's and unsharded runs' leftovers, never another shard's, which may be running now.
fn mine(segment: &str, shard: Option<(u32, u32)>) -> bool {
    let theirs = run_shard(segment);
    theirs.is_none() || shard.is_none() || theirs == shard
}

/// Reads the checkpoint and removes this run's share of unfinished segments. Returns the
/// checkpoint and how many segments were rolled back.
pub(super) fn recover(
    wh: &Warehouse,
    rt: &tokio::runtime::Handle,
    shard: Option<(u32, u32)>,
) -> Result<(Committed, u64), IngestError> {
    let committed = rt.block_on(inputs::read(wh))?;
    let gone = rt.block_on(linkmeter_warehouse::segment::recover(
        wh,
        &committed,
        &|seg| mine(seg, shard),
    ))?;
    for seg in &gone {
        tracing::warn!(message = "rolled back a segment an earlier run did not finish", segment = %seg);
    }
    Ok((committed, gone.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_leave_other_shards_segments_alone() {
        let (s0, s1, whole) = (
            "r-00af-s0of2-w0-00001",
            "r-00af-s1of2-w0-00001",
            "r-00af-w0-00001",
        );
        assert!(mine(s0, Some((0, 2))) && !mine(s1, Some((0, 2))));
        assert!(
            mine(whole, Some((0, 2))),
            "unsharded leftovers are anyone's"
        );
        assert!(
            mine(s0, None) && mine(s1, None),
            "a whole-warehouse run undoes every leftover"
        );
    }
}
