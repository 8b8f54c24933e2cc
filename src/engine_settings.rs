//! `[engine]` settings: the query engine's memory budget and where queries run.

use anyhow::{anyhow, bail, Result};
use serde::Deserialize;

use crate::units::size;

/// The query engine's memory budget when the config sets none: the month close of a
/// 100 M-row month peaks far below it since it reads hourly sums (README "Benchmarks").
pub const DEFAULT_MEMORY_LIMIT: usize = 512 << 20;

/// `[engine]` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// Bytes the query engine's operators (sorts, joins, aggregations) may hold before they
    /// spill to disk: a number of bytes or a size such as "512MiB" or "1GiB", or "unlimited";
    /// unset: [`DEFAULT_MEMORY_LIMIT`].
    #[serde(deserialize_with = "size::de_limit")]
    pub memory_limit: Option<usize>,
    /// Where queries run: `local` (this process) or `ballista` (a cluster, at `scheduler`).
    pub kind: EngineChoice,
    /// The Ballista scheduler, `df://HOST:50050` (with `kind = "ballista"`).
    pub scheduler: Option<String>,
}

/// `[engine] kind`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// DataFusion in this process.
    #[default]
    Local,
    /// An Apache DataFusion Ballista cluster.
    Ballista,
}

impl EngineSettings {
    /// Where queries run, as `kind` and `scheduler` say.
    pub fn kind(&self) -> Result<linkmeter_sql::EngineKind> {
        match (self.kind, &self.scheduler) {
            (EngineChoice::Local, _) => Ok(linkmeter_sql::EngineKind::Local),
            (EngineChoice::Ballista, Some(url)) => {
                linkmeter_sql::EngineKind::parse(url).map_err(|e| anyhow!("[engine] scheduler: {e}"))
            }
            (EngineChoice::Ballista, None) => bail!(
                "[engine] kind = \"ballista\" needs scheduler = \"df://HOST:50050\" (the address of `linkmeter ballista scheduler`)"
            ),
        }
    }

    /// The engine's options.
    pub fn options(&self) -> linkmeter_sql::EngineOptions {
        linkmeter_sql::EngineOptions {
            // Checked when the config was loaded.
            kind: self.kind().unwrap_or_default(),
            memory_limit: match self.memory_limit {
                None => Some(DEFAULT_MEMORY_LIMIT),
                Some(usize::MAX) => None,
                Some(n) => Some(n),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(toml_text: &str) -> Result<linkmeter_sql::EngineKind> {
        let s: EngineSettings = toml::from_str(toml_text).unwrap();
        s.kind()
    }

    #[test]
    fn a_cluster_needs_its_scheduler_and_local_is_the_default() {
        assert_eq!(kind("").unwrap(), linkmeter_sql::EngineKind::Local);
        let e = kind("kind = \"ballista\"").unwrap_err().to_string();
        assert!(e.contains("needs scheduler = \"df://HOST:50050\""), "{e}");
        let e = kind("kind = \"ballista\"\nscheduler = \"http://x:1\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[engine] scheduler") && e.contains("df://"),
            "{e}"
        );
        assert_eq!(
            kind("kind = \"ballista\"\nscheduler = \"df://s:1\"").unwrap(),
            linkmeter_sql::EngineKind::Ballista("df://s:1".into())
        );
        assert!(toml::from_str::<EngineSettings>("kind = \"spark\"").is_err());
    }
}
