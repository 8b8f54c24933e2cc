//! Local files and directories (walked recursively, in name order; hidden files skipped).

use std::fs;
use std::path::{Path, PathBuf};

use super::{account_from_key, Batch, InputRef, Source, SourceError};

/// A file or a directory tree of flow-log files.
#[derive(Debug, Clone)]
pub struct FileSource {
    name: String,
    root: PathBuf,
    listed: bool,
}

impl FileSource {
    /// A source named `name` reading `root` (a file or a directory).
    pub fn new(name: &str, root: &Path) -> Self {
        FileSource {
            name: name.to_string(),
            root: root.to_path_buf(),
            listed: false,
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(&e.path(), out)?;
        } else if ft.is_file() || ft.is_symlink() {
            out.push(e.path());
        }
    }
    Ok(())
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
        let mut paths = Vec::new();
        if meta.is_dir() {
            walk(&self.root, &mut paths).map_err(err)?;
        } else {
            paths.push(self.root.clone());
        }
        let mut out = Vec::with_capacity(paths.len());
        for p in paths {
            let rel = if meta.is_dir() {
                p.strip_prefix(&self.root).unwrap_or(&p).to_path_buf()
            } else {
                PathBuf::from(p.file_name().unwrap_or_default())
            };
            let rel = rel.to_string_lossy().replace('\\', "/");
            let size = fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            let abs = fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
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
}
