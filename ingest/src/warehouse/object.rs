//! The warehouse in an object store (`warehouse = "s3://bucket/prefix"`), through the
//! `object_store` crate that DataFusion reads with, so writers and readers agree on paths.
//!
//! Same guarantees as on local disk: an object PUT is atomic (readers see the whole file or
//! none of it), and the `inputs` commit log makes reruns replace rather than add. The writer
//! lock is an object created only if absent (`If-None-Match: *`); since another machine's
//! process cannot be checked, a lock older than the lock TTL counts as abandoned.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::arrow::ArrowWriter;

use super::local::writer_properties;
use super::{LockGuard, Sink, WarehouseError};

/// A warehouse under a prefix of an object store.
#[derive(Debug)]
pub struct ObjectSink {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    rt: Arc<tokio::runtime::Runtime>,
    lock_ttl: Duration,
}

impl ObjectSink {
    /// A warehouse at `url` (for messages), stored under `prefix` of `store`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        url: &str,
        prefix: &str,
    ) -> Result<Self, WarehouseError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("linkmeter-warehouse")
            .enable_all()
            .build()
            .map_err(|source| WarehouseError::Io {
                path: url.to_string(),
                op: "start the object-store runtime",
                source,
            })?;
        Ok(ObjectSink {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            url: url.trim_end_matches('/').to_string(),
            rt: Arc::new(rt),
            lock_ttl: Duration::from_secs(6 * 3600),
        })
    }

    /// How old a lock must be before it counts as abandoned (default 6 hours).
    pub fn with_lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    fn path(&self, rel: &str) -> StorePath {
        if self.prefix.is_empty() {
            StorePath::from(rel)
        } else {
            StorePath::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// Runs a future on the sink's runtime and waits, from sync code or from inside another
    /// runtime's task (the rollups call the sink from async code).
    fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        self.rt.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv()
            .expect("the warehouse runtime runs every task it is given")
    }

    fn err(
        &self,
        rel: &str,
        op: &'static str,
    ) -> impl FnOnce(object_store::Error) -> WarehouseError {
        let path = format!("{}/{rel}", self.url);
        move |e| WarehouseError::Store {
            path,
            op,
            message: e.to_string(),
        }
    }

    fn put_object(
        &self,
        rel: &str,
        bytes: Bytes,
        mode: PutMode,
    ) -> Result<(), object_store::Error> {
        let (store, path) = (self.store.clone(), self.path(rel));
        self.run(async move {
            store
                .put_opts(
                    &path,
                    PutPayload::from_bytes(bytes),
                    PutOptions {
                        mode,
                        ..Default::default()
                    },
                )
                .await
                .map(|_| ())
        })
    }

    fn get_bytes(&self, rel: &str) -> Result<Option<Bytes>, object_store::Error> {
        Ok(self.get_versioned(rel)?.map(|(b, _)| b))
    }

    /// An object's bytes with its ETag, or `None` when it does not exist.
    fn get_versioned(
        &self,
        rel: &str,
    ) -> Result<Option<(Bytes, Option<String>)>, object_store::Error> {
        let (store, path) = (self.store.clone(), self.path(rel));
        self.run(async move {
            match store.get(&path).await {
                Ok(r) => {
                    let etag = r.meta.e_tag.clone();
                    r.bytes().await.map(|b| Some((b, etag)))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }
}

/// The lock object of a run: `_lock`, or `_locks/shard-I-of-N` for a shard of a sharded ingest.
pub fn lock_name(shard: Option<(u32, u32)>) -> String {
    match shard {
        Some((i, n)) => format!("_locks/shard-{i}-of-{n}"),
        None => "_lock".to_string(),
    }
}

/// Seconds since the Unix epoch written in a lock (`… since 1790812800`).
fn lock_time(holder: &str) -> Option<i64> {
    holder.rsplit("since ").next()?.trim().parse().ok()
}

impl Sink for ObjectSink {
    fn put(&self, rel_path: &str, batches: &[RecordBatch]) -> Result<u64, WarehouseError> {
        let schema =
            batches
                .first()
                .map(|b| b.schema())
                .ok_or_else(|| WarehouseError::Corrupt {
                    path: rel_path.to_string(),
                    message: "nothing to write".into(),
                })?;
        let perr = |source| WarehouseError::Parquet {
            path: rel_path.to_string(),
            source,
        };
        let mut buf = Vec::new();
        let mut w =
            ArrowWriter::try_new(&mut buf, schema, Some(writer_properties())).map_err(perr)?;
        let mut rows = 0u64;
        for b in batches {
            rows += b.num_rows() as u64;
            w.write(b).map_err(perr)?;
        }
        w.close().map_err(perr)?;
        self.put_object(rel_path, Bytes::from(buf), PutMode::Overwrite)
            .map_err(self.err(rel_path, "put"))?;
        Ok(rows)
    }

    fn put_bytes(&self, rel_path: &str, bytes: &[u8]) -> Result<(), WarehouseError> {
        self.put_object(rel_path, Bytes::copy_from_slice(bytes), PutMode::Overwrite)
            .map_err(self.err(rel_path, "put"))
    }

    fn lock(&self, command: &str, shard: Option<(u32, u32)>) -> Result<LockGuard, WarehouseError> {
        let name = lock_name(shard);
        let now = chrono::Utc::now().timestamp();
        let me = format!(
            "pid {} on {}, {command}, since {now}",
            std::process::id(),
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
        );
        let fresh = |holder: &str| {
            lock_time(holder).is_some_and(|t| now - t < self.lock_ttl.as_secs() as i64)
        };
        // A shard run and an unsharded run exclude each other.
        let others = match shard {
            Some(_) => vec!["_lock".to_string()],
            None => self.list("_locks")?,
        };
        for other in others {
            let holder = self
                .get_bytes(&other)
                .map_err(self.err(&other, "read lock"))?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            if fresh(&holder) {
                return Err(WarehouseError::Locked {
                    path: format!("{}/{other}", self.url),
                    holder,
                });
            }
        }
        let acquired = match self.put_object(&name, Bytes::from(me.clone()), PutMode::Create) {
            Ok(()) => true,
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => {
                let (holder, etag) = self
                    .get_versioned(&name)
                    .map_err(self.err(&name, "read lock"))?
                    .map(|(b, e)| (String::from_utf8_lossy(&b).into_owned(), e))
                    .unwrap_or_default();
                if holder == me {
                    // Our own create, retried by the client after a lost response.
                    true
                } else if fresh(&holder) {
                    return Err(WarehouseError::Locked {
                        path: format!("{}/{name}", self.url),
                        holder,
                    });
                } else {
                    // Replace the abandoned lock only if it is still the one we read, so two
                    // runs taking it over at once cannot both succeed.
                    tracing::warn!(message = "taking over an abandoned warehouse lock", holder = %holder);
                    let mode = PutMode::Update(object_store::UpdateVersion {
                        e_tag: etag,
                        version: None,
                    });
                    match self.put_object(&name, Bytes::from(me.clone()), mode) {
                        Ok(()) => true,
                        Err(object_store::Error::Precondition { .. }) => false,
                        Err(e) => return Err(self.err(&name, "take over lock")(e)),
                    }
                }
            }
            Err(e) => return Err(self.err(&name, "create lock")(e)),
        };
        if !acquired {
            return Err(WarehouseError::Locked {
                path: format!("{}/{name}", self.url),
                holder: "another run that took over the abandoned lock at the same time".into(),
            });
        }
        let (store, path, rt) = (self.store.clone(), self.path(&name), self.rt.clone());
        Ok(LockGuard::new(move || {
            let (tx, rx) = std::sync::mpsc::channel();
            rt.spawn(async move {
                // Only our own lock is removed: a run that outlived the TTL must not delete
                // the lock of the run that took over from it.
                let ours = match store.get(&path).await {
                    Ok(r) => r.bytes().await.is_ok_and(|b| b == me.as_bytes()),
                    Err(_) => false,
                };
                if ours {
                    let _ = store.delete(&path).await;
                }
                let _ = tx.send(());
            });
            let _ = rx.recv();
        }))
    }

    fn delete(&self, rel_path: &str) -> Result<(), WarehouseError> {
        let (store, path) = (self.store.clone(), self.path(rel_path));
        self.run(async move {
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        })
        .map_err(self.err(rel_path, "delete"))
    }

    fn list(&self, dir: &str) -> Result<Vec<String>, WarehouseError> {
        let store = self.store.clone();
        let base = self.prefix.clone();
        let prefix = match (base.is_empty(), dir.trim_matches('/')) {
            (_, "") if base.is_empty() => None,
            (_, "") => Some(StorePath::from(base.as_str())),
            (true, d) => Some(StorePath::from(d)),
            (false, d) => Some(StorePath::from(format!("{base}/{d}"))),
        };
        let mut out: Vec<String> = self
            .run(async move { store.list(prefix.as_ref()).try_collect::<Vec<_>>().await })
            .map_err(self.err(dir, "list"))?
            .into_iter()
            .map(|m| {
                let p = m.location.to_string();
                match base.is_empty() {
                    true => p,
                    false => p
                        .strip_prefix(&format!("{base}/"))
                        .unwrap_or(&p)
                        .to_string(),
                }
            })
            .collect();
        out.sort();
        Ok(out)
    }

    fn get(&self, rel_path: &str) -> Result<Option<Vec<RecordBatch>>, WarehouseError> {
        let Some(bytes) = self
            .get_bytes(rel_path)
            .map_err(self.err(rel_path, "get"))?
        else {
            return Ok(None);
        };
        super::read_parquet(bytes, rel_path).map(Some)
    }

    fn root_display(&self) -> String {
        self.url.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_times() {
        assert_eq!(
            lock_time("pid 7 on host, ingest, since 1790812800"),
            Some(1_790_812_800)
        );
        assert_eq!(lock_time("garbage"), None);
    }
}
