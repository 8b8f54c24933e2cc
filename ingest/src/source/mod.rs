//! Sources: where inputs come from. A source lists its inputs, each with a stable identity
//! (the key that names its output files) and opens them for decoding.

pub mod file;

use std::path::PathBuf;

/// One input (a file or, later, an object or a partition range) to ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRef {
    /// Stable identity: source name and the path relative to the source root. Output file
    /// names derive from it, so the same input always replaces its own rows.
    pub key: String,
    /// Where it is, for lineage and messages.
    pub uri: String,
    /// Local path to read.
    pub path: PathBuf,
    /// Size in bytes when listed.
    pub size: u64,
    /// The AWS account the input belongs to, from an `AWSLogs/ACCOUNT/` or
    /// `aws-account-id=ACCOUNT` path segment; used when records say `unknown`.
    pub account_hint: Option<String>,
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
}

/// The role of a source: list the inputs it has now.
pub trait Source {
    /// The source's name from the config.
    fn name(&self) -> &str;
    /// Every input, in a stable order.
    fn list(&self) -> Result<Vec<InputRef>, SourceError>;
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
