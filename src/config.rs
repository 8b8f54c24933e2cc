//! `linkmeter.toml`: where the warehouse and inventory are, and the sources to ingest.
//!
//! Each struct owns its defaults (`#[serde(default)]` with an `impl Default`), durations are
//! `Duration`s, and every setting listed in [`ENV`] can be overridden by its `LINKMETER_*`
//! environment variable (one overlay, applied to the TOML document before it is read), then by
//! command-line flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::units::secs;
use linkmeter_ingest::decode::Content;
use linkmeter_ingest::fields::{Format, DEFAULT_FORMAT};
use linkmeter_ingest::limits::Limits;
use linkmeter_ingest::run::{Location, SourceSpec};
use linkmeter_ingest::source::kafka::KafkaSettings;
use linkmeter_ingest::source::kafka_auth::KafkaSecurity;
use linkmeter_ingest::source::s3_read::S3Settings;
use serde::Deserialize;

use crate::ConfigContext;

/// The `--config` argument, shared by every command that reads a config.
#[derive(clap::Args, Debug, Clone)]
pub struct ConfigArg {
    /// Configuration file (or set LINKMETER_CONFIG_TOML to the whole file's text).
    #[arg(
        long,
        short,
        env = "LINKMETER_CONFIG",
        default_value = "linkmeter.toml"
    )]
    pub config: PathBuf,
}

impl ConfigArg {
    /// Loads it (errors are configuration problems, exit code 2).
    pub fn load(&self) -> Result<Config> {
        Config::load(&self.config).config()
    }
}

/// The configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Warehouse root directory or `s3://bucket/prefix` (relative to the config file).
    pub warehouse: String,
    /// Inventory file (relative to the config file, or `s3://bucket/key`).
    pub inventory: String,
    /// Price book (relative to the config file, or `s3://bucket/key`); needed by `invoice`.
    #[serde(default)]
    pub prices: Option<String>,
    /// How far an hour's flow-log/broker-metric ratio may stray from the cluster's typical
    /// ratio before the invoice summary flags it (0.25 = 25 %).
    #[serde(default = "default_tolerance")]
    pub reconcile_tolerance: f64,
    /// How long the warehouse lock on S3 lives without its holder renewing it before another
    /// run may take it over (`lock_ttl_secs`; the holder renews every quarter of it).
    #[serde(
        rename = "lock_ttl_secs",
        default = "default_lock_ttl",
        deserialize_with = "secs::de"
    )]
    pub lock_ttl: Duration,
    /// Ingest settings.
    #[serde(default)]
    pub ingest: IngestSettings,
    /// How to reach S3 or an S3-compatible store (sources, warehouse, config files).
    #[serde(default)]
    pub s3: S3Config,
    /// The query engine (`[engine]`).
    #[serde(default)]
    pub engine: EngineSettings,
    /// Where flow logs and metrics come from.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    #[serde(skip)]
    base: PathBuf,
}

fn default_tolerance() -> f64 {
    0.25
}

fn default_lock_ttl() -> Duration {
    linkmeter_warehouse::lock::LOCK_TTL
}

/// `[ingest]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    /// Worker threads; default: the number of cores.
    pub workers: Option<usize>,
    /// Rows a worker buffers before it writes them (bounds memory).
    pub flush_rows: usize,
    /// Fail the run (exit code 3) when any input is quarantined.
    pub strict: bool,
    /// Read symbolic links in file sources whose target is a file inside the source's root
    /// (other links, devices and FIFOs are always skipped).
    pub follow_symlinks: bool,
    /// What one input may cost (`[ingest.limits]`).
    pub limits: Limits,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            workers: None,
            flush_rows: 100_000,
            strict: false,
            follow_symlinks: false,
            limits: Limits::default(),
        }
    }
}

impl IngestSettings {
    /// Worker threads: `flag`, else the config, else the number of cores.
    pub fn workers(&self, flag: Option<usize>) -> usize {
        flag.or(self.workers)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1)
    }
}

pub use crate::engine_settings::EngineSettings;

