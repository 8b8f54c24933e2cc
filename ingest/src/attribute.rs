//! Attribution (DESIGN §4 rules 1, 2, 5, 6): decides whether a flow record concerns MSK
//! private connectivity and, if so, which endpoint ENI, connection, cluster and client
//! account it belongs to, or why it cannot be attributed.

use std::fmt;

use crate::decode::FlowRecord;
use crate::inventory::{Index, IpMatch};

/// The port range of the multi-VPC network load balancer; broker N listens on 14000 + N.
pub const MVPC_PORTS: std::ops::RangeInclusive<u16> = 14001..=14100;

/// Which way the bytes went relative to the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The endpoint side is the destination (produce, fetch requests).
    ToCluster,
    /// The endpoint side is the source (fetch responses).
    FromCluster,
}

impl Direction {
    /// Column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ToCluster => "to_cluster",
            Direction::FromCluster => "from_cluster",
        }
    }
}

/// Which ENI's flow log saw the record (DESIGN §4 rule 3, resolved in aggregate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Observed {
    /// Captured on the endpoint ENI itself.
    Endpoint,
    /// Captured on another ENI (the client's), matched to the endpoint by IP.
    Client,
}

impl Observed {
    /// Column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Observed::Endpoint => "endpoint",
            Observed::Client => "client",
        }
    }
}

/// Why a relevant record could not be attributed (it is stored, never dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// A multi-VPC port, but no endpoint ENI in the inventory matches either side.
    UnknownEndpoint,
    /// An endpoint ENI, but the endpoint-side port is outside 14001–14100.
    UnexpectedPort,
    /// The record lies entirely outside its connection's created..deleted lifetime.
    OutsideConnectionLifetime,
    /// Action REJECT: the packets never reached the endpoint; not billed.
    Rejected,
    /// A multi-VPC port in a region where the inventory has no cluster.
    NoInventoryRegion,
    /// The endpoint IP matches ENIs in several VPCs of the record's account and the record
    /// names no VPC.
    AmbiguousIp,
}

impl Reason {
    /// Column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownEndpoint => "unknown_endpoint",
            Reason::UnexpectedPort => "unexpected_port",
            Reason::OutsideConnectionLifetime => "outside_connection_lifetime",
            Reason::Rejected => "rejected",
            Reason::NoInventoryRegion => "no_inventory_region",
            Reason::AmbiguousIp => "ambiguous_ip",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict on a relevant record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribution {
    /// The endpoint ENI (index into the inventory), when one was identified.
    pub eni: Option<usize>,
    /// Where the record was captured.
    pub observed: Observed,
    /// Which way the bytes went.
    pub direction: Direction,
    /// Broker id from the endpoint-side port.
    pub broker_id: Option<u16>,
    /// Why it is unattributed; `None` when attributed.
    pub reason: Option<Reason>,
}

/// What attribution made of a traffic record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not MSK private connectivity traffic: counted, not stored.
    Filtered,
    /// Relevant: stored, attributed or with a reason.
    Relevant(Attribution),
}

fn in_range(p: Option<u16>) -> bool {
    p.is_some_and(|p| MVPC_PORTS.contains(&p))
}

