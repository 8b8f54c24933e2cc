//! The S3 client linkmeter uses: connection settings, its own retry policy (so that retries are
//! counted and reported), and objects streamed into the synchronous decoders.
//!
//! Downloads run on a small tokio runtime and hand chunks to the decoding thread through a
//! bounded channel, so an object is never held whole in memory and at most `concurrency`
//! objects are in flight. A body cut off mid-download is resumed with a `Range` request pinned
//! to the listed ETag (`If-Match`), so the decoder sees one uninterrupted stream of the same
//! version, or an error if the object changed underneath.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use bytes::Bytes;
use tokio::sync::{mpsc, Semaphore};

use super::{Fetch, InputRef, Location};

/// How linkmeter talks to S3 or an S3-compatible store.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// Region; default from the AWS chain (`AWS_REGION`, profile), else `us-east-1`.
    pub region: Option<String>,
    /// Endpoint URL for S3-compatible stores (also `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`).
    pub endpoint_url: Option<String>,
    /// Path-style addressing (`http://host/bucket/key`), which most S3-compatible stores need.
    pub force_path_style: bool,
    /// Attempts per request (first try included) before an object counts as unreadable.
    pub max_attempts: u32,
    /// First backoff; each retry doubles it up to `max_backoff`, with full jitter.
    pub base_backoff: Duration,
    /// Longest backoff between two attempts.
    pub max_backoff: Duration,
    /// Objects downloaded at once.
    pub concurrency: usize,
    /// Longest wait for a response or for the next chunk of a body.
    pub timeout: Duration,
}

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            region: None,
            endpoint_url: None,
            force_path_style: false,
            max_attempts: 8,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(20),
            concurrency: 16,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Counters of what the client did, for the run summary.
#[derive(Debug, Default)]
pub struct S3Stats {
    /// Requests sent (attempts, retries included).
    pub requests: AtomicU64,
    /// Attempts that failed in a way worth retrying and were retried.
    pub retries: AtomicU64,
    /// Bodies cut off mid-download and resumed from where they stopped.
    pub resumed: AtomicU64,
    /// Objects given up on (their inputs are quarantined and read again next run).
    pub failed_objects: AtomicU64,
    /// Body bytes received.
    pub bytes: AtomicU64,
}

/// Errors setting up or using S3.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// A request failed for good.
    #[error("{what}: {message}")]
    Request {
        /// The operation and its target, e.g. `listing s3://bucket/prefix`.
        what: String,
        /// What S3 said, and what to do.
        message: String,
    },
}

/// An S3 client with linkmeter's retry policy and counters.
#[derive(Debug)]
pub struct S3Store {
    inner: Arc<Inner>,
    /// The process's runtime, which the downloads run on.
    rt: tokio::runtime::Handle,
}

/// What download tasks share.
#[derive(Debug)]
pub(crate) struct Inner {
    client: aws_sdk_s3::Client,
    settings: S3Settings,
    stats: S3Stats,
    slots: Mutex<HashMap<String, Slot>>,
}

#[derive(Debug)]
enum Slot {
    /// Downloaded ahead; the receiver waits for the decoder.
    Ready(mpsc::Receiver<std::io::Result<Bytes>>),
    /// Opened (or being opened) by a decoder.
    Taken,
}

/// Whether an error is worth another attempt: throttling, 5xx, timeouts, broken connections.
fn retryable<E, R>(e: &SdkError<E, R>) -> bool
where
    R: HttpStatus,
{
    match e {
        SdkError::ConstructionFailure(_) => false,
        SdkError::ServiceError(_) => e.raw_response().is_some_and(|r| {
            let s = r.status_u16();
            s == 429 || s >= 500
        }),
        _ => true,
    }
}

/// The HTTP status of a raw response (a small seam so [`retryable`] stays generic).
pub trait HttpStatus {
    /// The status code.
    fn status_u16(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_u16(&self) -> u16 {
        self.status().as_u16()
    }
}

fn describe<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => DisplayErrorContext(e).to_string(),
    }
}

fn advice(code: Option<&str>) -> &'static str {
    match code {
        Some("NoSuchBucket") => "; check the bucket name and region in the source URI",
        Some("AccessDenied") | Some("InvalidAccessKeyId") | Some("SignatureDoesNotMatch") => {
            "; check the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID, the task role) and the bucket policy"
        }
        _ => "",
    }
}

