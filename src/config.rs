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
    /// How far an hour's flow-log/broker-metric ratio may stray from the cluster's typical
    /// ratio before the invoice summary flags it (`LINKMETER_RECONCILE_TOLERANCE`; default
    /// 0.25 = 25 %).
    #[serde(default)]
    pub reconcile_tolerance: Option<f64>,
    /// Ingest settings.
    #[serde(default)]
    pub ingest: IngestSettings,
    /// How to reach S3 or an S3-compatible store (for `s3://` sources).
    #[serde(default)]
    pub s3: S3Config,
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

/// `[s3]` settings. Credentials always come from the standard AWS chain (environment,
/// profile, container or instance role), never from this file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Region (`LINKMETER_S3_REGION`); default from the AWS chain (`AWS_REGION`, profile).
    pub region: Option<String>,
    /// Endpoint of an S3-compatible store (`LINKMETER_S3_ENDPOINT_URL`), e.g. `http://127.0.0.1:9000`.
    pub endpoint_url: Option<String>,
    /// Path-style addressing (`LINKMETER_S3_FORCE_PATH_STYLE=1`); most S3-compatible stores need it.
    #[serde(default)]
    pub force_path_style: bool,
    /// Attempts per request before an object counts as unreadable (default 8).
    pub max_attempts: Option<u32>,
    /// First retry backoff in milliseconds, doubled per retry with full jitter (default 200).
    pub backoff_ms: Option<u64>,
    /// Objects downloaded at once (default 16).
    pub concurrency: Option<usize>,
    /// Seconds to wait for a response or the next part of a body (default 60).
    pub timeout_secs: Option<u64>,
}

impl S3Config {
    /// The client settings.
    pub fn settings(&self) -> linkmeter_ingest::source::s3_read::S3Settings {
        let d = linkmeter_ingest::source::s3_read::S3Settings::default();
        linkmeter_ingest::source::s3_read::S3Settings {
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            force_path_style: self.force_path_style,
            max_attempts: self.max_attempts.unwrap_or(d.max_attempts).max(1),
            base_backoff: self
                .backoff_ms
                .map(std::time::Duration::from_millis)
                .unwrap_or(d.base_backoff),
            concurrency: self.concurrency.unwrap_or(d.concurrency).max(1),
            timeout: self
                .timeout_secs
                .map(std::time::Duration::from_secs)
                .unwrap_or(d.timeout),
            ..d
        }
    }
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A short name; part of each input's identity, so keep it stable.
    pub name: String,
    /// A local file or directory (relative to the config file), `file:///abs/path`, or
    /// `s3://bucket/prefix` (every object under the prefix).
    pub uri: String,
    /// Field list for text files without a header line (default: the v2 default format).
    #[serde(default)]
    pub format: Option<String>,
    /// Account to assume for records whose `account-id` is `unknown` and whose path has no
    /// `AWSLogs/ACCOUNT/` segment.
    #[serde(default)]
    pub account: Option<String>,
    /// What the inputs hold: `auto` (files and objects by their bytes; Kafka messages are
    /// flow-log lines), `flow-logs` or `metric-stream` (CloudWatch Metric Streams JSON).
    #[serde(default)]
    pub content: linkmeter_ingest::decode::Content,
    /// Settings of a `kafka://` source.
    #[serde(default)]
    pub kafka: KafkaSourceConfig,
}

