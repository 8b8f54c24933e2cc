//! A warehouse on a local (or mounted) filesystem.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::{LockGuard, Sink, WarehouseError};

/// A warehouse rooted at a directory.
#[derive(Debug)]
pub struct LocalSink {
    root: PathBuf,
    tmp_seq: AtomicU64,
}

impl LocalSink {
    /// Opens (creating if needed) a warehouse directory.
    pub fn open(root: &Path) -> Result<Self, WarehouseError> {
        fs::create_dir_all(root.join("_tmp")).map_err(|source| WarehouseError::Io {
            path: root.display().to_string(),
            op: "create directory",
            source,
        })?;
        Ok(LocalSink {
            root: root.to_path_buf(),
            tmp_seq: AtomicU64::new(0),
        })
    }

    /// The warehouse directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the warehouse's writer lock (`_lock`, created exclusively) so two runs never
    /// write one warehouse at once. A lock whose process no longer exists on this machine is
    /// taken over. Released when the guard drops.
    pub fn lock(&self, command: &str) -> Result<LockGuard, WarehouseError> {
        self.lock_scope(command, None)
    }

    /// Like [`LocalSink::lock`], for one shard of a sharded ingest: shards lock
    /// `_locks/shard-I-of-N` and may run together, but never with an unsharded run (`_lock`).
    pub fn lock_scope(
        &self,
        command: &str,
        shard: Option<(u32, u32)>,
    ) -> Result<LockGuard, WarehouseError> {
        let name = super::object::lock_name(shard);
        // The other kind of lock must not be held by a live run.
        let others: Vec<PathBuf> = match shard {
            Some(_) => vec![self.root.join("_lock")],
            None => fs::read_dir(self.root.join("_locks"))
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default(),
        };
        for p in others {
            let Ok(holder) = fs::read_to_string(&p) else {
                continue;
            };
            if !is_stale(&holder) {
                return Err(WarehouseError::Locked {
                    path: p.display().to_string(),
                    holder,
                });
            }
        }
        let path = self.root.join(name);
        if shard.is_some() {
            fs::create_dir_all(self.root.join("_locks"))
                .map_err(io(&self.root, "create _locks"))?;
        }
        let me = format!(
            "pid {} on {}, {command}, since {}",
            std::process::id(),
            hostname(),
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        );
        for _ in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    let _ = f.write_all(me.as_bytes());
                    return Ok(LockGuard::new(move || {
                        let _ = fs::remove_file(&path);
                    }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = fs::read_to_string(&path).unwrap_or_default();
                    if is_stale(&holder) {
                        tracing::warn!(message = "taking over a stale warehouse lock", holder = %holder);
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    return Err(WarehouseError::Locked {
                        path: path.display().to_string(),
                        holder,
                    });
                }
                Err(e) => return Err(io(&path, "create lock")(e)),
            }
        }
        Err(WarehouseError::Locked {
            path: path.display().to_string(),
            holder: "unknown".into(),
        })
    }
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// A lock is stale when it names a process on this host that no longer exists, or when it
/// was taken on another host (a container: its pid and hostname are gone with it) more than
/// 6 hours ago — the object-store lock's rule, since another host cannot be checked.
fn is_stale(holder: &str) -> bool {
    let since = holder
        .rsplit("since ")
        .next()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t.trim()).ok());
    let host = holder
        .split(" on ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or("");
    if host != hostname() {
        return since.is_some_and(|t| {
            chrono::Utc::now().signed_duration_since(t) > chrono::Duration::hours(6)
        });
    }
    is_stale_here(holder)
}

fn is_stale_here(holder: &str) -> bool {
    let mut words = holder.split_whitespace();
    let (Some("pid"), Some(pid)) = (words.next(), words.next()) else {
        return false;
    };
    let host = holder
        .split(" on ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or("");
    host == hostname()
        && Path::new("/proc").is_dir()
        && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Writer settings shared by every table. Snappy, not zstd: ingest writes many small files
/// (one per input and hour), and zstd's per-column-chunk context setup measured at over 40%
/// of ingest CPU. Statistics let query engines prune by time.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(256 * 1024))
        .set_created_by("linkmeter".to_string())
        .build()
}

fn io(path: &Path, op: &'static str) -> impl FnOnce(std::io::Error) -> WarehouseError {
    let path = path.display().to_string();
    move |source| WarehouseError::Io { path, op, source }
}

impl LocalSink {
    /// The final path of a file (its directory created) and a fresh temporary path for it.
    /// The temporary file lives outside every table directory so no reader lists it, and on
    /// the same filesystem so the rename into place is atomic.
    fn staging(&self, rel_path: &str) -> Result<(PathBuf, PathBuf), WarehouseError> {
        let target = self.root.join(rel_path);
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir).map_err(io(dir, "create directory"))?;
        }
        let tmp = self.root.join("_tmp").join(format!(
            "{}-{}-{}.tmp",
            std::process::id(),
            self.tmp_seq.fetch_add(1, Ordering::Relaxed),
            rel_path.replace('/', "_")
        ));
        Ok((target, tmp))
    }
}

