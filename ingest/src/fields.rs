//! The VPC Flow Log field catalog (versions 2–8, `aws-facts.md` §3.2).
//!
//! Text files name fields with hyphens (`interface-id`), AWS's Parquet files with underscores
//! (`interface_id`); both map to one [`Field`].

/// A flow-log field linkmeter understands. Fields it does not use for metering are still
/// recognised so a header naming them is valid; their values are kept only as `extra`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Version,
    AccountId,
    InterfaceId,
    SrcAddr,
    DstAddr,
    SrcPort,
    DstPort,
    Protocol,
    Packets,
    Bytes,
    Start,
    End,
    Action,
    LogStatus,
    VpcId,
    SubnetId,
    InstanceId,
    TcpFlags,
    Type,
    PktSrcAddr,
    PktDstAddr,
    Region,
    AzId,
    SublocationType,
    SublocationId,
    PktSrcAwsService,
    PktDstAwsService,
    FlowDirection,
    TrafficPath,
    /// Any of the v7 ECS fields, v8 `reject-reason` and later string fields: recognised,
    /// not interpreted.
    Known(&'static str),
}

impl Field {
    /// Whether the field's values are whole numbers (the rest are text and addresses).
    pub fn is_count(self) -> bool {
        matches!(
            self,
            Field::Version
                | Field::SrcPort
                | Field::DstPort
                | Field::Protocol
                | Field::Packets
                | Field::Bytes
                | Field::Start
                | Field::End
                | Field::TcpFlags
                | Field::TrafficPath
        )
    }
}

/// Every field name of versions 2–8 (and later string fields seen in AWS docs), text form.
const CATALOG: &[(&str, Field)] = &[
    ("version", Field::Version),
    ("account-id", Field::AccountId),
    ("interface-id", Field::InterfaceId),
    ("srcaddr", Field::SrcAddr),
    ("dstaddr", Field::DstAddr),
    ("srcport", Field::SrcPort),
    ("dstport", Field::DstPort),
    ("protocol", Field::Protocol),
    ("packets", Field::Packets),
    ("bytes", Field::Bytes),
    ("start", Field::Start),
    ("end", Field::End),
    ("action", Field::Action),
    ("log-status", Field::LogStatus),
    ("vpc-id", Field::VpcId),
    ("subnet-id", Field::SubnetId),
    ("instance-id", Field::InstanceId),
    ("tcp-flags", Field::TcpFlags),
    ("type", Field::Type),
    ("pkt-srcaddr", Field::PktSrcAddr),
    ("pkt-dstaddr", Field::PktDstAddr),
    ("region", Field::Region),
    ("az-id", Field::AzId),
    ("sublocation-type", Field::SublocationType),
    ("sublocation-id", Field::SublocationId),
    ("pkt-src-aws-service", Field::PktSrcAwsService),
    ("pkt-dst-aws-service", Field::PktDstAwsService),
    ("flow-direction", Field::FlowDirection),
    ("traffic-path", Field::TrafficPath),
    ("ecs-cluster-arn", Field::Known("ecs-cluster-arn")),
    ("ecs-cluster-name", Field::Known("ecs-cluster-name")),
    (
        "ecs-container-instance-arn",
        Field::Known("ecs-container-instance-arn"),
    ),
    (
        "ecs-container-instance-id",
        Field::Known("ecs-container-instance-id"),
    ),
    ("ecs-container-id", Field::Known("ecs-container-id")),
    (
        "ecs-second-container-id",
        Field::Known("ecs-second-container-id"),
    ),
    ("ecs-service-name", Field::Known("ecs-service-name")),
    (
        "ecs-task-definition-arn",
        Field::Known("ecs-task-definition-arn"),
    ),
    ("ecs-task-arn", Field::Known("ecs-task-arn")),
    ("ecs-task-id", Field::Known("ecs-task-id")),
    ("reject-reason", Field::Known("reject-reason")),
    ("encryption-status", Field::Known("encryption-status")),
    ("resource-id", Field::Known("resource-id")),
];

/// The default (version 2) format: every v2 field in table order.
pub const DEFAULT_FORMAT: &str =
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

/// Looks up a field by its text (`interface-id`) or Parquet (`interface_id`) name.
pub fn lookup(name: &str) -> Option<Field> {
    if name.contains('_') {
        let hyphenated = name.replace('_', "-");
        return CATALOG
            .iter()
            .find(|(n, _)| *n == hyphenated)
            .map(|(_, f)| *f);
    }
    CATALOG.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// A column of a flow-log format: a known field or a name linkmeter does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// A field from the catalog.
    Field(Field),
    /// A name not in the catalog; its values are kept as strings in `extra`.
    Unknown(String),
}