/// Attributes one traffic record. `context_account` is the account the input belongs to
/// (from the S3 key or the source config), used when `account-id` is absent or `unknown`.
pub fn attribute(rec: &FlowRecord<'_>, context_account: Option<&str>, ix: &Index) -> Outcome {
    let account = rec
        .account_id
        .filter(|a| *a != "unknown")
        .or(context_account);
    if let Some(eni) = rec.interface_id.and_then(|i| ix.eni_by_id(i)) {
        let ips = &ix.enis[eni].ips;
        let direction = if rec.dstaddr.is_some_and(|d| ips.contains(&d)) {
            Direction::ToCluster
        } else if rec.srcaddr.is_some_and(|s| ips.contains(&s)) {
            Direction::FromCluster
        } else if in_range(rec.dstport) {
            Direction::ToCluster
        } else {
            Direction::FromCluster
        };
        return Outcome::Relevant(finish(rec, ix, eni, Observed::Endpoint, direction));
    }
    let mut ambiguous = false;
    for (addr, direction) in [
        (rec.dstaddr, Direction::ToCluster),
        (rec.srcaddr, Direction::FromCluster),
    ] {
        let Some(a) = addr else { continue };
        if !ix.is_endpoint_ip(&a) {
            continue;
        }
        match ix.eni_by_ip(&a, rec.vpc_id, account) {
            IpMatch::One(eni) => {
                return Outcome::Relevant(finish(rec, ix, eni, Observed::Client, direction))
            }
            IpMatch::Ambiguous => ambiguous = true,
            IpMatch::None => {}
        }
    }
    let ports = in_range(rec.dstport) || in_range(rec.srcport);
    if !ambiguous && !ports {
        return Outcome::Filtered;
    }
    let direction = if in_range(rec.dstport) {
        Direction::ToCluster
    } else {
        Direction::FromCluster
    };
    let reason = if rec.action == Some("REJECT") {
        Reason::Rejected
    } else if ambiguous {
        Reason::AmbiguousIp
    } else if rec.region.is_some_and(|r| !ix.has_region(r)) {
        Reason::NoInventoryRegion
    } else {
        Reason::UnknownEndpoint
    };
    let port = if direction == Direction::ToCluster {
        rec.dstport
    } else {
        rec.srcport
    };
    Outcome::Relevant(Attribution {
        eni: None,
        observed: Observed::Client,
        direction,
        broker_id: port.filter(|p| MVPC_PORTS.contains(p)).map(|p| p - 14000),
        reason: Some(reason),
    })
}

