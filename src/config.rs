//! `linkmeter.toml`: where the warehouse and inventory are, and the sources to ingest.
//! Every setting can be overridden by a `LINKMETER_*` environment variable (documented on
//! each field) and then by command-line flags.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Warehouse root directory (`LINKMETER_WAREHOUSE`). Relative to the config file.
    pub warehouse: String,
    /// Inventory file (`LINKMETER_INVENTORY`). Relative to the config file.
    pub inventory: String,
    /// Price book (`LINKMETER_PRICES`). Relative to the config file; needed by `invoice`.
    #[serde(default)]
    pub prices: Option<String>,
    /// Ingest settings.
    #[serde(default)]
    pub ingest: IngestSettings,
    /// Where flow logs come from.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    #[serde(skip)]
    base: PathBuf,
}

/// `[ingest]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    /// Worker threads (`LINKMETER_WORKERS`); default: the number of cores.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Rows a worker buffers before it writes them (a segment); bounds memory.
    #[serde(default = "default_flush_rows")]
    pub flush_rows: usize,
    /// Fail the run (exit code 3) when any input is quarantined (`LINKMETER_STRICT=1`).
    #[serde(default)]
    pub strict: bool,
}

fn default_flush_rows() -> usize {
    100_000
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            workers: None,
            flush_rows: default_flush_rows(),
            strict: false,
        }
    }
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A short name; part of each input's identity, so keep it stable.
    pub name: String,
    /// A local file or directory (relative to the config file), or `file:///abs/path`.
    pub uri: String,
    /// Field list for text files without a header line (default: the v2 default format).
    #[serde(default)]
    pub format: Option<String>,
    /// Account to assume for records whose `account-id` is `unknown` and whose path has no
    /// `AWSLogs/ACCOUNT/` segment.
    #[serde(default)]
    pub account: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Config {
    /// Reads a config file and applies `LINKMETER_*` overrides.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("cannot read config {}; create one (see README \"Configuration\") or run `linkmeter demo` to see a working example", path.display())
        })?;
        let mut c: Config = toml::from_str(&text)
            .with_context(|| format!("config {} is not valid", path.display()))?;
        c.base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if let Some(v) = env("LINKMETER_WAREHOUSE") {
            c.warehouse = v;
        }
        if let Some(v) = env("LINKMETER_INVENTORY") {
            c.inventory = v;
        }
        if let Some(v) = env("LINKMETER_PRICES") {
            c.prices = Some(v);
        }
        if let Some(v) = env("LINKMETER_WORKERS") {
            c.ingest.workers = Some(
                v.parse()
                    .with_context(|| format!("LINKMETER_WORKERS={v:?} is not a whole number"))?,
            );
        }
        if let Some(v) = env("LINKMETER_STRICT") {
            c.ingest.strict = matches!(v.as_str(), "1" | "true" | "yes");
        }
        let mut names = std::collections::HashSet::new();
        for s in &c.sources {
            if !names.insert(s.name.as_str()) {
                bail!(
                    "config {}: source name {:?} is used twice; names must be unique",
                    path.display(),
                    s.name
                );
            }
        }
        Ok(c)
    }

    /// Resolves a path from the config relative to the config file's directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = p.strip_prefix("file://").unwrap_or(p);
        let pb = PathBuf::from(p);
        if pb.is_absolute() {
            pb
        } else {
            self.base.join(pb)
        }
    }

    /// The warehouse directory.
    pub fn warehouse_path(&self) -> PathBuf {
        self.resolve(&self.warehouse)
    }

    /// The inventory file.
    pub fn inventory_path(&self) -> PathBuf {
        self.resolve(&self.inventory)
    }
}

/// What a source URI points at.
pub enum SourceKind {
    /// A local file or directory.
    Local(PathBuf),
}

impl SourceConfig {
    /// Classifies the URI; schemes that this build cannot read are refused with a reason.
    pub fn kind(&self, cfg: &Config) -> Result<SourceKind> {
        if let Some((scheme, _)) = self.uri.split_once("://") {
            if scheme != "file" {
                bail!(
                    "source {:?}: {scheme}:// sources are not supported by this version of linkmeter; use a local path (sync the data first, e.g. `aws s3 sync`)",
                    self.name
                );
            }
        }
        Ok(SourceKind::Local(cfg.resolve(&self.uri)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_and_paths_resolve() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("linkmeter.toml");
        std::fs::write(&p, "warehouse = \"wh\"\ninventory = \"inv.toml\"\n[[sources]]\nname = \"a\"\nuri = \"logs\"\n").unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.warehouse_path(), d.path().join("wh"));
        assert!(
            matches!(c.sources[0].kind(&c).unwrap(), SourceKind::Local(p) if p == d.path().join("logs"))
        );
        std::fs::write(&p, "warehouse = \"wh\"\ninventory = \"i\"\nwarehous = 1\n").unwrap();
        let e = format!("{:#}", Config::load(&p).unwrap_err());
        assert!(e.contains("unknown field `warehous`"), "{e}");
    }
}