/// A parsed format (header line or configured format string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// Columns in file order.
    pub columns: Vec<Column>,
    /// Whether the columns are [`DEFAULT_FORMAT`]'s (lines then take a faster parser).
    pub(crate) is_default: bool,
}

/// The fields of [`DEFAULT_FORMAT`] in order.
const DEFAULT_FIELDS: [Field; 14] = [
    Field::Version,
    Field::AccountId,
    Field::InterfaceId,
    Field::SrcAddr,
    Field::DstAddr,
    Field::SrcPort,
    Field::DstPort,
    Field::Protocol,
    Field::Packets,
    Field::Bytes,
    Field::Start,
    Field::End,
    Field::Action,
    Field::LogStatus,
];

/// Why a header or format string cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The same field is named twice, so its value would be ambiguous.
    #[error("field `{0}` appears twice in the header; values would be ambiguous")]
    Duplicate(String),
    /// The format names no field at all.
    #[error("the header is empty")]
    Empty,
}

impl Format {
    /// Parses a space-separated list of field names (a header line or a configured format).
    pub fn parse(line: &str) -> Result<Format, FormatError> {
        let mut columns = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for name in line.split_ascii_whitespace() {
            let name = name.trim_start_matches("${").trim_end_matches('}');
            if seen.contains(&name) {
                return Err(FormatError::Duplicate(name.to_string()));
            }
            seen.push(name);
            columns.push(match lookup(name) {
                Some(f) => Column::Field(f),
                None => Column::Unknown(name.to_string()),
            });
        }
        if columns.is_empty() {
            return Err(FormatError::Empty);
        }
        let is_default = columns.len() == DEFAULT_FIELDS.len()
            && columns
                .iter()
                .zip(DEFAULT_FIELDS)
                .all(|(c, f)| *c == Column::Field(f));
        Ok(Format {
            columns,
            is_default,
        })
    }

    /// Whether the format names this field.
    pub fn has(&self, f: Field) -> bool {
        self.columns.contains(&Column::Field(f))
    }

    /// Names the fields metering needs that this format lacks (empty when it can be metered).
    pub fn missing_for_metering(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        for (f, n) in [
            (Field::Bytes, "bytes"),
            (Field::Start, "start"),
            (Field::End, "end"),
        ] {
            if !self.has(f) {
                missing.push(n);
            }
        }
        if !(self.has(Field::InterfaceId) || (self.has(Field::SrcAddr) && self.has(Field::DstAddr)))
        {
            missing.push("interface-id (or srcaddr and dstaddr)");
        }
        missing
    }

    /// How many columns are known fields (a header naming none is not a flow-log header).
    pub fn known_count(&self) -> usize {
        self.columns
            .iter()
            .filter(|c| matches!(c, Column::Field(_)))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_map_to_one_field() {
        assert_eq!(lookup("interface-id"), Some(Field::InterfaceId));
        assert_eq!(lookup("interface_id"), Some(Field::InterfaceId));
        assert_eq!(lookup("pkt_src_aws_service"), Some(Field::PktSrcAwsService));
        assert_eq!(lookup("ecs-task-id"), Some(Field::Known("ecs-task-id")));
        assert_eq!(lookup("nonsense"), None);
    }

    #[test]
    fn default_format_is_meterable() {
        let f = Format::parse(DEFAULT_FORMAT).unwrap();
        assert_eq!(f.columns.len(), 14);
        assert!(f.missing_for_metering().is_empty());
        assert!(f.is_default);
        // The same fields by their Parquet names are the default too; one field less is not.
        assert!(
            Format::parse(&DEFAULT_FORMAT.replace('-', "_"))
                .unwrap()
                .is_default
        );
        let shorter = DEFAULT_FORMAT.trim_end_matches(" log-status");
        assert!(!Format::parse(shorter).unwrap().is_default);
        assert!(
            !Format::parse(&format!("{DEFAULT_FORMAT} vpc-id"))
                .unwrap()
                .is_default
        );
    }

    #[test]
    fn aws_console_style_placeholders_are_accepted() {
        let f = Format::parse("${version} ${interface-id} ${bytes}").unwrap();
        assert_eq!(f.columns[1], Column::Field(Field::InterfaceId));
    }

    #[test]
    fn duplicates_and_unknowns() {
        assert_eq!(
            Format::parse("version bytes bytes"),
            Err(FormatError::Duplicate("bytes".into()))
        );
        let f = Format::parse("version my-field bytes").unwrap();
        assert_eq!(f.columns[1], Column::Unknown("my-field".into()));
        assert_eq!(f.known_count(), 2);
        assert_eq!(
            f.missing_for_metering(),
            vec!["start", "end", "interface-id (or srcaddr and dstaddr)"]
        );
    }
}