/// `[s3]` settings. Credentials always come from the standard AWS chain (environment,
/// profile, container or instance role), never from this file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Region; default from the AWS chain (`AWS_REGION`, profile).
    pub region: Option<String>,
    /// Endpoint of an S3-compatible store, e.g. `http://127.0.0.1:9000`.
    pub endpoint_url: Option<String>,
    /// Path-style addressing; most S3-compatible stores need it.
    pub force_path_style: bool,
    /// Attempts per request before an object counts as unreadable.
    pub max_attempts: u32,
    /// First retry backoff, doubled per retry with full jitter (`backoff_ms`).
    #[serde(rename = "backoff_ms", deserialize_with = "secs::de_ms")]
    pub backoff: Duration,
    /// Objects downloaded at once.
    pub concurrency: usize,
    /// Longest wait for a response or the next part of a body (`timeout_secs`).
    #[serde(rename = "timeout_secs", deserialize_with = "secs::de")]
    pub timeout: Duration,
}

impl Default for S3Config {
    fn default() -> Self {
        let d = S3Settings::default();
        S3Config {
            region: None,
            endpoint_url: None,
            force_path_style: false,
            max_attempts: d.max_attempts,
            backoff: d.base_backoff,
            concurrency: d.concurrency,
            timeout: d.timeout,
        }
    }
}

impl S3Config {
    /// The client settings.
    pub fn settings(&self) -> S3Settings {
        S3Settings {
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            force_path_style: self.force_path_style,
            max_attempts: self.max_attempts.max(1),
            base_backoff: self.backoff,
            concurrency: self.concurrency.max(1),
            timeout: self.timeout,
            ..S3Settings::default()
        }
    }
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A short name; part of each input's identity, so keep it stable.
    pub name: String,
    /// A local file or directory (relative to the config file), `file:///abs/path`,
    /// `s3://bucket/prefix` (every object under the prefix) or `kafka://host:port/topic`.
    pub uri: String,
    /// Field list for text without a header line (default: the v2 default format).
    #[serde(default)]
    pub format: Option<String>,
    /// Account to assume for records whose `account-id` is `unknown` and whose path has no
    /// `AWSLogs/ACCOUNT/` segment.
    #[serde(default)]
    pub account: Option<String>,
    /// What the inputs hold: `auto` (files and objects by their bytes; Kafka messages are
    /// flow-log lines), `flow-logs`, `metric-stream`, `prometheus` or `opentelemetry`; or the
    /// AWS bill: `cur2` (a CUR 2.0 export) or `focus` (a FOCUS export), Parquet files.
    #[serde(default)]
    pub content: Content,
    /// Settings of a `kafka://` source.
    #[serde(default)]
    pub kafka: KafkaSourceConfig,
}

/// `[sources.kafka]`: how a `kafka://host:port/topic` source consumes.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSourceConfig {
    /// Consumer group (default `linkmeter-NAME`); offsets are committed there after each
    /// durable write, for lag monitoring. The warehouse, not the group, says where to resume.
    pub group: Option<String>,
    /// Raw librdkafka options (TLS, SASL, tuning), applied before linkmeter's safety settings
    /// (auto-commit and the automatic offset store stay off whatever is given here).
    pub options: BTreeMap<String, String>,
    /// Message bytes read before the open inputs (one partition's offset range each) are
    /// handed to the workers.
    pub chunk_bytes: usize,
    /// Message bytes waiting for the workers at most; with `--follow`, the most per round.
    pub round_bytes: usize,
    /// Time without anything from the broker before the run fails (`idle_timeout_secs`).
    #[serde(rename = "idle_timeout_secs", deserialize_with = "secs::de")]
    pub idle_timeout: Duration,
    /// TLS and SASL (`[sources.kafka.security]`), applied after `options`.
    pub security: KafkaSecurity,
}

impl Default for KafkaSourceConfig {
    fn default() -> Self {
        KafkaSourceConfig {
            group: None,
            options: BTreeMap::new(),
            chunk_bytes: 8 << 20,
            round_bytes: 64 << 20,
            idle_timeout: Duration::from_secs(30),
            security: KafkaSecurity::default(),
        }
    }
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

/// The type of a setting an environment variable overrides.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Int,
    Float,
    Bool,
}

