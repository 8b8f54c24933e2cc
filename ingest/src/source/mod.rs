//! Sources: where inputs come from. A [`Source`] yields batches of inputs, each input with a
//! stable identity (the key its checkpoint entry is found by); a [`Fetch`] opens them as byte
//! streams for decoding. Files and S3 objects come in one batch (their listing); a Kafka topic
//! in steps handed to the workers as they are read (`run::streams`; rounds with `--follow`),
//! whose group offsets the reader commits as the warehouse takes them.

pub mod file;
pub mod kafka;
pub mod kafka_auth;
mod kafka_keys;
pub mod layout;
pub mod s3;
pub mod s3_read;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Where an input's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local file.
    File(PathBuf),
    /// An S3 object.
    Object {
        /// Bucket name.
        bucket: String,
        /// Object key.
        key: String,
    },
    /// A range of one partition of a Kafka topic.
    Stream {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// First offset.
        first: i64,
        /// Last offset (inclusive).
        last: i64,
    },
}

/// One input (a file, an object or, later, a partition range) to ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRef {
    /// Stable identity: source name and the path relative to the source root. Output file
    /// names derive from it, so the same input always replaces its own rows.
    pub key: String,
    /// Where it is, for lineage and messages.
    pub uri: String,
    /// Where to read it.
    pub location: Location,
    /// The store's version of the content when it has one (an S3 ETag): a changed version means
    /// changed content, so the content need not be read twice to find out.
    pub version: Option<String>,
    /// Size in bytes when listed.
    pub size: u64,
    /// The AWS account the input belongs to, from an `AWSLogs/ACCOUNT/` or
    /// `aws-account-id=ACCOUNT` path segment; used when records say `unknown`.
    pub account_hint: Option<String>,
}

/// The role of a fetcher: open inputs of a remote store as byte streams.
pub trait Fetch: Send + Sync + std::fmt::Debug {
    /// Opens an input for reading from its start. Errors of the store surface as read errors
    /// of the returned stream, after the fetcher's own retries.
    fn open(&self, input: &InputRef) -> Box<dyn Read + Send>;
    /// Tells the fetcher the order in which inputs will be opened, so it can download ahead.
    fn plan(&self, _inputs: Vec<InputRef>) {}
}

/// Errors listing a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source root cannot be read.
    #[error("source {name}: cannot list {path}: {source}; check the path in the config")]
    List {
        name: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A remote store refused or failed the listing (after retries).
    #[error("source {name}: {message}")]
    Remote { name: String, message: String },
}

/// Inputs of one source, ready for the pipeline.
#[derive(Debug)]
pub struct Batch {
    /// The inputs; stream inputs with where each of their messages starts.
    pub inputs: Vec<(InputRef, Option<Arc<kafka::LineOffsets>>)>,
    /// Opens them when they are not local files.
    pub fetch: Option<Arc<dyn Fetch>>,
    /// A stream's position after the batch (partition → next offset), committed to the
    /// consumer group once the batch is in the warehouse.
    pub next: BTreeMap<i32, i64>,
}

impl Batch {
    /// A listing of files or objects.
    pub fn listing(inputs: Vec<InputRef>, fetch: Option<Arc<dyn Fetch>>) -> Batch {
        Batch {
            inputs: inputs.into_iter().map(|i| (i, None)).collect(),
            fetch,
            next: BTreeMap::new(),
        }
    }
}

/// The role of a source: yield batches of inputs, each with a stable identity.
pub trait Source {
    /// The source's name from the config.
    fn name(&self) -> &str;
    /// Whether it is a stream (read in rounds, followed with `--follow`).
    fn is_stream(&self) -> bool {
        false
    }
    /// The next inputs: files and objects as one listing, a stream's next round; `None` once
    /// caught up.
    fn next_batch(&mut self) -> Result<Option<Batch>, SourceError>;
    /// Follow mode: whatever arrives within `wait` (`None` if nothing did, or for sources that
    /// are not streams).
    fn follow(
        &mut self,
        _wait: Duration,
        _stop: &AtomicBool,
    ) -> Result<Option<Batch>, SourceError> {
        Ok(None)
    }
    /// The batch is committed to the warehouse.
    fn committed(&mut self, _batch: &Batch) {}
}

/// Finds the account id in an AWS flow-log key (`AWSLogs/123456789012/…` or the
/// Hive-compatible `aws-account-id=123456789012`).
pub fn account_from_key(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split(['/', '\\']).collect();
    for (i, p) in parts.iter().enumerate() {
        if let Some(id) = p.strip_prefix("aws-account-id=") {
            if crate::inventory::is_account_id(id) {
                return Some(id.to_string());
            }
        }
        if *p == "AWSLogs" {
            if let Some(id) = parts.get(i + 1) {
                if crate::inventory::is_account_id(id) {
                    return Some(id.to_string());
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_from_aws_key_layouts() {
        assert_eq!(
            account_from_key("p/AWSLogs/123456789012/vpcflowlogs/us-east-1/2026/10/01/x.log.gz")
                .as_deref(),
            Some("123456789012")
        );
        assert_eq!(account_from_key("AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/year=2026/").as_deref(), Some("123456789012"));
        assert_eq!(account_from_key("AWSLogs/12345/vpcflowlogs"), None);
        assert_eq!(account_from_key("logs/file.log"), None);
    }
}