fn finish(
    rec: &FlowRecord<'_>,
    ix: &Index,
    eni: usize,
    observed: Observed,
    direction: Direction,
) -> Attribution {
    let conn = ix.conn_of(eni);
    let port = match direction {
        Direction::ToCluster => rec.dstport,
        Direction::FromCluster => rec.srcport,
    };
    let broker_id = port.filter(|p| MVPC_PORTS.contains(p)).map(|p| p - 14000);
    let (start, end) = (rec.start.unwrap_or(i64::MIN), rec.end.unwrap_or(i64::MAX));
    let outside = end < conn.created || conn.deleted.is_some_and(|d| start >= d);
    let reason = if rec.action == Some("REJECT") {
        Some(Reason::Rejected)
    } else if broker_id.is_none() {
        Some(Reason::UnexpectedPort)
    } else if outside {
        Some(Reason::OutsideConnectionLifetime)
    } else {
        None
    };
    Attribution {
        eni: Some(eni),
        observed,
        direction,
        broker_id,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{parse_time, Inventory};

    fn ix() -> Index {
        Inventory::from_toml(crate::inventory::tests::SAMPLE, "t").unwrap()
    }

    fn rec<'a>(iface: &'a str, src: &str, dst: &str, sport: u16, dport: u16) -> FlowRecord<'a> {
        FlowRecord {
            interface_id: Some(iface),
            srcaddr: Some(src.parse().unwrap()),
            dstaddr: Some(dst.parse().unwrap()),
            srcport: Some(sport),
            dstport: Some(dport),
            bytes: Some(100),
            start: Some(parse_time("2026-10-01T10:00:00Z").unwrap()),
            end: Some(parse_time("2026-10-01T10:00:59Z").unwrap()),
            action: Some("ACCEPT"),
            ..Default::default()
        }
    }

    fn relevant(o: Outcome) -> Attribution {
        match o {
            Outcome::Relevant(a) => a,
            Outcome::Filtered => panic!("filtered"),
        }
    }

    #[test]
    fn endpoint_side_record_both_directions() {
        let ix = ix();
        let a = relevant(attribute(
            &rec("eni-1a", "10.0.9.9", "10.0.1.10", 40000, 14003),
            None,
            &ix,
        ));
        assert_eq!(
            (a.eni, a.observed, a.direction, a.broker_id, a.reason),
            (
                Some(0),
                Observed::Endpoint,
                Direction::ToCluster,
                Some(3),
                None
            )
        );
        let a = relevant(attribute(
            &rec("eni-1a", "10.0.1.10", "10.0.9.9", 14003, 40000),
            None,
            &ix,
        ));
        assert_eq!(
            (a.direction, a.broker_id),
            (Direction::FromCluster, Some(3))
        );
    }

    #[test]
    fn client_side_record_is_matched_within_the_account_or_vpc() {
        let ix = ix();
        // 10.0.1.10 is an endpoint IP in both vpc-111 and vpc-222.
        let r = rec("eni-client", "10.0.9.9", "10.0.1.10", 40000, 14001);
        assert_eq!(
            relevant(attribute(&r, Some("222222222222"), &ix)).eni,
            Some(2)
        );
        assert_eq!(
            relevant(attribute(&r, Some("111111111111"), &ix)).eni,
            Some(0)
        );
        // No VPC and no account: private IPs repeat across VPCs, so no match (DESIGN §4.1).
        let a = relevant(attribute(&r, None, &ix));
        assert_eq!((a.eni, a.reason), (None, Some(Reason::UnknownEndpoint)));
        // One account with the address in two of its VPCs, and no vpc-id: ambiguous.
        let two_vpcs = crate::inventory::tests::SAMPLE.replace(
            "client_account = \"222222222222\"",
            "client_account = \"111111111111\"",
        );
        let ix2 = Inventory::from_toml(&two_vpcs, "t").unwrap();
        let a = relevant(attribute(&r, Some("111111111111"), &ix2));
        assert_eq!((a.eni, a.reason), (None, Some(Reason::AmbiguousIp)));
        let mut r2 = r.clone();
        r2.vpc_id = Some("vpc-222");
        let a = relevant(attribute(&r2, None, &ix));
        assert_eq!(
            (a.eni, a.observed, a.reason),
            (Some(2), Observed::Client, None)
        );
        // "unknown" in account-id falls back to the context account.
        let mut r3 = r.clone();
        r3.account_id = Some("unknown");
        assert_eq!(
            relevant(attribute(&r3, Some("111111111111"), &ix)).eni,
            Some(0)
        );
    }

    #[test]
    fn noise_is_filtered_and_unknown_endpoints_are_kept() {
        let ix = ix();
        assert_eq!(
            attribute(&rec("eni-x", "10.9.0.1", "10.9.0.2", 40000, 443), None, &ix),
            Outcome::Filtered
        );
        let a = relevant(attribute(
            &rec("eni-x", "10.9.0.1", "10.9.0.2", 40000, 14002),
            None,
            &ix,
        ));
        assert_eq!(
            (a.eni, a.reason, a.broker_id),
            (None, Some(Reason::UnknownEndpoint), Some(2))
        );
        let mut r = rec("eni-x", "10.9.0.1", "10.9.0.2", 40000, 14002);
        r.region = Some("eu-west-1");
        assert_eq!(
            relevant(attribute(&r, None, &ix)).reason,
            Some(Reason::NoInventoryRegion)
        );
    }

    #[test]
    fn reasons_on_known_endpoints() {
        let ix = ix();
        let mut r = rec("eni-1a", "10.0.9.9", "10.0.1.10", 40000, 14001);
        r.action = Some("REJECT");
        assert_eq!(
            relevant(attribute(&r, None, &ix)).reason,
            Some(Reason::Rejected)
        );
        // Rejected on the way to an endpoint nobody registered: still `rejected`.
        let mut r = rec("eni-x", "10.9.0.1", "10.9.0.2", 40000, 14002);
        r.action = Some("REJECT");
        assert_eq!(
            relevant(attribute(&r, None, &ix)).reason,
            Some(Reason::Rejected)
        );
        let r = rec("eni-1a", "10.0.9.9", "10.0.1.10", 40000, 9098);
        assert_eq!(
            relevant(attribute(&r, None, &ix)).reason,
            Some(Reason::UnexpectedPort)
        );
        // Connection 2 was deleted at 10:20 on 2026-10-15.
        let mut r = rec("eni-2a", "10.0.9.9", "10.0.1.10", 40000, 14001);
        r.start = Some(parse_time("2026-10-15T10:19:30Z").unwrap());
        r.end = Some(parse_time("2026-10-15T10:20:30Z").unwrap());
        assert_eq!(
            relevant(attribute(&r, None, &ix)).reason,
            None,
            "overlaps the lifetime"
        );
        r.start = Some(parse_time("2026-10-15T10:20:00Z").unwrap());
        assert_eq!(
            relevant(attribute(&r, None, &ix)).reason,
            Some(Reason::OutsideConnectionLifetime)
        );
        r.start = Some(parse_time("2026-01-01T10:00:00Z").unwrap());
        r.end = Some(parse_time("2026-01-01T10:01:00Z").unwrap());
        assert_eq!(
            relevant(attribute(&r, None, &ix)).reason,
            Some(Reason::OutsideConnectionLifetime),
            "before created"
        );
    }
}
