//! Local files and directories (walked recursively, in name order; hidden files skipped).
//!
//! Only regular files are inputs. Symbolic links are skipped unless the source allows links
//! whose target is a regular file inside its root (a link out of the root could expose any
//! file the process can read through `quarantine.raw`; one to `/dev/zero` would never end);
//! devices, FIFOs and sockets are skipped with a warning.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{account_from_key, Batch, InputRef, Source, SourceError};

/// A file or a directory tree of flow-log files.
#[derive(Debug, Clone)]
pub struct FileSource {
    name: String,
    root: PathBuf,
    listed: bool,
    inside_links: bool,
    stop: Option<Arc<AtomicBool>>,
}

impl FileSource {
    /// A source named `name` reading `root` (a file or a directory).
    pub fn new(name: &str, root: &Path) -> Self {
        FileSource {
            name: name.to_string(),
            root: root.to_path_buf(),
            listed: false,
            inside_links: false,
            stop: None,
        }
    }

    /// Follows symbolic links whose target is a regular file inside the root.
    pub fn follow_links_inside(mut self, yes: bool) -> Self {
        self.inside_links = yes;
        self
    }

    /// Stops listing (returning what was found) when `stop` is raised.
    pub fn with_stop(mut self, stop: Option<Arc<AtomicBool>>) -> Self {
        self.stop = stop;
        self
    }
}

/// A directory walk: the options, and where it stands.
struct Walk<'a> {
    root: &'a Path,
    inside_links: bool,
    stop: Option<&'a AtomicBool>,
    /// Files found, and whether each was reached through a symbolic link.
    out: Vec<(PathBuf, bool)>,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path) -> std::io::Result<()> {
        let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if self.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return Ok(());
            }
            let name = e.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let ft = e.file_type()?;
            let path = e.path();
            if ft.is_dir() {
                self.dir(&path)?;
            } else if ft.is_file() {
                self.out.push((path, false));
            } else if ft.is_symlink() {
                self.link(path);
            } else {
                tracing::warn!(message = "skipped: not a regular file (a device, FIFO or socket)", path = %path.display());
            }
        }
        Ok(())
    }

    fn link(&mut self, path: PathBuf) {
        if !self.inside_links {
            tracing::warn!(message = "skipped: a symbolic link (set [ingest] follow_symlinks = true to read links to files inside the source)", path = %path.display());
            return;
        }
        match fs::canonicalize(&path) {
            Ok(t) if t.starts_with(self.root) && t.is_file() => self.out.push((path, true)),
            _ => {
                tracing::warn!(message = "skipped: a symbolic link to something other than a regular file inside the source", path = %path.display())
            }
        }
    }
}

impl Source for FileSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn next_batch(&mut self) -> Result<Option<Batch>, SourceError> {
        if std::mem::replace(&mut self.listed, true) {
            return Ok(None);
        }
        Ok(Some(Batch::listing(self.list()?, None)))
    }
}