/// Every setting that a `LINKMETER_*` variable overrides: (variable, TOML path, type).
const ENV: &[(&str, &str, Kind)] = &[
    ("LINKMETER_WAREHOUSE", "warehouse", Kind::Text),
    ("LINKMETER_INVENTORY", "inventory", Kind::Text),
    ("LINKMETER_PRICES", "prices", Kind::Text),
    (
        "LINKMETER_RECONCILE_TOLERANCE",
        "reconcile_tolerance",
        Kind::Float,
    ),
    ("LINKMETER_LOCK_TTL_SECS", "lock_ttl_secs", Kind::Int),
    ("LINKMETER_MEMORY_LIMIT", "engine.memory_limit", Kind::Text),
    ("LINKMETER_WORKERS", "ingest.workers", Kind::Int),
    ("LINKMETER_FLUSH_ROWS", "ingest.flush_rows", Kind::Int),
    ("LINKMETER_STRICT", "ingest.strict", Kind::Bool),
    ("LINKMETER_S3_REGION", "s3.region", Kind::Text),
    ("LINKMETER_S3_ENDPOINT_URL", "s3.endpoint_url", Kind::Text),
    (
        "LINKMETER_S3_FORCE_PATH_STYLE",
        "s3.force_path_style",
        Kind::Bool,
    ),
    ("LINKMETER_S3_MAX_ATTEMPTS", "s3.max_attempts", Kind::Int),
    ("LINKMETER_S3_CONCURRENCY", "s3.concurrency", Kind::Int),
    ("LINKMETER_S3_TIMEOUT_SECS", "s3.timeout_secs", Kind::Int),
];

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Applies the `LINKMETER_*` variables that are set to a TOML document.
fn overlay(doc: &mut toml::Table, get: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    for (var, path, kind) in ENV {
        let Some(v) = get(var) else { continue };
        let value = match kind {
            Kind::Text => toml::Value::String(v),
            Kind::Int => toml::Value::Integer(
                v.parse()
                    .map_err(|_| anyhow!("{var}={v:?} is not a whole number"))?,
            ),
            Kind::Float => toml::Value::Float(
                v.parse()
                    .map_err(|_| anyhow!("{var}={v:?} is not a number such as 0.25"))?,
            ),
            Kind::Bool => toml::Value::Boolean(match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => bail!("{var}={v:?} is not true or false (1/0, yes/no)"),
            }),
        };
        let mut table = &mut *doc;
        let mut parts = path.split('.').peekable();
        while let Some(p) = parts.next() {
            if parts.peek().is_none() {
                table.insert(p.to_string(), value);
                break;
            }
            table = table
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| anyhow!("[{p}] in the config is not a table"))?;
        }
    }
    Ok(())
}

impl Config {
    /// Reads a config file and applies the `LINKMETER_*` overlay. Without a file, the whole
    /// TOML may come from `LINKMETER_CONFIG_TOML` (an ECS task's environment, from SSM or
    /// Secrets Manager); paths are then relative to the working directory.
    pub fn load(path: &Path) -> Result<Config> {
        let text = match env("LINKMETER_CONFIG_TOML") {
            Some(t) if !path.exists() => t,
            _ => std::fs::read_to_string(path).with_context(|| {
                format!("cannot read config {}; create one (see README \"Configuration\"), set LINKMETER_CONFIG_TOML, or run `linkmeter demo` to see a working example", path.display())
            })?,
        };
        let mut doc: toml::Table = toml::from_str(&text)
            .with_context(|| format!("config {} is not valid TOML", path.display()))?;
        overlay(&mut doc, &env)?;
        let mut c = Config::deserialize(doc)
            .with_context(|| format!("config {} is not valid", path.display()))?;
        c.base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        c.check()
            .with_context(|| format!("config {}", path.display()))?;
        Ok(c)
    }

    fn check(&self) -> Result<()> {
        let t = self.reconcile_tolerance;
        if !(t.is_finite() && t > 0.0) {
            bail!("reconcile_tolerance {t} must be a positive fraction such as 0.25");
        }
        self.ingest.limits.check().map_err(|e| anyhow!(e))?;
        if let Some(m) = self.engine.memory_limit.filter(|m| *m < 16 << 20) {
            bail!(
                "[engine] memory_limit {m} bytes is too small for the query engine; give at least \"16MiB\" (or leave it out: 512MiB)"
            );
        }
        self.engine.kind()?;
        let mut names = std::collections::HashSet::new();
        for s in &self.sources {
            if !names.insert(s.name.as_str()) {
                bail!(
                    "source name {:?} is used twice; names must be unique",
                    s.name
                );
            }
        }
        Ok(())
    }

