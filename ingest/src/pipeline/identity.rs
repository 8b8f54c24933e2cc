//! What identifies an input and its content, and the order inputs are read in.

use std::fs::File;
use std::io::Read;

use super::plan::Listed;
use super::{Job, Options};
use crate::source::{InputRef, Location};

/// Stable id of an input.
pub fn input_id(key: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(key.as_bytes()))
}

/// The suffix of the run ids of shard `i` of `n`.
pub fn shard_tag((i, n): (u32, u32)) -> String {
    format!("-s{i}of{n}")
}

/// The shard a run id (or a segment id, which starts with its run id) names, if any.
pub(super) fn run_shard(run_id: &str) -> Option<(u32, u32)> {
    let tail = run_id.rsplit_once("-s")?.1;
    let (i, rest) = tail.split_once("of")?;
    let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((i.parse().ok()?, n.parse().ok()?))
}

/// What identifies an input's content: the store's version (an S3 ETag) with the size, or
/// else a hash of the bytes.
fn content_identity(input: &InputRef, buf: &mut [u8]) -> std::io::Result<(String, u64)> {
    match (&input.version, &input.location) {
        (Some(v), _) => Ok((
            format!("etag:{}:{}", v.trim_matches('"'), input.size),
            input.size,
        )),
        (None, Location::File(p)) => hash_file(p, input.size, buf),
        (None, _) => Err(std::io::Error::other("an input without a version")),
    }
}

/// Hashes the first `listed` bytes: what the listing saw is what is read (a file that grows
/// meanwhile has a new size, and so a new identity, at the next listing).
/// `buf` is the caller's, reused across files: a fresh zeroed buffer per file cost more
/// than hashing a small file. 128 KiB: the block read stays in cache for the hash.
fn hash_file(
    path: &std::path::Path,
    listed: u64,
    buf: &mut [u8],
) -> std::io::Result<(String, u64)> {
    let mut f = File::open(path)?.take(listed);
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut size = 0u64;
    loop {
        let n = f.read(buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((format!("{:032x}", h.digest128()), size))
}

/// The identity of every job (local files are hashed: a read of each), or `None` when a stop
/// was requested meanwhile. The workers hash in parallel (the plan needs every identity
/// before anything is read, so this pass is on the critical path), taking jobs in turn.
pub(super) fn identify(jobs: &[Job], opts: &Options) -> Option<Vec<Listed>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let threads = opts.workers.clamp(1, 16).min(jobs.len()).max(1);
    let part = || {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(j) = jobs.get(i) else {
                return Some(out);
            };
            if opts.stopped() {
                return None;
            }
            out.push((i, listed(j, &mut buf)));
        }
    };
    let parts: Vec<Option<Vec<(usize, Listed)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads).map(|_| s.spawn(part)).collect();
        let mine = part();
        let mut parts: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        parts.push(mine);
        parts
    });
    let mut all: Vec<(usize, Listed)> = Vec::with_capacity(jobs.len());
    for p in parts {
        all.extend(p?);
    }
    all.sort_unstable_by_key(|(i, _)| *i);
    Some(all.into_iter().map(|(_, l)| l).collect())
}

/// The identity of one job; `buf` is a read buffer, sized on first use (only local files
/// are read to find it).
pub(super) fn listed(j: &Job, buf: &mut Vec<u8>) -> Listed {
    if buf.is_empty() && matches!(j.input.location, Location::File(_)) {
        buf.resize(128 << 10, 0);
    }
    Listed {
        id: input_id(&j.input.key),
        key: j.input.key.clone(),
        uri: j.input.uri.clone(),
        content: content_identity(&j.input, buf).ok(),
    }
}

/// Orders inputs so a worker's consecutive inputs cover the same hours (AWS file names carry
/// `YYYYMMDDTHHmmZ`), which keeps a segment's files few and large.
pub(super) fn time_key(key: &str) -> &str {
    let b = key.as_bytes();
    for i in 0..b.len().saturating_sub(13) {
        let w = &b[i..i + 14];
        if w[8] == b'T' && w[13] == b'Z' && w[..8].iter().chain(&w[9..13]).all(u8::is_ascii_digit) {
            return &key[i..i + 14];
        }
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_name_their_shard() {
        assert_eq!(run_shard("20261127T070914Z-02af-s1of3"), Some((1, 3)));
        assert_eq!(
            run_shard("20261127T070914Z-02af-s1of3-w0-00002"),
            Some((1, 3))
        );
        assert_eq!(
            run_shard(&format!("x-0001{}", shard_tag((0, 4)))),
            Some((0, 4))
        );
        assert_eq!(run_shard("20261127T070914Z-02af"), None);
        assert_eq!(run_shard("20261127T070914Z-02af-w0-00001"), None);
        assert_eq!(run_shard("run"), None);
    }

    #[test]
    fn aws_file_names_order_by_time() {
        assert_eq!(
            time_key(
                "AWSLogs/1/vpcflowlogs/r/2026/10/01/1_vpcflowlogs_r_fl-1_20261001T0950Z_ab.log.gz"
            ),
            "20261001T0950Z"
        );
        assert_eq!(time_key("a.log"), "");
    }
}