/// A backoff delay with full jitter: uniform in `[0, min(max, base·2^attempt)]`.
fn backoff(s: &S3Settings, attempt: u32, salt: u64) -> Duration {
    let cap = s
        .base_backoff
        .saturating_mul(1u32 << attempt.min(16))
        .min(s.max_backoff);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let r = xxhash_rust::xxh3::xxh3_64(&[nanos.to_le_bytes(), salt.to_le_bytes()].concat());
    cap.mul_f64((r >> 11) as f64 / (1u64 << 53) as f64)
}

impl S3Store {
    /// Connects with the standard AWS credential chain (environment, profile, container or
    /// instance role); credentials are never logged. Requests run on `rt`; call from a thread
    /// outside it (the client blocks on it for listings and reads).
    pub fn connect(
        settings: S3Settings,
        rt: tokio::runtime::Handle,
    ) -> Result<Arc<S3Store>, S3Error> {
        let conf = rt.block_on(async {
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                // linkmeter retries itself, to count and report what was retried.
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .timeout_config(
                    aws_config::timeout::TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(10))
                        .read_timeout(settings.timeout)
                        .build(),
                );
            if let Some(r) = &settings.region {
                loader = loader.region(aws_config::Region::new(r.clone()));
            }
            if let Some(u) = &settings.endpoint_url {
                loader = loader.endpoint_url(u.clone());
            }
            let sdk = loader.load().await;
            let mut b = aws_sdk_s3::config::Builder::from(&sdk);
            if sdk.region().is_none() {
                b = b.region(aws_config::Region::new("us-east-1"));
            }
            b.force_path_style(settings.force_path_style).build()
        });
        Ok(Arc::new(S3Store {
            inner: Arc::new(Inner {
                client: aws_sdk_s3::Client::from_conf(conf),
                settings,
                stats: S3Stats::default(),
                slots: Mutex::new(HashMap::new()),
            }),
            rt,
        }))
    }

    /// What the client did so far.
    pub fn stats(&self) -> &S3Stats {
        &self.inner.stats
    }

    /// The shared part, for requests.
    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Runs a future on the client's runtime from synchronous code.
    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

