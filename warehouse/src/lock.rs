//! The writer lock of scheduled runs: one `run`, `ingest` or `invoice` at a time per warehouse,
//! or several shards of one sharded ingest together, never both.
//!
//! Delta commits keep concurrent writers from corrupting a table; the lock keeps two scheduled
//! jobs from doing the same work at once (and a sharded and an unsharded ingest from planning
//! against each other's half-written segments).
//!
//! - **Local warehouse**: `flock` on `_lock` (exclusive for a whole-warehouse run, shared for a
//!   shard, which also locks `_locks/shard-I-of-N` exclusively). The kernel releases it when the
//!   process dies, so there is no staleness to guess.
//! - **Object store**: `_lock` or `_locks/shard-I-of-N` created only if absent
//!   (`If-None-Match: *`). The holder renews it (a conditional `If-Match` rewrite) every
//!   quarter of the time-to-live; a lock not renewed for the whole TTL counts as abandoned and
//!   is taken over with the same conditional rewrite, so two takers never both win. After
//!   taking its lock a run checks that no lock of the other kind is held, and backs off if
//!   one is.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use crate::store::Warehouse;
use crate::Error;

/// How long an object-store lock lives without renewal.
pub const LOCK_TTL: Duration = Duration::from_secs(15 * 60);

/// Holds a warehouse lock; released on drop.
pub struct LockGuard {
    inner: Held,
}

enum Held {
    Local(#[allow(dead_code)] Vec<std::fs::File>),
    Object {
        store: Arc<dyn ObjectStore>,
        path: StorePath,
        me: String,
        stop: Arc<AtomicBool>,
        renewer: Option<tokio::task::JoinHandle<()>>,
    },
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockGuard")
    }
}