    /// A config for commands given only a warehouse (`sql --warehouse`): paths relative to
    /// the current directory, `[s3]` from the `LINKMETER_S3_*` overlay.
    pub fn bare(warehouse: &str) -> Result<Config> {
        let mut doc = toml::Table::new();
        doc.insert("warehouse".into(), toml::Value::String(String::new()));
        doc.insert("inventory".into(), toml::Value::String(String::new()));
        overlay(&mut doc, &env)?;
        let mut c = Config::deserialize(doc).context("the LINKMETER_* settings are not valid")?;
        c.warehouse = warehouse.to_string();
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

    /// A file the config names: a path relative to the config file, or an `s3://bucket/key`
    /// URI (downloaded once), so a container can run from environment variables alone.
    pub fn file(&self, p: &str, rt: &tokio::runtime::Handle) -> Result<PathBuf> {
        match p.starts_with("s3://") {
            true => crate::warehouse::local_copy(p, &self.s3, rt),
            false => Ok(self.resolve(p)),
        }
    }

    /// The sources to ingest (`only` names some; all when empty), ready for the pipeline.
    pub fn sources(
        &self,
        only: &[String],
        shard: Option<(u32, u32)>,
        rt: &tokio::runtime::Handle,
    ) -> Result<Vec<SourceSpec>> {
        for name in only {
            if !self.sources.iter().any(|s| &s.name == name) {
                bail!("no source named {name:?} in the config");
            }
        }
        self.sources
            .iter()
            .filter(|s| only.is_empty() || only.contains(&s.name))
            .map(|s| s.spec(self, shard, rt))
            .collect()
    }
}

impl SourceConfig {
    /// What the pipeline needs of this source; URIs and settings this build cannot use are
    /// refused with a reason.
    fn spec(
        &self,
        cfg: &Config,
        shard: Option<(u32, u32)>,
        rt: &tokio::runtime::Handle,
    ) -> Result<SourceSpec> {
        let format = Format::parse(self.format.as_deref().unwrap_or(DEFAULT_FORMAT))
            .map_err(|e| anyhow!("source {:?}: format: {e}", self.name))?;
        let at = match self.uri.split_once("://").map(|(s, _)| s) {
            Some("s3") => {
                let (bucket, prefix) = linkmeter_ingest::source::s3::parse_uri(&self.uri)
                    .ok_or_else(|| anyhow!("source {:?}: {:?} names no bucket; write s3://BUCKET/PREFIX", self.name, self.uri))?;
                Location::S3 { bucket, prefix }
            }
            Some("kafka") if self.content.is_bill() => bail!(
                "source {:?}: bill exports (content = \"cur2\" or \"focus\") are read from files or s3://, not Kafka",
                self.name
            ),
            Some("kafka") => Location::Kafka(Box::new(self.kafka(cfg, shard, rt)?)),
            Some("file") | None => Location::Files(cfg.resolve(&self.uri)),
            Some(scheme) => bail!(
                "source {:?}: {scheme}:// sources are not supported; use a local path, file://, s3:// or kafka://",
                self.name
            ),
        };
        Ok(SourceSpec {
            name: self.name.clone(),
            at,
            format,
            account: self.account.clone(),
            content: self.content,
        })
    }