/// Starts streaming an object (the listed version of `input`) into a bounded channel.
fn spawn_download(
    rt: &tokio::runtime::Handle,
    inner: &Arc<Inner>,
    (bucket, key): (String, String),
    input: &InputRef,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> mpsc::Receiver<std::io::Result<Bytes>> {
    let (etag, size) = (input.version.clone(), input.size);
    let (tx, rx) = mpsc::channel(16);
    let me = inner.clone();
    rt.spawn(async move {
        let _permit = permit;
        if let Err(e) = me.download(&bucket, &key, etag.as_deref(), size, &tx).await {
            me.stats.failed_objects.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    rx
}

impl Inner {
    /// The SDK client.
    pub(crate) fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// Sends a request with retries (backoff with jitter) on throttling, 5xx and timeouts.
    pub(crate) async fn retrying<T, E, F, Fut>(&self, what: &str, mut op: F) -> Result<T, S3Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<
            Output = Result<T, SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
        >,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut attempt = 0;
        loop {
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let res = tokio::time::timeout(self.settings.timeout, op()).await;
            let err = match res {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if !retryable(&e) => {
                    let code = e.code().map(str::to_string);
                    return Err(S3Error::Request {
                        what: what.to_string(),
                        message: format!("{}{}", describe(&e), advice(code.as_deref())),
                    });
                }
                Ok(Err(e)) => describe(&e),
                Err(_) => format!("no response in {:?}", self.settings.timeout),
            };
            attempt += 1;
            if attempt >= self.settings.max_attempts {
                return Err(S3Error::Request {
                    what: what.to_string(),
                    message: format!("gave up after {attempt} attempts; last error: {err}"),
                });
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(message = "retrying", what, attempt, error = %err);
            tokio::time::sleep(backoff(&self.settings, attempt, attempt as u64)).await;
        }
    }

    /// Streams one object into `tx`, resuming cut-off bodies from the last byte received.
    async fn download(
        &self,
        bucket: &str,
        key: &str,
        etag: Option<&str>,
        size: u64,
        tx: &mpsc::Sender<std::io::Result<Bytes>>,
    ) -> Result<(), S3Error> {
        let what = format!("reading s3://{bucket}/{key}");
        let mut offset = 0u64;
        let mut attempt = 0u32;
        loop {
            if offset > 0 && size > 0 && offset >= size {
                return Ok(()); // cut off after the last byte: nothing is missing
            }
            let resp = self
                .retrying(&what, || {
                    let mut r = self.client.get_object().bucket(bucket).key(key);
                    if let Some(e) = etag {
                        r = r.if_match(e);
                    }
                    if offset > 0 {
                        r = r.range(format!("bytes={offset}-"));
                    }
                    r.send()
                })
                .await
                .map_err(|e| match e {
                    S3Error::Request { what, message } if message.starts_with("PreconditionFailed") => S3Error::Request {
                        what,
                        message: "the object changed after it was listed; the next run reads the new version".into(),
                    },
                    e => e,
                })?;
            if offset > 0 {
                // A server that ignores Range would send the whole object again, and the
                // decoder would see its first bytes twice.
                let want = format!("bytes {offset}-");
                if !resp.content_range().is_some_and(|r| r.starts_with(&want)) {
                    return Err(S3Error::Request {
                        what,
                        message: format!(
                            "the body was cut off at byte {offset} and the server did not honour a Range request to resume (Content-Range {:?})",
                            resp.content_range()
                        ),
                    });
                }
            }
            let mut body = resp.body;
            let cut = loop {
                match tokio::time::timeout(self.settings.timeout, body.try_next()).await {
                    Ok(Ok(Some(chunk))) => {
                        offset += chunk.len() as u64;
                        attempt = 0;
                        self.stats
                            .bytes
                            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        if tx.send(Ok(chunk)).await.is_err() {
                            return Ok(()); // the decoder stopped reading
                        }
                    }
                    Ok(Ok(None)) if size > 0 && offset < size => {
                        break format!("the body ended at byte {offset} of {size}");
                    }
                    Ok(Ok(None)) => return Ok(()),
                    Ok(Err(e)) => break format!("the body was cut off at byte {offset}: {e}"),
                    Err(_) => {
                        break format!("no data for {:?} at byte {offset}", self.settings.timeout)
                    }
                }
            };
            attempt += 1;
            if attempt >= self.settings.max_attempts {
                return Err(S3Error::Request {
                    what,
                    message: format!("gave up after {attempt} attempts; last error: {cut}"),
                });
            }
            self.stats.resumed.fetch_add(1, Ordering::Relaxed);
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(message = "resuming a cut-off body", what = %what, offset, error = %cut);
            tokio::time::sleep(backoff(&self.settings, attempt, offset)).await;
        }
    }
}

/// A handle to an [`S3Store`] that opens objects for the pipeline.
#[derive(Debug, Clone)]
pub struct S3Fetch(pub Arc<S3Store>);

fn object(input: &InputRef) -> Option<(String, String)> {
    match &input.location {
        Location::Object { bucket, key } => Some((bucket.clone(), key.clone())),
        Location::File(_) | Location::Stream { .. } => None,
    }
}

impl Fetch for S3Fetch {
    fn open(&self, input: &InputRef) -> Box<dyn Read + Send> {
        let Some((bucket, key)) = object(input) else {
            return Box::new(ChannelReader::failed(format!(
                "{} is not an S3 object",
                input.uri
            )));
        };
        let ready = {
            let mut slots = self
                .0
                .inner
                .slots
                .lock()
                .expect("no panics while holding it");
            match slots.insert(input.uri.clone(), Slot::Taken) {
                Some(Slot::Ready(rx)) => Some(rx),
                _ => None,
            }
        };
        let rx = ready.unwrap_or_else(|| {
            spawn_download(&self.0.rt, &self.0.inner, (bucket, key), input, None)
        });
        Box::new(ChannelReader {
            rx,
            cur: Bytes::new(),
        })
    }

    fn plan(&self, inputs: Vec<InputRef>) {
        let inner = self.0.inner.clone();
        let handle = self.0.rt.clone();
        let permits = Arc::new(Semaphore::new(inner.settings.concurrency.max(1)));
        self.0.rt.spawn(async move {
            for input in inputs {
                let Some((bucket, key)) = object(&input) else {
                    continue;
                };
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let mut slots = inner.slots.lock().expect("no panics while holding it");
                if slots.contains_key(&input.uri) {
                    continue;
                }
                let rx = spawn_download(&handle, &inner, (bucket, key), &input, Some(permit));
                slots.insert(input.uri.clone(), Slot::Ready(rx));
            }
        });
    }
}

/// The decoding side of a download: a blocking `Read` over the chunks as they arrive.
struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
}

impl ChannelReader {
    fn failed(msg: String) -> Self {
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(Err(std::io::Error::other(msg)));
        ChannelReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        bytes::Buf::advance(&mut self.cur, n);
        Ok(n)
    }
}
