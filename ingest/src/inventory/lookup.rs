//! Lookups on the attribution index: by cluster name, ENI id, address and region.

use std::net::IpAddr;

use super::{parse_arn, ConnInfo, Index, IpMatch};

impl Index {
    /// The ARN of the cluster a metric names (`Cluster Name`, and the publishing account and
    /// region when the metric says them).
    pub fn cluster_by_name(
        &self,
        name: &str,
        region: Option<&str>,
        account: Option<&str>,
    ) -> Option<&str> {
        self.inventory.clusters.iter().find_map(|c| {
            let arn = parse_arn(&c.arn).ok()?;
            // CloudWatch's `Cluster Name` is the MSK name, the ARN's; the inventory's `name`
            // may be a label of the user's own.
            let in_arn = arn.rest.split('/').next().unwrap_or_default();
            ((in_arn == name || c.name.as_deref() == Some(name))
                && region.is_none_or(|r| r == arn.region)
                && account.is_none_or(|a| a == arn.account))
            .then_some(c.arn.as_str())
        })
    }

    /// The endpoint ENI with this id.
    pub fn eni_by_id(&self, id: &str) -> Option<usize> {
        self.by_eni.get(id).copied()
    }

    /// Finds the endpoint ENI holding `ip`, within the VPC if known, else within the account
    /// (DESIGN §4 rule 1). Private IPs repeat across VPCs, so with neither there is no match,
    /// and an account with the address in two VPCs is ambiguous.
    pub fn eni_by_ip(&self, ip: &IpAddr, vpc: Option<&str>, account: Option<&str>) -> IpMatch {
        if let Some(v) = vpc {
            return match self.by_vpc_ip.get(v).and_then(|m| m.get(ip)) {
                Some(&e) => IpMatch::One(e),
                None => IpMatch::None,
            };
        }
        let Some(a) = account else {
            return IpMatch::None;
        };
        match self
            .by_account_ip
            .get(a)
            .and_then(|m| m.get(ip))
            .map(|l| l.as_slice())
        {
            None | Some([]) => IpMatch::None,
            Some([e]) => IpMatch::One(*e),
            Some(_) => IpMatch::Ambiguous,
        }
    }

    /// Whether any endpoint ENI anywhere has this address (a cheap first filter).
    pub fn is_endpoint_ip(&self, ip: &IpAddr) -> bool {
        self.by_ip.contains_key(ip)
    }

    /// Whether the inventory has a cluster in this region.
    pub fn has_region(&self, region: &str) -> bool {
        self.regions.contains(region)
    }

    /// The regions the inventory has clusters in.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.regions.iter().map(String::as_str)
    }

    /// The connection of an endpoint ENI.
    pub fn conn_of(&self, eni: usize) -> &ConnInfo {
        &self.conns[self.enis[eni].conn]
    }
}
