//! The estate's traffic, hour by hour: MSK records on both observation points, noise, NODATA
//! rows on idle endpoint ENIs, traffic that must stay unattributed, and the special cases (stale
//! clients of the deleted connection, the SKIPDATA window, malformed lines). The ground truth
//! and the per-broker bytes are counted as the records are made.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use linkmeter_ingest::hours::{hour_floor, split_hours, HOUR};

use crate::estate::{Conn, Estate, Mode};
use crate::files::Line;
use crate::records::{account_id, custom_format, fmt_coverage, fmt_rec, Rec};
use crate::rng::Rng;
use crate::GenSummary;

/// Bytes per (hour, cluster, broker, direction) on private connectivity.
pub(crate) type PerBroker = BTreeMap<(i64, usize, u16, &'static str), u64>;

/// The lines made so far and what they add up to.
pub(crate) struct Traffic<'e> {
    e: &'e Estate,
    /// Lines per (hour, account) file, keyed hour-first so finished hours split off.
    pub(crate) files: BTreeMap<(i64, usize), Vec<Line>>,
    /// Billable bytes per (hour, connection, direction): the ground truth.
    pub(crate) truth: BTreeMap<(i64, String, &'static str), u64>,
    /// The brokers' share of the same bytes, for the metrics.
    pub(crate) per_broker: PerBroker,
    pub(crate) sum: GenSummary,
}

impl<'e> Traffic<'e> {
    pub(crate) fn new(e: &'e Estate) -> Traffic<'e> {
        Traffic {
            e,
            files: BTreeMap::new(),
            truth: BTreeMap::new(),
            per_broker: BTreeMap::new(),
            sum: GenSummary {
                connections: e.conns.len() as u64,
                ..Default::default()
            },
        }
    }

    fn push(&mut self, a: usize, end: i64, text: String) {
        self.files
            .entry((hour_floor(end), a))
            .or_default()
            .push(Line { end, text });
    }

    /// The files of every hour before `until`, which no later record can add to.
    pub(crate) fn take_before(&mut self, until: i64) -> BTreeMap<(i64, usize), Vec<Line>> {
        let later = self.files.split_off(&(until, 0));
        std::mem::replace(&mut self.files, later)
    }

    /// Stale clients keep trying the deleted connection (seen on their own ENIs).
    pub(crate) fn stale_clients(&mut self) {
        let e = self.e;
        let c = &e.conns[e.deleted_conn];
        let (ceni, cip, ei) = &c.clients[0];
        let (_, eaz, eip) = &c.enis[*ei];
        let acct = account_id(c.account);
        let mut t = e.deleted_at + 40 * 60;
        for _ in 0..5 {
            if t + 30 >= e.end_t {
                break;
            }
            let rec = Rec {
                account: &acct,
                iface: ceni,
                src: *cip,
                dst: *eip,
                sport: 47000,
                dport: 14001,
                proto: 6,
                packets: 5,
                bytes: 900,
                start: t,
                end: t + 30,
                action: "ACCEPT",
                vpc: &c.vpc,
                az: eaz,
            };
            self.push(
                c.account,
                t + 30,
                fmt_rec(custom_format(c.account), &rec, &e.region),
            );
            self.sum.unattributed_records += 1;
            t += 1800;
        }
    }

    /// The SKIPDATA window.
    pub(crate) fn skipdata(&mut self) {
        let e = self.e;
        let c = &e.conns[e.skip_conn];
        let (eeni, eaz, _) = &c.enis[e.skip_eni];
        let line = fmt_coverage(
            custom_format(c.account),
            "unknown",
            eeni,
            &c.vpc,
            eaz,
            e.skip_hour,
            e.skip_hour + HOUR - 1,
            "SKIPDATA",
            &e.region,
        );
        self.push(c.account, e.skip_hour + HOUR - 1, line);
        self.sum.coverage_rows += 1;
    }

    /// Malformed lines, spread over a few files of accounts with the default format.
    pub(crate) fn malformed(&mut self) {
        let e = self.e;
        let malformed = [
            "2 123456789012 eni-0badbadbadbadbad0 10.1.1.1 10.1.1.2 443",
            "2 123456789012 eni-0badbadbadbadbad0 10.1.1.1 10.1.1.2 443 14001 6 10 12x 1790812800 1790812860 ACCEPT OK",
            "2 123456789012 eni-0badbadbadbadbad0 10.1.1.1 10.1.1.2 443 14001 6 10 99999999999999999999999 1790812800 1790812860 ACCEPT OK",
            "2 123456789012 eni-0badbadbadbadbad0 10.1.1.1 10.1.1.2 443 14001 6 10 100 1790812900 1790812860 ACCEPT OK",
            "2 123456789012 eni-0badbadbadbadbad0 10.1.1.1 10.1.300.2 443 14001 6 10 100 1790812800 1790812860 ACCEPT OK",
            "<html><body>AccessDenied</body></html>",
        ];
        let plain_accounts: Vec<usize> = (0..e.n_acc).filter(|a| !custom_format(*a)).collect();
        for (i, m) in malformed.iter().enumerate() {
            let a = plain_accounts[(i * 13) % plain_accounts.len()];
            let hour = e.start + ((i as i64 * 7919) % e.hours) * HOUR;
            self.push(a, hour + HOUR - 1, m.to_string());
            self.sum.malformed_lines += 1;
        }
    }

    /// Every connection's traffic of hour `h`.
    pub(crate) fn hour(&mut self, h: i64, rng: &mut Rng, noise: u32) {
        let e = self.e;
        let hour = e.start + h * HOUR;
        for c in &e.conns {
            for ci in 0..c.clients.len() {
                self.client(c, ci, hour, rng, noise);
            }
            if matches!(c.mode, Mode::Endpoint | Mode::Both) {
                self.nodata(c, hour);
            }
            // Traffic that must stay unattributed, a little of it every few hours.
            if h % 5 == (c.account as i64) % 5 && c.deleted.is_none_or(|d| hour + HOUR <= d) {
                self.planted(c, hour, rng);
            }
        }
    }

    /// Whether an endpoint ENI of `c` is the SKIPDATA one, within an hour of its window.
    fn near_skip(&self, c: &Conn, eni: usize, hour: i64) -> bool {
        let e = self.e;
        c.enis.len() > eni
            && std::ptr::eq(c, &e.conns[e.skip_conn])
            && eni == e.skip_eni
            && (hour - e.skip_hour).abs() <= HOUR
    }

    /// One client instance's hour: to a few brokers, six 10-minute windows, both directions,
    /// and noise beside each window.
    fn client(&mut self, c: &Conn, ci: usize, hour: i64, rng: &mut Rng, noise: u32) {
        let e = self.e;
        let brokers = e.clusters[c.cluster].brokers;
        let ei = c.clients[ci].2;
        for b in 1..=brokers {
            // Each client keeps a connection to a few brokers, not all of them.
            if (b as usize + ci) % 2 == 1 && brokers > 3 {
                continue;
            }
            let port = 14000 + b;
            let cport = 40000 + (rng.below(20000) as u16);
            for w in 0..6 {
                let near = self.near_skip(c, ei, hour);
                let jitter = if near { 0 } else { rng.below(300) as i64 };
                let s = hour + w * 600 + jitter;
                let len = rng.range(30, 599) as i64;
                let mut end = s + len;
                if near {
                    end = end.min(hour + HOUR - 1);
                }
                if c.deleted.is_some_and(|d| end >= d) {
                    continue;
                }
                self.window(c, ci, b, (port, cport), (s, end), hour, rng);
                self.noise(c, ci, hour, rng, noise);
            }
        }
    }

    /// One window's records in both directions, on the observation points the connection logs.
    #[allow(clippy::too_many_arguments)]
    fn window(
        &mut self,
        c: &Conn,
        ci: usize,
        b: u16,
        (port, cport): (u16, u16),
        (s, end): (i64, i64),
        hour: i64,
        rng: &mut Rng,
    ) {
        let e = self.e;
        let (ceni, cip, ei) = &c.clients[ci];
        let (eeni, eaz, eip) = &c.enis[*ei];
        let acct = account_id(c.account);
        let custom = custom_format(c.account);
        let heavy = if c.produce_heavy { 1 } else { 0 };
        for (dir, (src, dst, sp, dp)) in [
            ("to_cluster", (*cip, *eip, cport, port)),
            ("from_cluster", (*eip, *cip, port, cport)),
        ] {
            let big = (dir == "to_cluster") == (heavy == 1);
            let bytes = if big {
                rng.range(200_000, 40_000_000)
            } else {
                rng.range(2_000, 400_000)
            };
            let packets = (bytes / 1200).max(1) + rng.below(10);
            split_hours(s, end, bytes, packets, |sh| {
                *self.truth.entry((sh.hour, c.arn.clone(), dir)).or_default() += sh.bytes;
                *self
                    .per_broker
                    .entry((sh.hour, c.cluster, b, dir))
                    .or_default() += sh.bytes;
            });
            self.sum.truth_bytes += bytes;
            let r = |iface: &str, account: &str| -> String {
                let rec = Rec {
                    account,
                    iface,
                    src,
                    dst,
                    sport: sp,
                    dport: dp,
                    proto: 6,
                    packets,
                    bytes,
                    start: s,
                    end,
                    action: "ACCEPT",
                    vpc: &c.vpc,
                    az: eaz,
                };
                fmt_rec(custom, &rec, &e.region)
            };
            let skip_here = self.near_skip(c, *ei, hour) && hour_floor(s) == e.skip_hour;
            if matches!(c.mode, Mode::Endpoint | Mode::Both) && !skip_here {
                self.push(c.account, end, r(eeni, "unknown"));
                self.sum.msk_records += 1;
            }
            if matches!(c.mode, Mode::Client | Mode::Both) {
                self.push(c.account, end, r(ceni, &acct));
                self.sum.msk_records += 1;
            }
        }
    }

    /// Noise from a client instance: other ports, other hosts, 2 % rejected.
    fn noise(&mut self, c: &Conn, ci: usize, hour: i64, rng: &mut Rng, noise: u32) {
        let e = self.e;
        let (ceni, cip, ei) = &c.clients[ci];
        let (_, eaz, _) = &c.enis[*ei];
        let acct = account_id(c.account);
        for _ in 0..noise * 2 {
            let (port, proto) = [
                (443u16, 6u8),
                (5432, 6),
                (6379, 6),
                (53, 17),
                (9092, 6),
                (22, 6),
                (8080, 6),
            ][rng.below(7) as usize];
            let other = Ipv4Addr::new(
                10,
                200 + rng.below(50) as u8,
                rng.below(250) as u8,
                1 + rng.below(250) as u8,
            );
            let bytes = rng.range(40, 2_000_000);
            let ns = hour + rng.below(3000) as i64;
            let ne = ns + rng.range(1, 599) as i64;
            let out = rng.chance(0.5);
            let (src, dst, sp, dp) = if out {
                (*cip, other, 30000 + rng.below(30000) as u16, port)
            } else {
                (other, *cip, port, 30000 + rng.below(30000) as u16)
            };
            let rec = Rec {
                account: &acct,
                iface: ceni,
                src,
                dst,
                sport: sp,
                dport: dp,
                proto,
                packets: bytes / 1000 + 1,
                bytes,
                start: ns,
                end: ne,
                action: if rng.chance(0.02) { "REJECT" } else { "ACCEPT" },
                vpc: &c.vpc,
                az: eaz,
            };
            let line = fmt_rec(custom_format(c.account), &rec, &e.region);
            self.push(c.account, ne, line);
            self.sum.noise_records += 1;
        }
    }

    /// Idle endpoint ENIs (an AZ with no client) log NODATA each hour.
    fn nodata(&mut self, c: &Conn, hour: i64) {
        let e = self.e;
        for (ei, (eeni, eaz, _)) in c.enis.iter().enumerate() {
            if !c.clients.iter().any(|cl| cl.2 == ei) && c.deleted.is_none_or(|d| hour + HOUR <= d)
            {
                let line = fmt_coverage(
                    custom_format(c.account),
                    "unknown",
                    eeni,
                    &c.vpc,
                    eaz,
                    hour,
                    hour + 599,
                    "NODATA",
                    &e.region,
                );
                self.push(c.account, hour + 599, line);
                self.sum.coverage_rows += 1;
            }
        }
    }

    /// A REJECT, a wrong port and an unregistered endpoint: all must stay unattributed.
    fn planted(&mut self, c: &Conn, hour: i64, rng: &mut Rng) {
        let e = self.e;
        let (ceni, cip, ei) = &c.clients[0];
        let (_, eaz, eip) = &c.enis[*ei];
        let acct = account_id(c.account);
        let s = hour + 1800 + rng.below(600) as i64;
        let end = s + 60;
        let planted =
            |dst: Ipv4Addr, sport: u16, dport: u16, packets: u64, bytes: u64, action: &str| {
                let r = Rec {
                    account: &acct,
                    iface: ceni,
                    src: *cip,
                    dst,
                    sport,
                    dport,
                    proto: 6,
                    packets,
                    bytes,
                    start: s,
                    end,
                    action,
                    vpc: &c.vpc,
                    az: eaz,
                };
                fmt_rec(custom_format(c.account), &r, &e.region)
            };
        // A security group blocks a client: REJECT (seen from the client side).
        self.push(
            c.account,
            end,
            planted(*eip, 45000, 14001, 3, 180, "REJECT"),
        );
        // Someone points a client at the IAM listener port through the endpoint.
        self.push(c.account, end, planted(*eip, 45001, 9098, 4, 240, "ACCEPT"));
        // An endpoint nobody registered in the inventory.
        let unknown = Ipv4Addr::new(10, 250, 1, 77);
        self.push(
            c.account,
            end,
            planted(unknown, 45002, 14002, 40, 52_000, "ACCEPT"),
        );
        self.sum.unattributed_records += 3;
    }
}