impl FileSource {
    /// Every file, in name order.
    pub fn list(&self) -> Result<Vec<InputRef>, SourceError> {
        let err = |source| SourceError::List {
            name: self.name.clone(),
            path: self.root.display().to_string(),
            source,
        };
        let meta = fs::metadata(&self.root).map_err(err)?;
        let (root, paths) = if meta.is_dir() {
            let root = fs::canonicalize(&self.root).map_err(err)?;
            let mut w = Walk {
                root: &root,
                inside_links: self.inside_links,
                stop: self.stop.as_deref(),
                out: Vec::new(),
            };
            w.dir(&self.root).map_err(err)?;
            (Some(root.clone()), w.out)
        } else if meta.is_file() {
            (None, vec![(self.root.clone(), self.root.is_symlink())])
        } else {
            return Err(err(std::io::Error::other(
                "not a regular file or directory (a device, FIFO or socket cannot be a source)",
            )));
        };
        // The walk descends only real directories, so a regular file's canonical path is the
        // canonical root joined with its relative path: no realpath per file (a readlink per
        // path component, most of a rerun's listing time over thousands of files).
        let rel_of = |p: &Path| match &root {
            Some(_) => p.strip_prefix(&self.root).unwrap_or(p).to_path_buf(),
            None => PathBuf::from(p.file_name().unwrap_or_default()),
        };
        let canonical = |p: &Path, link: bool| match (&root, link) {
            (Some(r), false) => r.join(rel_of(p)),
            _ => fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()),
        };
        let mut out = Vec::with_capacity(paths.len());
        // A file reached both directly and through a link is one input, under its own name
        // (so adding a link never renames an input).
        let mut seen: HashSet<PathBuf> = paths
            .iter()
            .filter(|(_, link)| !link)
            .map(|(p, _)| canonical(p, false))
            .collect();
        for (p, link) in paths {
            let rel = rel_of(&p).to_string_lossy().replace('\\', "/");
            let size = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            let abs = canonical(&p, link);
            if link && !seen.insert(abs.clone()) {
                continue;
            }
            out.push(InputRef {
                key: format!("{}:{}", self.name, rel),
                uri: abs.display().to_string(),
                account_hint: account_from_key(&rel)
                    .or_else(|| account_from_key(&abs.to_string_lossy())),
                location: super::Location::File(p),
                version: None,
                size,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_recursively_in_order_with_stable_keys() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("AWSLogs/123456789012/vpcflowlogs");
        fs::create_dir_all(&sub).unwrap();
        fs::write(sub.join("b.log"), "x").unwrap();
        fs::write(sub.join("a.log.gz"), "xy").unwrap();
        fs::write(d.path().join(".hidden"), "x").unwrap();
        let s = FileSource::new("fl", d.path());
        let l = s.list().unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].key, "fl:AWSLogs/123456789012/vpcflowlogs/a.log.gz");
        assert_eq!(l[0].size, 2);
        assert_eq!(l[0].account_hint.as_deref(), Some("123456789012"));
        let e = FileSource::new("fl", &d.path().join("missing"))
            .list()
            .unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn links_are_skipped_unless_they_stay_inside_the_root() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "private").unwrap();
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("sub")).unwrap();
        fs::write(d.path().join("sub/real.log"), "x").unwrap();
        symlink(outside.path().join("secret"), d.path().join("out.log")).unwrap();
        symlink(d.path().join("sub/real.log"), d.path().join("a-dup.log")).unwrap();
        fs::create_dir(d.path().join(".store")).unwrap();
        fs::write(d.path().join(".store/b.log"), "y").unwrap();
        symlink(d.path().join(".store/b.log"), d.path().join("sub/in.log")).unwrap();
        symlink(d.path().join(".store/b.log"), d.path().join("sub/in2.log")).unwrap();
        symlink("/dev/zero", d.path().join("zero.log")).unwrap();
        let keys = |s: FileSource| -> Vec<String> {
            s.list().unwrap().into_iter().map(|i| i.key).collect()
        };
        assert_eq!(
            keys(FileSource::new("fl", d.path())),
            ["fl:sub/real.log"],
            "no link is followed by default"
        );
        assert_eq!(
            keys(FileSource::new("fl", d.path()).follow_links_inside(true)),
            ["fl:sub/in.log", "fl:sub/real.log"],
            "links inside the root are followed, each file read once under its own name, never /dev/zero or outside"
        );
    }

    #[cfg(unix)]
    #[test]
    fn fifos_are_skipped_and_a_raised_stop_ends_the_listing() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("a.log"), "x").unwrap();
        let fifo = d.path().join("b.fifo");
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(ok.success());
        let l = FileSource::new("fl", d.path()).list().unwrap();
        assert_eq!(l.len(), 1, "the FIFO is not an input");
        let e = FileSource::new("fl", &fifo).list().unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let stop = Arc::new(AtomicBool::new(true));
        let l = FileSource::new("fl", d.path())
            .with_stop(Some(stop))
            .list()
            .unwrap();
        assert!(l.is_empty());
    }
}
