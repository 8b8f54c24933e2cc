//! Flow-log records as AWS writes them: the default (v2) format and a custom v5 one.

use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};

/// Even-numbered accounts deliver a custom log format (v5 fields); odd ones the default.
pub(crate) fn custom_format(account: usize) -> bool {
    account.is_multiple_of(2)
}

pub(crate) fn account_id(i: usize) -> String {
    format!("{:012}", 210_000_000_000u64 + i as u64 * 1_010_101)
}

pub(crate) const OWNER: &str = "900000000001";

pub(crate) fn iso(t: i64) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Fields of one record, written in the account's header order.
pub(crate) struct Rec<'a> {
    pub(crate) account: &'a str,
    pub(crate) iface: &'a str,
    pub(crate) src: Ipv4Addr,
    pub(crate) dst: Ipv4Addr,
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    pub(crate) proto: u8,
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) action: &'a str,
    pub(crate) vpc: &'a str,
    pub(crate) az: &'a str,
}

pub(crate) const V2_HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
pub(crate) const CUSTOM_HEADER: &str = "version vpc-id az-id interface-id account-id srcaddr dstaddr srcport dstport protocol bytes packets start end action tcp-flags region log-status";

pub(crate) fn fmt_rec(custom: bool, r: &Rec<'_>, region: &str) -> String {
    if custom {
        format!(
            "5 {} {} {} {} {} {} {} {} {} {} {} {} {} {} 19 {} OK",
            r.vpc,
            r.az,
            r.iface,
            r.account,
            r.src,
            r.dst,
            r.sport,
            r.dport,
            r.proto,
            r.bytes,
            r.packets,
            r.start,
            r.end,
            r.action,
            region
        )
    } else {
        format!(
            "2 {} {} {} {} {} {} {} {} {} {} {} {} OK",
            r.account,
            r.iface,
            r.src,
            r.dst,
            r.sport,
            r.dport,
            r.proto,
            r.packets,
            r.bytes,
            r.start,
            r.end,
            r.action
        )
    }
}

// A private formatting helper called from three places; a struct would only rename the list.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fmt_coverage(
    custom: bool,
    account: &str,
    iface: &str,
    vpc: &str,
    az: &str,
    start: i64,
    end: i64,
    status: &str,
    region: &str,
) -> String {
    if custom {
        format!("5 {vpc} {az} {iface} {account} - - - - - - - {start} {end} - - {region} {status}")
    } else {
        format!("2 {account} {iface} - - - - - - - {start} {end} - {status}")
    }
}