impl Sink for LocalSink {
    fn put(&self, rel_path: &str, batches: &[RecordBatch]) -> Result<u64, WarehouseError> {
        let (target, tmp) = self.staging(rel_path)?;
        let schema =
            batches
                .first()
                .map(|b| b.schema())
                .ok_or_else(|| WarehouseError::Corrupt {
                    path: rel_path.to_string(),
                    message: "nothing to write".into(),
                })?;
        let file = File::create(&tmp).map_err(io(&tmp, "create"))?;
        let mut w = ArrowWriter::try_new(BufWriter::new(file), schema, Some(writer_properties()))
            .map_err(|source| WarehouseError::Parquet {
            path: rel_path.to_string(),
            source,
        })?;
        let mut rows = 0u64;
        for b in batches {
            rows += b.num_rows() as u64;
            w.write(b).map_err(|source| WarehouseError::Parquet {
                path: rel_path.to_string(),
                source,
            })?;
        }
        let buf = w.into_inner().map_err(|source| WarehouseError::Parquet {
            path: rel_path.to_string(),
            source,
        })?;
        let file = buf.into_inner().map_err(|e| WarehouseError::Io {
            path: tmp.display().to_string(),
            op: "flush",
            source: e.into_error(),
        })?;
        file.sync_data().map_err(io(&tmp, "sync"))?;
        drop(file);
        fs::rename(&tmp, &target).map_err(io(&target, "rename into place"))?;
        Ok(rows)
    }

    fn put_bytes(&self, rel_path: &str, bytes: &[u8]) -> Result<(), WarehouseError> {
        let (target, tmp) = self.staging(rel_path)?;
        let mut f = File::create(&tmp).map_err(io(&tmp, "create"))?;
        std::io::Write::write_all(&mut f, bytes).map_err(io(&tmp, "write"))?;
        f.sync_data().map_err(io(&tmp, "sync"))?;
        drop(f);
        fs::rename(&tmp, &target).map_err(io(&target, "rename into place"))
    }

    fn lock(&self, command: &str, shard: Option<(u32, u32)>) -> Result<LockGuard, WarehouseError> {
        self.lock_scope(command, shard)
    }

    fn delete(&self, rel_path: &str) -> Result<(), WarehouseError> {
        let p = self.root.join(rel_path);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&p, "delete")(e)),
        }
    }

    fn list(&self, dir: &str) -> Result<Vec<String>, WarehouseError> {
        fn walk(root: &Path, d: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
            let rd = match fs::read_dir(d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            for e in rd {
                let e = e?;
                let p = e.path();
                if e.file_type()?.is_dir() {
                    walk(root, &p, out)?;
                } else if let Ok(rel) = p.strip_prefix(root) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
            Ok(())
        }
        let mut out = Vec::new();
        let d = self.root.join(dir);
        walk(&self.root, &d, &mut out).map_err(io(&d, "list"))?;
        out.sort();
        Ok(out)
    }

    fn get(&self, rel_path: &str) -> Result<Option<Vec<RecordBatch>>, WarehouseError> {
        let p = self.root.join(rel_path);
        let file = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&p, "open")(e)),
        };
        super::read_parquet(file, rel_path).map(Some)
    }

    fn root_display(&self) -> String {
        self.root.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_from_another_host_goes_stale_after_six_hours() {
        let old = "pid 1 on some-container, run, since 2020-01-01T00:00:00Z";
        assert!(is_stale(old), "a container killed long ago");
        let fresh = format!(
            "pid 1 on some-container, run, since {}",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        );
        assert!(!is_stale(&fresh), "another host's live run");
        let mine = format!(
            "pid {} on {}, run, since 2020-01-01T00:00:00Z",
            std::process::id(),
            hostname()
        );
        assert!(!is_stale(&mine), "a live process here, however old");
    }

    #[test]
    fn one_writer_at_a_time_and_stale_locks_are_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let sink = LocalSink::open(d.path()).unwrap();
        let g = sink.lock("ingest").unwrap();
        let e = sink.lock("ingest").unwrap_err().to_string();
        assert!(
            e.contains("locked by another linkmeter run") && e.contains("_lock"),
            "{e}"
        );
        drop(g);
        let g2 = sink.lock("ingest").unwrap();
        drop(g2);
        // A lock left by a process that is gone (pid beyond pid_max) is taken over.
        fs::write(
            d.path().join("_lock"),
            format!("pid 99999999 on {}, ingest, since then", hostname()),
        )
        .unwrap();
        assert!(sink.lock("ingest").is_ok());
    }
}
