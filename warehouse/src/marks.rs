//! Attribution marks: which inventories the rows of the ingested tables were attributed under.
//!
//! `_attribution/HASH.json` exists for every inventory (by its attribution hash) that rows may
//! have been written under since the warehouse was last re-attributed; its content (the
//! inventory itself, opaque here) lets the next re-attribution find which rows can change.
//! Marks are named by content, so shards writing together write the same file, and a whole
//! run settles them: after re-attributing everything to the current inventory it leaves just
//! that one. A crash in between leaves several, and the next run redoes the (idempotent) work.

use bytes::Bytes;

use crate::store::Warehouse;
use crate::Error;

const DIR: &str = "_attribution";

fn path(hash: &str) -> String {
    format!("{DIR}/{hash}.json")
}

/// Every mark: its hash and content.
pub async fn list(wh: &Warehouse) -> Result<Vec<(String, Bytes)>, Error> {
    let mut out = Vec::new();
    for rel in wh.list_files(DIR).await? {
        let Some(hash) = rel.rsplit('/').next().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if let Some(b) = wh.get_file(&rel).await? {
            out.push((hash.to_string(), b));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Records that rows are being written under the inventory `hash` (before they are).
pub async fn put(wh: &Warehouse, hash: &str, content: Bytes) -> Result<(), Error> {
    wh.put_file(&path(hash), content).await
}

/// Leaves only the mark `keep` (written first, so some mark always exists).
pub async fn settle(wh: &Warehouse, keep: &str, content: Bytes) -> Result<(), Error> {
    put(wh, keep, content).await?;
    for (hash, _) in list(wh).await? {
        if hash != keep {
            wh.delete_file(&path(&hash)).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settle_leaves_only_the_current_mark() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::local(dir.path()).unwrap();
        assert!(list(&wh).await.unwrap().is_empty());
        put(&wh, "aaa", Bytes::from_static(b"1")).await.unwrap();
        put(&wh, "bbb", Bytes::from_static(b"2")).await.unwrap();
        let all = list(&wh).await.unwrap();
        assert_eq!(
            all.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>(),
            ["aaa", "bbb"]
        );
        settle(&wh, "ccc", Bytes::from_static(b"3")).await.unwrap();
        let all = list(&wh).await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].0.as_str(), &all[0].1[..]), ("ccc", &b"3"[..]));
    }
}
