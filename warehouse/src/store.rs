//! The [`Warehouse`] handle: where the tables live (a local directory or a prefix of an object
//! store) and the tables opened from it.
//!
//! Everything goes through `object_store` (the local filesystem included), the crate delta-rs
//! and DataFusion read with, so writers and readers agree on paths. An object store is handed in
//! by the caller with its credentials; this crate never talks to AWS itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use url::Url;

use crate::registry::TableDef;
use crate::table::Table;
use crate::Error;

/// A shared handle on one of the warehouse's tables (its writers take turns).
pub type SharedTable = Arc<tokio::sync::Mutex<Table>>;

/// An open warehouse.
pub struct Warehouse {
    root: Arc<dyn ObjectStore>,
    url: Url,
    prefix: StorePath,
    local: Option<PathBuf>,
    lock_ttl: std::time::Duration,
    open: std::sync::Mutex<HashMap<&'static str, SharedTable>>,
    /// Held while a table is opened or created, so two writers of this process never race
    /// to create the same table.
    opening: tokio::sync::Mutex<()>,
    /// Decoded `inputs` files by path (files are immutable, so a path's rows never change).
    inputs_rows: std::sync::Mutex<HashMap<String, Arc<Vec<crate::inputs::InputRow>>>>,
}

impl std::fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl Warehouse {
    /// A warehouse in a local directory (created when missing).
    pub fn local(dir: &Path) -> Result<Warehouse, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Store {
            path: dir.display().to_string(),
            op: "create directory",
            message: e.to_string(),
        })?;
        let abs = std::fs::canonicalize(dir).map_err(|e| Error::Store {
            path: dir.display().to_string(),
            op: "resolve",
            message: e.to_string(),
        })?;
        let url = Url::from_directory_path(&abs).map_err(|()| Error::Store {
            path: abs.display().to_string(),
            op: "make a URL of",
            message: "not an absolute path".into(),
        })?;
        let prefix = StorePath::from_absolute_path(&abs).map_err(|e| Error::Store {
            path: abs.display().to_string(),
            op: "resolve",
            message: e.to_string(),
        })?;
        Ok(Warehouse {
            root: Arc::new(LocalFileSystem::new()),
            url,
            prefix,
            local: Some(abs),
            lock_ttl: crate::lock::LOCK_TTL,
            open: Default::default(),
            opening: Default::default(),
            inputs_rows: Default::default(),
        })
    }

    /// A warehouse at `url` (`s3://bucket/prefix`) in `store`, the store of that bucket.
    pub fn object(store: Arc<dyn ObjectStore>, url: &str) -> Result<Warehouse, Error> {
        let bad = |m: &str| Error::Store {
            path: url.to_string(),
            op: "open",
            message: m.to_string(),
        };
        let mut u = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if u.host_str().unwrap_or("").is_empty() {
            return Err(bad("the URL names no bucket; write s3://BUCKET/PREFIX"));
        }
        let path = u.path().trim_matches('/').to_string();
        u.set_path(&format!("/{path}/").replace("//", "/"));
        Ok(Warehouse {
            root: store,
            url: u,
            prefix: StorePath::from(path),
            local: None,
            lock_ttl: crate::lock::LOCK_TTL,
            open: Default::default(),
            opening: Default::default(),
            inputs_rows: Default::default(),
        })
    }

    /// How long an object-store lock lives without renewal before another run may take it
    /// over (default [`crate::lock::LOCK_TTL`]).
    pub fn with_lock_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// The object-store lock's time-to-live.
    pub fn lock_ttl(&self) -> std::time::Duration {
        self.lock_ttl
    }

    /// The warehouse's root URL (`file:///…/` or `s3://bucket/prefix/`).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The local directory, for a local warehouse.
    pub fn local_dir(&self) -> Option<&Path> {
        self.local.as_deref()
    }

    /// The store holding the warehouse (paths from the store's root, not the warehouse's).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.root.clone()
    }

    /// Where the warehouse is, for messages: a path or a URL.
    pub fn display(&self) -> String {
        match &self.local {
            Some(p) => p.display().to_string(),
            None => self.url.as_str().trim_end_matches('/').to_string(),
        }
    }

    /// The path of a warehouse-relative path inside [`Warehouse::store`] (for engines that
    /// read the files themselves).
    pub fn store_path(&self, rel: &str) -> String {
        self.path(rel).to_string()
    }

    /// The store path of a warehouse-relative path.
    pub(crate) fn path(&self, rel: &str) -> StorePath {
        let mut p = self.prefix.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.clone().join(part);
        }
        p
    }

    /// Opens a table for writing, creating it when it does not exist yet. Each table is opened
    /// once per warehouse handle; writers in this process take turns on it.
    pub async fn table(&self, def: &'static TableDef) -> Result<SharedTable, Error> {
        if let Some(t) = self.cached(def) {
            return Ok(t);
        }
        let mut t = Table::open_or_create(self, def).await?;
        t.evolve().await?;
        let t = Arc::new(tokio::sync::Mutex::new(t));
        let mut open = self.open.lock().expect("no panics while holding it");
        Ok(open.entry(def.name).or_insert(t).clone())
    }

    /// Like [`Warehouse::table`], but `None` (nothing created) when the table was never written.
    pub async fn table_if_exists(
        &self,
        def: &'static TableDef,
    ) -> Result<Option<SharedTable>, Error> {
        if let Some(t) = self.cached(def) {
            return Ok(Some(t));
        }
        let _opening = self.opening.lock().await;
        if let Some(t) = self.cached(def) {
            return Ok(Some(t));
        }
        let Some(mut t) = Table::open(self, def).await? else {
            return Ok(None);
        };
        t.evolve().await?;
        let t = Arc::new(tokio::sync::Mutex::new(t));
        let mut open = self.open.lock().expect("no panics while holding it");
        Ok(Some(open.entry(def.name).or_insert(t).clone()))
    }

    /// The decoded rows of an `inputs` file read before.
    pub(crate) fn cached_rows(&self, path: &str) -> Option<Arc<Vec<crate::inputs::InputRow>>> {
        self.inputs_rows
            .lock()
            .expect("no panics while holding it")
            .get(path)
            .cloned()
    }

    /// Remembers the decoded rows of an `inputs` file.
    pub(crate) fn cache_rows(
        &self,
        path: &str,
        rows: Vec<crate::inputs::InputRow>,
    ) -> Arc<Vec<crate::inputs::InputRow>> {
        let rows = Arc::new(rows);
        self.inputs_rows
            .lock()
            .expect("no panics while holding it")
            .insert(path.to_string(), rows.clone());
        rows
    }

    /// Forgets the rows of files no longer in the table.
    pub(crate) fn keep_cached_rows<'p>(&self, live: impl Iterator<Item = &'p str>) {
        let live: std::collections::HashSet<&str> = live.collect();
        self.inputs_rows
            .lock()
            .expect("no panics while holding it")
            .retain(|k, _| live.contains(k.as_str()));
    }

    fn cached(&self, def: &TableDef) -> Option<SharedTable> {
        self.open
            .lock()
            .expect("no panics while holding it")
            .get(def.name)
            .cloned()
    }

    /// Opens a table's latest snapshot for reading, or `None` when it was never written.
    pub async fn read_table(&self, def: &'static TableDef) -> Result<Option<Table>, Error> {
        Table::open(self, def).await
    }

    /// Writes a whole file (a report) at a warehouse-relative path; readers see all of it or
    /// nothing (an object PUT; a rename on local disk).
    pub async fn put_file(&self, rel: &str, bytes: Bytes) -> Result<(), Error> {
        self.root
            .put(&self.path(rel), PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
            .map_err(Error::store(self.join(rel), "write"))
    }

    /// Reads a whole file, or `None` when it does not exist.
    pub async fn get_file(&self, rel: &str) -> Result<Option<Bytes>, Error> {
        match self.root.get(&self.path(rel)).await {
            Ok(r) => r
                .bytes()
                .await
                .map(Some)
                .map_err(Error::store(self.join(rel), "read")),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(self.join(rel), "read")(e)),
        }
    }

    /// The files under a warehouse-relative directory, as warehouse-relative paths.
    pub async fn list_files(&self, dir: &str) -> Result<Vec<String>, Error> {
        use futures::TryStreamExt;
        let base = self.path(dir);
        let found: Vec<object_store::ObjectMeta> = self
            .root
            .list(Some(&base))
            .try_collect()
            .await
            .map_err(Error::store(self.join(dir), "list"))?;
        let skip = self.prefix.as_ref().len();
        Ok(found
            .into_iter()
            .map(|m| {
                let p = m.location.as_ref();
                p.get(skip..)
                    .unwrap_or(p)
                    .trim_start_matches('/')
                    .to_string()
            })
            .collect())
    }

    /// Deletes a file at a warehouse-relative path (gone already is fine).
    pub async fn delete_file(&self, rel: &str) -> Result<(), Error> {
        match self.root.delete(&self.path(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store(self.join(rel), "delete")(e)),
        }
    }

    /// A warehouse-relative path as a path or URL, for messages.
    pub fn join(&self, rel: &str) -> String {
        format!("{}/{rel}", self.display())
    }

    /// Refuses a warehouse written before Delta Lake. Tables were plain Parquet then, and the
    /// `inputs` table a set of segment manifests; reading such a warehouse as Delta would see
    /// nothing and ingest everything again beside the old files.
    pub async fn check_layout(&self) -> Result<(), Error> {
        use futures::TryStreamExt;
        let first = |dir: &str| {
            let p = self.path(dir);
            let root = self.root.clone();
            let at = self.join(dir);
            async move {
                let mut list = root.list(Some(&p));
                list.try_next().await.map_err(Error::store(at, "list"))
            }
        };
        if first("inputs/_delta_log").await?.is_some() {
            return Ok(());
        }
        if first("inputs")
            .await?
            .is_some_and(|m| m.location.as_ref().ends_with(".parquet"))
        {
            return Err(Error::OldLayout {
                path: self.display(),
            });
        }
        Ok(())
    }
}