    fn kafka(
        &self,
        cfg: &Config,
        shard: Option<(u32, u32)>,
        rt: &tokio::runtime::Handle,
    ) -> Result<KafkaSettings> {
        let (bootstrap, topic) =
            linkmeter_ingest::source::kafka::parse_uri(&self.uri).ok_or_else(|| {
                anyhow!(
                    "source {:?}: {:?} is not kafka://HOST:PORT[,HOST:PORT]/TOPIC",
                    self.name,
                    self.uri
                )
            })?;
        let k = &self.kafka;
        // Certificate paths are relative to the config file, like every other path.
        let mut security = k.security.clone();
        for f in [
            &mut security.ca_file,
            &mut security.cert_file,
            &mut security.key_file,
        ] {
            if let Some(p) = f.as_mut() {
                *p = cfg.resolve(&p.to_string_lossy());
            }
        }
        // Settings that cannot work (a missing file or variable) are found before reading.
        security
            .options(|v| std::env::var(v).ok())
            .map_err(|e| anyhow!("source {:?}: {e}", self.name))?;
        Ok(KafkaSettings {
            name: self.name.clone(),
            bootstrap,
            topic,
            group: k
                .group
                .clone()
                .unwrap_or_else(|| format!("linkmeter-{}", self.name)),
            options: k.options.clone(),
            security,
            chunk_bytes: k.chunk_bytes.max(1),
            round_bytes: k.round_bytes.max(1),
            idle_timeout: k.idle_timeout,
            shard,
            rt: rt.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine_settings::DEFAULT_MEMORY_LIMIT;

    #[test]
    fn unknown_keys_are_refused_and_paths_resolve() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("linkmeter.toml");
        std::fs::write(&p, "warehouse = \"wh\"\ninventory = \"inv.toml\"\n[[sources]]\nname = \"a\"\nuri = \"logs\"\n").unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.resolve(&c.warehouse), d.path().join("wh"));
        assert_eq!(c.ingest.flush_rows, 100_000, "defaults from the struct");
        assert_eq!(c.reconcile_tolerance, 0.25);
        assert_eq!(
            c.engine.options().memory_limit,
            Some(DEFAULT_MEMORY_LIMIT),
            "a budget unless set otherwise"
        );
        std::fs::write(
            &p,
            "warehouse = \"wh\"\ninventory = \"i\"\n[engine]\nmemory_limit = \"1MiB\"\n",
        )
        .unwrap();
        let e = format!("{:#}", Config::load(&p).unwrap_err());
        assert!(e.contains("too small"), "{e}");
        std::fs::write(
            &p,
            "warehouse = \"wh\"\ninventory = \"i\"\n[engine]\nmemory_limit = 268435456\n",
        )
        .unwrap();
        assert_eq!(
            Config::load(&p).unwrap().engine.options().memory_limit,
            Some(256 << 20)
        );
        std::fs::write(
            &p,
            "warehouse = \"wh\"\ninventory = \"i\"\n[engine]\nmemory_limit = \"unlimited\"\n",
        )
        .unwrap();
        assert_eq!(
            Config::load(&p).unwrap().engine.options().memory_limit,
            None,
            "no budget when asked"
        );
        std::fs::write(&p, "warehouse = \"wh\"\ninventory = \"i\"\nwarehous = 1\n").unwrap();
        let e = format!("{:#}", Config::load(&p).unwrap_err());
        assert!(e.contains("unknown field `warehous`"), "{e}");
    }

    #[test]
    fn environment_variables_override_typed_settings() {
        let mut doc: toml::Table =
            toml::from_str("warehouse = \"wh\"\ninventory = \"i\"\n[s3]\nregion = \"eu-west-1\"\n")
                .unwrap();
        let vars: BTreeMap<&str, &str> = [
            ("LINKMETER_WORKERS", "3"),
            ("LINKMETER_S3_FORCE_PATH_STYLE", "yes"),
            ("LINKMETER_S3_TIMEOUT_SECS", "7"),
            ("LINKMETER_WAREHOUSE", "s3://b/w"),
            ("LINKMETER_MEMORY_LIMIT", "1GiB"),
        ]
        .into();
        overlay(&mut doc, &|v| vars.get(v).map(|s| s.to_string())).unwrap();
        let c = Config::deserialize(doc).unwrap();
        assert_eq!(c.warehouse, "s3://b/w");
        assert_eq!(c.ingest.workers, Some(3));
        assert!(c.s3.force_path_style);
        assert_eq!(
            c.s3.region.as_deref(),
            Some("eu-west-1"),
            "the file's other settings stay"
        );
        assert_eq!(c.s3.timeout, Duration::from_secs(7));
        assert_eq!(c.engine.options().memory_limit, Some(1 << 30));
        let mut doc = toml::Table::new();
        let e = overlay(&mut doc, &|v| {
            (v == "LINKMETER_STRICT").then(|| "maybe".into())
        })
        .unwrap_err();
        assert!(e.to_string().contains("LINKMETER_STRICT=\"maybe\""), "{e}");
    }
}
