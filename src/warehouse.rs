//! Opens the warehouse the config names: a local directory, or `s3://bucket/prefix` through
//! the object store DataFusion reads with, signed with the same AWS credential chain as the S3
//! sources (environment, profile, container or instance role).

use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use aws_sdk_s3::config::ProvideCredentials;
use linkmeter_warehouse::Warehouse;
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::CredentialProvider;

use crate::config::{Config, S3Config};
use crate::ConfigContext;

/// Opens the warehouse of a config for writing (creating a local directory if needed).
pub fn open(cfg: &Config, rt: &tokio::runtime::Handle) -> Result<Warehouse> {
    open_spec(&cfg.warehouse, cfg, &cfg.s3, rt, true)
}

/// Opens the warehouse of a config for reading: a local directory must exist.
pub fn open_existing(cfg: &Config, rt: &tokio::runtime::Handle) -> Result<Warehouse> {
    open_spec(&cfg.warehouse, cfg, &cfg.s3, rt, false)
}

/// A warehouse given as a path (relative to the config) or an `s3://` URL.
fn open_spec(
    spec: &str,
    cfg: &Config,
    s3: &S3Config,
    rt: &tokio::runtime::Handle,
    create: bool,
) -> Result<Warehouse> {
    let wh = if let Some(rest) = spec.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(anyhow!(
                "warehouse {spec:?} names no bucket; write s3://BUCKET/PREFIX"
            ))
            .config();
        }
        let url = format!("s3://{bucket}/{}", prefix.trim_matches('/'));
        let store: Arc<dyn object_store::ObjectStore> = Arc::new(s3_store(bucket, s3, rt)?);
        Warehouse::object(store, &url)
            .config()?
            .with_lock_ttl(cfg.lock_ttl)
    } else {
        if let Some((scheme, _)) = spec.split_once("://") {
            if scheme != "file" {
                return Err(anyhow!(
                    "warehouse {spec:?}: {scheme}:// is not supported; use a local path or s3://BUCKET/PREFIX"
                ))
                .config();
            }
        }
        let path = cfg.resolve(spec);
        if !create && !path.is_dir() {
            return Err(anyhow!(
                "warehouse {} does not exist; run `linkmeter ingest` first or pass --warehouse",
                path.display()
            ))
            .config();
        }
        Warehouse::local(&path).with_context(|| format!("opening warehouse {}", path.display()))?
    };
    rt.block_on(wh.check_layout()).config()?;
    Ok(wh)
}

/// A small file named by an `s3://bucket/key` URI (the inventory or price book of a container
/// that has no files of its own), downloaded once per process into a private temp directory.
pub fn local_copy(
    uri: &str,
    s3: &S3Config,
    rt: &tokio::runtime::Handle,
) -> Result<std::path::PathBuf> {
    use std::sync::Mutex;
    static DONE: Mutex<Vec<(String, std::path::PathBuf)>> = Mutex::new(Vec::new());
    if let Some((_, p)) = DONE
        .lock()
        .expect("no panics while holding it")
        .iter()
        .find(|(u, _)| u == uri)
    {
        return Ok(p.clone());
    }
    let rest = uri.strip_prefix("s3://").unwrap_or(uri);
    let (bucket, key) = rest
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| anyhow!("{uri:?} is not s3://BUCKET/KEY"))
        .config()?;
    let store = s3_store(bucket, s3, rt)?;
    let bytes = rt
        .block_on(async {
            use object_store::ObjectStoreExt;
            store
                .get(&object_store::path::Path::from(key))
                .await?
                .bytes()
                .await
        })
        .with_context(|| {
            format!(
                "cannot download {uri}; check the URI and that the task role may s3:GetObject it"
            )
        })?;
    // A directory only this process creates (create, not reuse; mode 0700), so nobody else on
    // the host can put or swap a file there.
    let dir = std::env::temp_dir().join(format!(
        "linkmeter-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let name = key.rsplit('/').next().unwrap_or("file");
    let path = dir.join(format!("{}-{name}", DONE.lock().expect("no panics").len()));
    std::fs::write(&path, &bytes)?;
    DONE.lock()
        .expect("no panics while holding it")
        .push((uri.to_string(), path.clone()));
    Ok(path)
}

/// Hands object_store the credentials of the standard AWS chain. The chain's providers do not
/// cache (the SDK caches in its clients), so this does: every request asking the instance
/// metadata or STS again would be slow and get throttled.
#[derive(Debug)]
struct AwsChain {
    provider: aws_sdk_s3::config::SharedCredentialsProvider,
    cached: tokio::sync::Mutex<Option<(Arc<AwsCredential>, Option<std::time::SystemTime>)>>,
}

#[async_trait::async_trait]
impl CredentialProvider for AwsChain {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        let margin = std::time::Duration::from_secs(300);
        if let Some((c, expiry)) = cached.as_ref() {
            if expiry.is_none_or(|e| std::time::SystemTime::now() + margin < e) {
                return Ok(c.clone());
            }
        }
        let c = self.provider.provide_credentials().await.map_err(|e| {
            object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            }
        })?;
        let cred = Arc::new(AwsCredential {
            key_id: c.access_key_id().to_string(),
            secret_key: c.secret_access_key().to_string(),
            token: c.session_token().map(str::to_string),
        });
        *cached = Some((cred.clone(), c.expiry()));
        Ok(cred)
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// An S3 object store for one bucket with the `[s3]` settings.
fn s3_store(
    bucket: &str,
    s3: &S3Config,
    rt: &tokio::runtime::Handle,
) -> Result<object_store::aws::AmazonS3> {
    let sdk = rt.block_on(aws_config::defaults(aws_config::BehaviorVersion::latest()).load());
    let region = s3
        .region
        .clone()
        .or_else(|| sdk.region().map(|r| r.to_string()))
        .unwrap_or_else(|| "us-east-1".into());
    let endpoint = s3
        .endpoint_url
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL_S3"))
        .or_else(|| env("AWS_ENDPOINT_URL"));
    // With an endpoint of its own, object_store sends virtual-hosted requests to that endpoint
    // as given (without the bucket), so S3-compatible endpoints always use path style.
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(region)
        .with_virtual_hosted_style_request(!s3.force_path_style && endpoint.is_none());
    if let Some(e) = endpoint {
        b = b.with_allow_http(e.starts_with("http://")).with_endpoint(e);
    }
    match sdk.credentials_provider() {
        Some(provider) => {
            b = b.with_credentials(Arc::new(AwsChain {
                provider,
                cached: tokio::sync::Mutex::new(None),
            }))
        }
        None => b = b.with_skip_signature(true),
    }
    b.build()
        .with_context(|| format!("configuring S3 for the warehouse bucket {bucket}"))
}