impl std::fmt::Debug for KafkaSourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Raw option values hold passwords and keys: only their names are shown.
        f.debug_struct("KafkaSourceConfig")
            .field("group", &self.group)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// `[sources.kafka]`: how a `kafka://host:port/topic` source consumes.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Consumer group (default `linkmeter-NAME`); offsets are committed there after each
    /// durable write, for lag monitoring. The warehouse, not the group, says where to resume.
    pub group: Option<String>,
    /// Raw librdkafka options (TLS, SASL, tuning), applied before linkmeter's safety settings
    /// (auto-commit and the automatic offset store stay off whatever is given here).
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
    /// Message bytes per input (one partition's offset range; default 8 MiB).
    pub chunk_bytes: Option<usize>,
    /// Message bytes read before they are written (bounds memory; default 256 MiB).
    pub round_bytes: Option<usize>,
    /// Seconds without anything from the broker before the run fails (default 30).
    pub idle_timeout_secs: Option<u64>,
    /// TLS and SASL (`[sources.kafka.security]`), applied after `options`.
    #[serde(default)]
    pub security: linkmeter_ingest::source::kafka_auth::KafkaSecurity,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Config {
    /// Reads a config file and applies `LINKMETER_*` overrides. Without a file, the whole
    /// TOML may come from `LINKMETER_CONFIG_TOML` (an ECS task's environment, from SSM or
    /// Secrets Manager); paths are then relative to the working directory.
    pub fn load(path: &Path) -> Result<Config> {
        let text = match env("LINKMETER_CONFIG_TOML") {
            Some(t) if !path.exists() => t,
            _ => std::fs::read_to_string(path).with_context(|| {
                format!("cannot read config {}; create one (see README \"Configuration\"), set LINKMETER_CONFIG_TOML, or run `linkmeter demo` to see a working example", path.display())
            })?,
        };
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
        if let Some(v) = env("LINKMETER_RECONCILE_TOLERANCE") {
            c.reconcile_tolerance = Some(v.parse().map_err(|_| {
                anyhow::anyhow!("LINKMETER_RECONCILE_TOLERANCE={v:?} is not a number such as 0.25")
            })?);
        }
        if let Some(t) = c.reconcile_tolerance {
            if !(t.is_finite() && t > 0.0) {
                anyhow::bail!("reconcile_tolerance {t} must be a positive fraction such as 0.25");
            }
        }
        if let Some(v) = env("LINKMETER_WORKERS") {
            c.ingest.workers = Some(
                v.parse()
                    .with_context(|| format!("LINKMETER_WORKERS={v:?} is not a whole number"))?,
            );
        }
        if let Some(v) = env("LINKMETER_S3_REGION") {
            c.s3.region = Some(v);
        }
        if let Some(v) = env("LINKMETER_S3_ENDPOINT_URL") {
            c.s3.endpoint_url = Some(v);
        }
        if let Some(v) = env("LINKMETER_S3_FORCE_PATH_STYLE") {
            c.s3.force_path_style = matches!(v.as_str(), "1" | "true" | "yes");
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

    /// A config for commands given only a warehouse (`sql --warehouse`): paths relative to
    /// the current directory, `[s3]` from `LINKMETER_S3_*` and the AWS environment.
    pub fn bare(warehouse: &str) -> Config {
        let s3 = S3Config {
            region: env("LINKMETER_S3_REGION"),
            endpoint_url: env("LINKMETER_S3_ENDPOINT_URL"),
            force_path_style: env("LINKMETER_S3_FORCE_PATH_STYLE")
                .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes")),
            ..S3Config::default()
        };
        Config {
            warehouse: warehouse.to_string(),
            inventory: String::new(),
            prices: None,
            reconcile_tolerance: None,
            ingest: IngestSettings::default(),
            s3,
            sources: Vec::new(),
            base: PathBuf::new(),
        }
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

    /// The inventory file (downloaded first when it is an `s3://` URI).
    pub fn inventory_path(&self) -> Result<PathBuf> {
        self.file(&self.inventory)
    }

    /// A file the config names: a path relative to the config file, or an `s3://bucket/key`
    /// URI (downloaded once), so a container can run from environment variables alone.
    pub fn file(&self, p: &str) -> Result<PathBuf> {
        match p.starts_with("s3://") {
            true => crate::warehouse::local_copy(p, &self.s3),
            false => Ok(self.resolve(p)),
        }
    }
}

/// What a source URI points at.
pub enum SourceKind {
    /// A local file or directory.
    Local(PathBuf),
    /// An S3 bucket and key prefix.
    S3 { bucket: String, prefix: String },
    /// A Kafka topic.
    Kafka { bootstrap: String, topic: String },
}

impl SourceConfig {
    /// Classifies the URI; schemes that this build cannot read are refused with a reason.
    pub fn kind(&self, cfg: &Config) -> Result<SourceKind> {
        if let Some((scheme, _)) = self.uri.split_once("://") {
            if scheme == "s3" {
                let Some((bucket, prefix)) = linkmeter_ingest::source::s3::parse_uri(&self.uri)
                else {
                    bail!(
                        "source {:?}: {:?} names no bucket; write s3://BUCKET/PREFIX",
                        self.name,
                        self.uri
                    );
                };
                return Ok(SourceKind::S3 { bucket, prefix });
            }
            if scheme == "kafka" {
                let Some((bootstrap, topic)) =
                    linkmeter_ingest::source::kafka::parse_uri(&self.uri)
                else {
                    bail!(
                        "source {:?}: {:?} is not kafka://HOST:PORT[,HOST:PORT]/TOPIC",
                        self.name,
                        self.uri
                    );
                };
                return Ok(SourceKind::Kafka { bootstrap, topic });
            }
            if scheme != "file" {
                bail!(
                    "source {:?}: {scheme}:// sources are not supported; use a local path, file://, s3:// or kafka://",
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
