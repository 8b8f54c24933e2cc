//! S3 sources (`s3://bucket/prefix`): list every object under the prefix, page by page.
//!
//! With a time range, listing walks the key hierarchy with a `/` delimiter and skips date
//! directories of AWS's layouts ([`super::layout`]) that lie outside it, so a daily run reads
//! one day's listing, not the bucket's history; below a day it lists flat.

use std::sync::Arc;

use super::layout::{key_in, prefix_window, Window};
use super::s3_read::{S3Error, S3Fetch, S3Store};
use super::{account_from_key, Batch, Fetch, InputRef, Location, Source, SourceError};

/// Splits `s3://bucket/prefix` into bucket and prefix. The prefix names a directory (a
/// trailing `/` is implied), so `s3://b/logs` never picks up `logs-old/…`.
pub fn parse_uri(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = match prefix.trim_start_matches('/') {
        "" => String::new(),
        p if p.ends_with('/') => p.to_string(),
        p => format!("{p}/"),
    };
    (!bucket.is_empty()).then(|| (bucket.to_string(), prefix))
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Object key.
    pub key: String,
    /// ETag as S3 returns it (quoted).
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
}

/// An S3 prefix of flow-log objects.
#[derive(Debug, Clone)]
pub struct S3Source {
    name: String,
    bucket: String,
    prefix: String,
    store: Arc<S3Store>,
    range: Option<Window>,
    listed: bool,
}

impl S3Source {
    /// A source named `name` over `s3://bucket/prefix`, optionally limited to objects whose
    /// key time lies in `range`.
    pub fn new(
        name: &str,
        bucket: &str,
        prefix: &str,
        store: Arc<S3Store>,
        range: Option<Window>,
    ) -> Self {
        S3Source {
            name: name.to_string(),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            store,
            range,
            listed: false,
        }
    }

    fn list_objects(&self) -> Result<Vec<Listed>, S3Error> {
        let inner = self.store.inner().clone();
        let (bucket, range) = (self.bucket.clone(), self.range);
        let prefix = self.prefix.clone();
        self.store.block_on(async move {
            let mut out = Vec::new();
            // Prefixes still to list: (prefix, list with a delimiter?).
            let mut todo = vec![(prefix, range.is_some())];
            while let Some((p, descend)) = todo.pop() {
                let mut token: Option<String> = None;
                loop {
                    let what = format!("listing s3://{bucket}/{p}");
                    let page = inner
                        .retrying(&what, || {
                            let mut r = inner
                                .client()
                                .list_objects_v2()
                                .bucket(&bucket)
                                .prefix(&p)
                                .set_continuation_token(token.clone());
                            if descend {
                                r = r.delimiter("/");
                            }
                            r.send()
                        })
                        .await?;
                    for o in page.contents() {
                        let Some(key) = o.key() else { continue };
                        if key.ends_with('/') || range.is_some_and(|w| !key_in(key, w)) {
                            continue;
                        }
                        let size = o.size().unwrap_or(0).max(0) as u64;
                        out.push(Listed {
                            key: key.to_string(),
                            // Without an ETag (some S3-compatible stores), key, size and time
                            // stand in for the version.
                            etag: match o.e_tag() {
                                Some(e) if !e.is_empty() => e.to_string(),
                                _ => format!(
                                    "{key}:{size}:{}",
                                    o.last_modified().map(|t| t.secs()).unwrap_or(0)
                                ),
                            },
                            size,
                        });
                    }
                    for cp in page.common_prefixes() {
                        let Some(sub) = cp.prefix() else { continue };
                        let w = prefix_window(sub);
                        // A directory is skipped only when it is an hour clear of the range: the
                        // file-name stamp, not the directory, decides at the edges.
                        if let (Some((s, e)), Some((from, to))) = (w, range) {
                            if e.saturating_add(3600) <= from || to.saturating_add(3600) <= s {
                                continue;
                            }
                        }
                        // Below a day there is nothing left to prune: list it flat.
                        let day_or_less = w.is_some_and(|(s, e)| e - s <= 86_400);
                        todo.push((sub.to_string(), !day_or_less));
                    }
                    token = page.next_continuation_token().map(str::to_string);
                    if token.is_none() || page.is_truncated() != Some(true) {
                        break;
                    }
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
    }
}

impl Source for S3Source {
    fn name(&self) -> &str {
        &self.name
    }

    fn next_batch(&mut self) -> Result<Option<Batch>, SourceError> {
        if std::mem::replace(&mut self.listed, true) {
            return Ok(None);
        }
        let fetch: Arc<dyn Fetch> = Arc::new(S3Fetch(self.store.clone()));
        Ok(Some(Batch::listing(self.list()?, Some(fetch))))
    }
}

impl S3Source {
    /// Every object under the prefix (in the key-time range, when one is set), by key.
    pub fn list(&self) -> Result<Vec<InputRef>, SourceError> {
        let objects = self.list_objects().map_err(|e| SourceError::Remote {
            name: self.name.clone(),
            message: e.to_string(),
        })?;
        Ok(objects
            .into_iter()
            .map(|o| {
                let rel = o.key.strip_prefix(&self.prefix).unwrap_or(&o.key);
                let rel = rel.trim_start_matches('/');
                InputRef {
                    key: format!("{}:{rel}", self.name),
                    uri: format!("s3://{}/{}", self.bucket, o.key),
                    account_hint: account_from_key(&o.key),
                    location: Location::Object {
                        bucket: self.bucket.clone(),
                        key: o.key,
                    },
                    version: Some(o.etag),
                    size: o.size,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        assert_eq!(
            parse_uri("s3://flow-logs/central/AWSLogs/"),
            Some(("flow-logs".into(), "central/AWSLogs/".into()))
        );
        assert_eq!(
            parse_uri("s3://flow-logs"),
            Some(("flow-logs".into(), "".into()))
        );
        assert_eq!(
            parse_uri("s3://flow-logs/central"),
            Some(("flow-logs".into(), "central/".into()))
        );
        assert_eq!(parse_uri("s3:///x"), None);
        assert_eq!(parse_uri("/local/path"), None);
    }
}