/// The lock of a run: `_lock`, or `_locks/shard-I-of-N` for a shard of a sharded ingest.
pub fn lock_name(shard: Option<(u32, u32)>) -> String {
    match shard {
        Some((i, n)) => format!("_locks/shard-{i}-of-{n}"),
        None => "_lock".to_string(),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

/// Who holds a lock, for messages: `pid P on HOST, COMMAND, since TIME`.
fn holder(command: &str) -> String {
    format!(
        "pid {} on {}, {command}, since {}",
        std::process::id(),
        hostname(),
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    )
}

impl Warehouse {
    /// Takes the writer lock (of one shard's ingest, when `shard` is given).
    pub async fn lock(&self, command: &str, shard: Option<(u32, u32)>) -> Result<LockGuard, Error> {
        match self.local_dir() {
            Some(dir) => local_lock(dir, command, shard),
            None => self.object_lock(command, shard, self.lock_ttl()).await,
        }
    }

    /// [`Warehouse::lock`] on an object store with another time-to-live (tests).
    pub async fn object_lock(
        &self,
        command: &str,
        shard: Option<(u32, u32)>,
        ttl: Duration,
    ) -> Result<LockGuard, Error> {
        let store = self.store();
        let path = self.path(&lock_name(shard));
        let me = holder(command);
        let etag = take(&store, &path, &self.join(&lock_name(shard)), &me, ttl).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let renewer = tokio::spawn(renew(
            store.clone(),
            path.clone(),
            me.clone(),
            etag,
            ttl,
            stop.clone(),
        ));
        let guard = LockGuard {
            inner: Held::Object {
                store: store.clone(),
                path,
                me,
                stop,
                renewer: Some(renewer),
            },
        };
        // The other kind of lock must not be live: checked after taking ours, so of two runs
        // starting together at least one sees the other.
        let others: Vec<StorePath> = match shard {
            Some(_) => vec![self.path("_lock")],
            None => list(&store, &self.path("_locks")).await?,
        };
        for p in others {
            if let Some((h, age)) = read(&store, &p).await? {
                if age < ttl {
                    drop(guard);
                    return Err(Error::Locked {
                        path: format!("{}/{}", self.display(), rel(&p, &self.path(""))),
                        holder: h,
                    });
                }
            }
        }
        Ok(guard)
    }
}

fn rel(p: &StorePath, root: &StorePath) -> String {
    p.as_ref()
        .strip_prefix(root.as_ref())
        .unwrap_or(p.as_ref())
        .trim_start_matches('/')
        .to_string()
}

fn local_lock(
    dir: &std::path::Path,
    command: &str,
    shard: Option<(u32, u32)>,
) -> Result<LockGuard, Error> {
    use std::io::{Seek, Write};
    let open = |p: &std::path::Path| {
        if let Some(d) = p.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(p)
            .map_err(|e| Error::Store {
                path: p.display().to_string(),
                op: "open the lock",
                message: e.to_string(),
            })
    };
    let busy = |p: &std::path::Path| Error::Locked {
        path: p.display().to_string(),
        holder: std::fs::read_to_string(p)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "another process".into()),
    };
    let mut files = Vec::new();
    let main = dir.join("_lock");
    let f = open(&main)?;
    let got = match shard {
        None => f.try_lock(),
        Some(_) => f.try_lock_shared(),
    };
    if got.is_err() {
        return Err(busy(&main));
    }
    let mut mine = f;
    if shard.is_some() {
        let p = dir.join(lock_name(shard));
        let g = open(&p)?;
        if g.try_lock().is_err() {
            return Err(busy(&p));
        }
        files.push(mine);
        mine = g;
    }
    // The holder is written for messages only; the kernel's lock is what counts.
    let _ = mine.set_len(0);
    let _ = mine.rewind();
    let _ = mine.write_all(holder(command).as_bytes());
    files.push(mine);
    Ok(LockGuard {
        inner: Held::Local(files),
    })
}

/// A lock's holder and how long ago it was written, or `None` when there is none.
async fn read(
    store: &Arc<dyn ObjectStore>,
    path: &StorePath,
) -> Result<Option<(String, Duration)>, Error> {
    match store.get(path).await {
        Ok(r) => {
            let modified = r.meta.last_modified;
            let b = r
                .bytes()
                .await
                .map_err(Error::store(path, "read the lock"))?;
            let age = (chrono::Utc::now() - modified).to_std().unwrap_or_default();
            Ok(Some((String::from_utf8_lossy(&b).into_owned(), age)))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::store(path, "read the lock")(e)),
    }
}

async fn list(store: &Arc<dyn ObjectStore>, dir: &StorePath) -> Result<Vec<StorePath>, Error> {
    use futures::TryStreamExt;
    store
        .list(Some(dir))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(Error::store(dir, "list the locks"))
}

fn versioned(e_tag: Option<String>, version: Option<String>) -> UpdateVersion {
    UpdateVersion { e_tag, version }
}

/// Creates the lock, or takes over an abandoned one with a conditional rewrite. Returns the
/// lock object's version (for renewals).
async fn take(
    store: &Arc<dyn ObjectStore>,
    path: &StorePath,
    at: &str,
    me: &str,
    ttl: Duration,
) -> Result<UpdateVersion, Error> {
    let payload = || PutPayload::from_bytes(Bytes::from(me.to_string()));
    match store
        .put_opts(path, payload(), PutOptions::from(PutMode::Create))
        .await
    {
        Ok(r) => return Ok(versioned(r.e_tag, r.version)),
        Err(object_store::Error::AlreadyExists { .. }) => {}
        Err(e) => return Err(Error::store(at, "create the lock")(e)),
    }
    let current = match store.get(path).await {
        Ok(r) => r,
        // Released between our two requests: try once more from the start.
        Err(object_store::Error::NotFound { .. }) => {
            return store
                .put_opts(path, payload(), PutOptions::from(PutMode::Create))
                .await
                .map(|r| versioned(r.e_tag, r.version))
                .map_err(|_| Error::Locked {
                    path: at.to_string(),
                    holder: "another run that started at the same moment".into(),
                })
        }
        Err(e) => return Err(Error::store(at, "read the lock")(e)),
    };
    let meta = current.meta.clone();
    let who = String::from_utf8_lossy(
        &current
            .bytes()
            .await
            .map_err(Error::store(at, "read the lock"))?,
    )
    .into_owned();
    let age = (chrono::Utc::now() - meta.last_modified)
        .to_std()
        .unwrap_or_default();
    if age < ttl {
        return Err(Error::Locked {
            path: at.to_string(),
            holder: who,
        });
    }
    tracing::warn!(message = "taking over an abandoned warehouse lock", lock = %at, holder = %who, age_secs = age.as_secs());
    // Only the version we read may be replaced: of two runs taking over together, one wins.
    store
        .put_opts(
            path,
            payload(),
            PutOptions::from(PutMode::Update(versioned(meta.e_tag, meta.version))),
        )
        .await
        .map(|r| versioned(r.e_tag, r.version))
        .map_err(|e| match e {
            object_store::Error::Precondition { .. }
            | object_store::Error::AlreadyExists { .. } => Error::Locked {
                path: at.to_string(),
                holder: "another run that took over the abandoned lock first".into(),
            },
            e => Error::store(at, "take over the lock")(e),
        })
}

/// Rewrites the lock every quarter of its TTL so a long run keeps it.
async fn renew(
    store: Arc<dyn ObjectStore>,
    path: StorePath,
    me: String,
    mut version: UpdateVersion,
    ttl: Duration,
    stop: Arc<AtomicBool>,
) {
    let every = ttl / 4;
    loop {
        let t0 = tokio::time::Instant::now();
        while t0.elapsed() < every {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200).min(every)).await;
        }
        let r = store
            .put_opts(
                &path,
                PutPayload::from_bytes(Bytes::from(me.clone())),
                PutOptions::from(PutMode::Update(version.clone())),
            )
            .await;
        match r {
            Ok(r) => version = versioned(r.e_tag, r.version),
            Err(e) => {
                tracing::error!(message = "could not renew the warehouse lock; another run may take it over", lock = %path, error = %e);
            }
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let Held::Object {
            store,
            path,
            me,
            stop,
            renewer,
        } = &mut self.inner
        else {
            return; // the kernel releases flocks with the files
        };
        stop.store(true, Ordering::Relaxed);
        if let Some(r) = renewer.take() {
            r.abort();
        }
        let (store, path, me) = (store.clone(), path.clone(), me.clone());
        // Only our own lock is deleted (a run that outlived its TTL may have lost it).
        let release = async move {
            if let Ok(r) = store.get(&path).await {
                if r.bytes().await.is_ok_and(|b| b.as_ref() == me.as_bytes()) {
                    let _ = store.delete(&path).await;
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => match h.runtime_flavor() {
                tokio::runtime::RuntimeFlavor::CurrentThread => {
                    h.spawn(release);
                }
                _ => tokio::task::block_in_place(|| h.block_on(release)),
            },
            Err(_) => {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(release);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_writer_at_a_time_and_shards_together() {
        let d = tempfile::tempdir().unwrap();
        let wh = Warehouse::local(d.path()).unwrap();
        let g = wh.lock("ingest", None).await.unwrap();
        let e = wh.lock("ingest", None).await.unwrap_err().to_string();
        assert!(
            e.contains("locked by another linkmeter run")
                && e.contains("_lock")
                && e.contains("ingest"),
            "{e}"
        );
        assert!(
            wh.lock("ingest", Some((0, 2))).await.is_err(),
            "no shard beside a whole run"
        );
        drop(g);
        let s0 = wh.lock("ingest", Some((0, 2))).await.unwrap();
        let s1 = wh.lock("ingest", Some((1, 2))).await.unwrap();
        assert!(
            wh.lock("ingest", Some((1, 2))).await.is_err(),
            "one holder per shard"
        );
        assert!(
            wh.lock("run", None).await.is_err(),
            "no whole run beside shards"
        );
        drop((s0, s1));
        assert!(wh.lock("run", None).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn object_locks_expire_renew_and_are_taken_over_once() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let wh = Warehouse::object(store.clone(), "s3://b/wh").unwrap();
        let ttl = Duration::from_millis(1200);
        let g = wh.object_lock("run", None, ttl).await.unwrap();
        assert!(wh.object_lock("run", None, ttl).await.is_err());
        // Renewed while held: still busy after more than a TTL.
        tokio::time::sleep(ttl + Duration::from_millis(600)).await;
        assert!(wh.object_lock("run", None, ttl).await.is_err(), "renewed");
        drop(g);
        assert!(
            store.get(&StorePath::from("wh/_lock")).await.is_err(),
            "released"
        );
        // An abandoned lock (written, never renewed) is taken over after the TTL, by one of two.
        store
            .put(
                &StorePath::from("wh/_lock"),
                PutPayload::from_static(b"pid 1 on gone, run, since then"),
            )
            .await
            .unwrap();
        assert!(wh.object_lock("run", None, ttl).await.is_err());
        tokio::time::sleep(ttl).await;
        let (a, b) = tokio::join!(
            wh.object_lock("run", None, ttl),
            wh.object_lock("run", None, ttl)
        );
        assert!(
            a.is_ok() != b.is_ok(),
            "exactly one takes over: {a:?} {b:?}"
        );
    }
}
