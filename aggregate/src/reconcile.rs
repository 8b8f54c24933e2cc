//! Reconciliation against the AWS bill: what linkmeter computed for a month (its rollups and
//! `aws` invoice view) held against the `bill_lines` of that billing period.
//!
//! Two levels, both keyed by (account, meter, resource — `vpce-…` or the cluster ARN):
//! - per day, the quantities (endpoint AZ-hours, GB, connectivity hours);
//! - per month, the cost (the invoice's exact amount against the billed unblended cost) and the
//!   rate (the price book's against the billed unblended rate).
//!
//! Each row gets a status — `matched` (equal to the bill's precision), `within_tolerance`,
//! `differs`, or `no_bill_yet` (no bill lines for the period) — and, when it is not matched,
//! the likeliest reason found in the warehouse: an endpoint missing from the inventory, a day
//! without flow logs for the endpoint, SKIPDATA, or a rate that differs from the price book.

use std::collections::{BTreeMap, BTreeSet};

use linkmeter_sql::Catalog;
use linkmeter_warehouse::Month;
use rust_decimal::Decimal;

use crate::invoice::{Invoice, Line};
use crate::load::text_rows;
use crate::rollup::RollupError;

/// Quantities equal to this many units are the same (the bill's doubles, rounded).
pub const EXACT: Decimal = Decimal::from_parts(1, 0, 0, false, 6);

/// A row's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Equal to the bill's precision.
    Matched,
    /// Within the tolerance (relative).
    WithinTolerance,
    /// Further apart than the tolerance.
    Differs,
    /// The bill has no lines for the period yet.
    NoBillYet,
}

impl Status {
    /// The name in CSVs and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Matched => "matched",
            Status::WithinTolerance => "within_tolerance",
            Status::Differs => "differs",
            Status::NoBillYet => "no_bill_yet",
        }
    }
}

/// One comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `YYYY-MM-DD` for a quantity row, `YYYY-MM` for the month's cost row.
    pub period: String,
    pub account: String,
    pub meter: String,
    pub resource: String,
    /// `quantity` (per day) or `cost` (per month).
    pub measure: &'static str,
    pub computed: Decimal,
    pub billed: Decimal,
    pub status: Status,
    /// Why it differs, when a reason was found.
    pub reason: String,
}

/// The whole reconciliation of a month.
#[derive(Debug, Clone, Default)]
pub struct Reconciliation {
    /// Every comparison, sorted.
    pub rows: Vec<Row>,
    /// Whether the bill has lines for the period.
    pub billed: bool,
    /// Invoice ids on the bill's lines (empty while the bill is provisional).
    pub invoice_ids: BTreeSet<String>,
    /// Bill lines of the period without a linkmeter meter, by usage type.
    pub unmetered: BTreeMap<String, u64>,
    /// The last day (`YYYY-MM-DD`) the bill has usage for.
    pub billed_until: Option<String>,
}

impl Reconciliation {
    /// The bill for the period is still provisional: no line carries an invoice id yet (AWS
    /// sets it on every line once the month is final).
    pub fn provisional(&self) -> bool {
        self.invoice_ids.is_empty()
    }

    /// The status of each (account, meter, resource): the worst of its rows (differs over
    /// within_tolerance over matched), or `no_bill_yet`.
    pub fn by_key(&self) -> BTreeMap<(String, String, String), Status> {
        let mut m: BTreeMap<(String, String, String), Status> = BTreeMap::new();
        for r in &self.rows {
            let e = m
                .entry((r.account.clone(), r.meter.clone(), r.resource.clone()))
                .or_insert(r.status);
            *e = (*e).max(r.status);
        }
        m
    }

    /// Rows per status.
    pub fn counts(&self) -> BTreeMap<Status, usize> {
        let mut m = BTreeMap::new();
        for r in &self.rows {
            *m.entry(r.status).or_default() += 1;
        }
        m
    }
}

/// The computed and billed sides of one key.
#[derive(Debug, Default, Clone)]
struct Sides {
    computed: Decimal,
    billed: Decimal,
    billed_cost: Decimal,
    rates: BTreeSet<Decimal>,
}

type Key = (String, String, String, String);

fn dec(s: &str) -> Decimal {
    s.parse().unwrap_or_default()
}

/// The tolerance the month close applies (1 %); `reconcile --tolerance` may choose another.
pub const DEFAULT_TOLERANCE: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

/// The invoiced cost of a month per (account, meter, resource): the `aws` view's exact amount
/// and unit price. Resource = the endpoint id for endpoint meters, the cluster ARN for MSK's.
pub type Amounts = BTreeMap<(String, String, String), (Decimal, Decimal)>;

/// The resource a line is billed on: its endpoint, or its cluster's ARN (`arn_of` maps
/// cluster names to ARNs; a name not in it is used as is).
pub fn resource_of(l: &Line, arn_of: &BTreeMap<String, String>) -> String {
    if l.endpoint_id.is_empty() {
        arn_of
            .get(&l.cluster)
            .cloned()
            .unwrap_or_else(|| l.cluster.clone())
    } else {
        l.endpoint_id.clone()
    }
}

/// The amounts of an `aws` view invoice, keyed as the bill is.
pub fn amounts_of(inv: &Invoice, arn_of: &BTreeMap<String, String>) -> Amounts {
    let mut m: BTreeMap<(String, String, String), (Decimal, Decimal)> = BTreeMap::new();
    for l in inv.lines.iter().filter(|l| l.adjusts.is_none()) {
        let e = m
            .entry((
                l.account.clone(),
                l.meter.as_str().to_string(),
                resource_of(l, arn_of),
            ))
            .or_default();
        e.0 += l.exact;
        e.1 = e.1.max(l.unit_price());
    }
    m
}

/// The amounts of a month as `invoice_lines` holds them (for `reconcile` after the close).
pub async fn invoiced_amounts(cat: &Catalog, month: Month) -> Result<Amounts, RollupError> {
    let mut m = Amounts::new();
    if !cat.tables.contains(&"invoice_lines") {
        return Ok(m);
    }
    // Cluster names map to ARNs here, as the close does: a join on names would repeat a line
    // for every cluster of that name.
    let (arn_of, _) = clusters(cat).await?;
    let sql = format!(
        "SELECT account_id, meter, endpoint_id, \"cluster\", \
         CAST(SUM(exact_amount) AS VARCHAR), CAST(MAX(unit_price) AS VARCHAR) \
         FROM invoice_lines WHERE month = '{}' AND invoice_view = 'aws' AND adjusts_month IS NULL \
         GROUP BY 1, 2, 3, 4",
        month.label()
    );
    for r in text_rows(cat, &sql).await? {
        let resource = if r[2].is_empty() {
            arn_of.get(&r[3]).cloned().unwrap_or_else(|| r[3].clone())
        } else {
            r[2].clone()
        };
        let e = m.entry((r[0].clone(), r[1].clone(), resource)).or_default();
        e.0 += dec(&r[4]);
        e.1 = e.1.max(dec(&r[5]));
    }
    Ok(m)
}

/// Cluster name → ARN, and cluster ARN → owner account, from the inventory tables.
pub async fn clusters(
    cat: &Catalog,
) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>), RollupError> {
    let (mut arn_of, mut owner_of) = (BTreeMap::new(), BTreeMap::new());
    if cat.tables.contains(&"clusters") {
        for r in text_rows(
            cat,
            "SELECT cluster_name, cluster_arn, owner_account_id FROM clusters",
        )
        .await?
        {
            arn_of.insert(r[0].clone(), r[1].clone());
            arn_of.insert(r[1].clone(), r[1].clone());
            owner_of.insert(r[1].clone(), r[2].clone());
        }
    }
    Ok((arn_of, owner_of))
}

/// Reconciles `month` against its bill. `bytes_per_gb` is the price book's; `tolerance` is
/// relative (0.01 = 1 %); `amounts` is the month's invoiced cost ([`amounts_of`] during the
/// close, [`invoiced_amounts`] after it).
pub async fn reconcile(
    cat: &Catalog,
    month: Month,
    bytes_per_gb: u64,
    tolerance: Decimal,
    amounts: &Amounts,
) -> Result<Reconciliation, RollupError> {
    let m = month.label();
    let has = |t: &str| cat.tables.contains(&t);
    let day = "to_char(usage_hour, '%Y-%m-%d')";
    let gb = Decimal::from(bytes_per_gb);
    let mut days: BTreeMap<Key, Sides> = BTreeMap::new();
    let mut add = |rows: Vec<Vec<String>>, meter: &str, scale: Decimal| {
        for r in rows {
            let key = (r[0].clone(), r[1].clone(), meter.to_string(), r[2].clone());
            days.entry(key).or_default().computed += dec(&r[3]) / scale;
        }
    };
    if has("endpoint_hours") {
        add(text_rows(cat, &format!("SELECT {day}, account_id, endpoint_id, CAST(COUNT(*) AS VARCHAR) FROM endpoint_hours WHERE month = '{m}' GROUP BY 1, 2, 3")).await?, "endpoint_az_hours", Decimal::ONE);
    }
    if has("usage_hourly") {
        add(text_rows(cat, &format!("SELECT {day}, account_id, endpoint_id, CAST(SUM(bytes) AS VARCHAR) FROM usage_hourly WHERE month = '{m}' GROUP BY 1, 2, 3")).await?, "endpoint_gb", gb);
        add(text_rows(cat, &format!("SELECT {day}, c.owner_account_id, u.cluster_arn, CAST(SUM(u.bytes) AS VARCHAR) FROM usage_hourly u JOIN clusters c ON c.cluster_arn = u.cluster_arn WHERE u.month = '{m}' GROUP BY 1, 2, 3")).await?, "msk_connectivity_gb", gb);
    }
    if has("connectivity_hours") {
        add(text_rows(cat, &format!("SELECT {day}, account_id, cluster_arn, CAST(COUNT(*) AS VARCHAR) FROM connectivity_hours WHERE month = '{m}' GROUP BY 1, 2, 3")).await?, "msk_connectivity_hours", Decimal::ONE);
    }
    let mut rec = Reconciliation::default();
    let mut month_rows: BTreeMap<Key, Sides> = BTreeMap::new();
    if has("bill_lines") {
        let sql = format!(
            "SELECT to_char(usage_start, '%Y-%m-%d'), usage_account_id, meter, resource, \
             CAST(SUM(usage_amount) AS VARCHAR), CAST(SUM(unblended_cost) AS VARCHAR), \
             CAST(MIN(unblended_rate) AS VARCHAR), CAST(MAX(unblended_rate) AS VARCHAR) \
             FROM bill_lines WHERE billing_period = '{m}' AND meter IS NOT NULL \
             AND COALESCE(line_item_type, 'Usage') = 'Usage' GROUP BY 1, 2, 3, 4"
        );
        for r in text_rows(cat, &sql).await? {
            rec.billed = true;
            let s = days
                .entry((r[0].clone(), r[1].clone(), r[2].clone(), r[3].clone()))
                .or_default();
            s.billed += dec(&r[4]);
            let ms = month_rows
                .entry((m.clone(), r[1].clone(), r[2].clone(), r[3].clone()))
                .or_default();
            ms.billed_cost += dec(&r[5]);
            for rate in [&r[6], &r[7]] {
                if !rate.is_empty() {
                    ms.rates.insert(dec(rate).normalize());
                }
            }
        }
        for r in text_rows(cat, &format!("SELECT DISTINCT invoice_id FROM bill_lines WHERE billing_period = '{m}' AND invoice_id IS NOT NULL")).await? {
            rec.invoice_ids.insert(r[0].clone());
        }
        for r in text_rows(cat, &format!("SELECT usage_type, CAST(COUNT(*) AS VARCHAR) FROM bill_lines WHERE billing_period = '{m}' AND meter IS NULL GROUP BY 1")).await? {
            rec.unmetered.insert(r[0].clone(), dec(&r[1]).try_into().unwrap_or(0));
        }
        // A period with bill lines is billed even when none of them is a metered usage line
        // (only credits, say): its metered figures are then 0 on the bill, not unknown.
        for r in text_rows(cat, &format!("SELECT CAST(COUNT(*) AS VARCHAR), MAX(to_char(usage_start, '%Y-%m-%d')) FROM bill_lines WHERE billing_period = '{m}'")).await? {
            rec.billed |= dec(&r[0]) > Decimal::ZERO;
            rec.billed_until = Some(r[1].clone()).filter(|d| !d.is_empty());
        }
    }
    // A provisional bill stops at the last day AWS has billed so far: later days, and the
    // month's cost, are not compared yet.
    let last_day = format!("{m}-{:02}", month.days());
    let cutoff = rec
        .billed_until
        .clone()
        .filter(|d| rec.invoice_ids.is_empty() && *d < last_day);
    // The month's computed cost and unit price per (account, meter, resource).
    let mut unit_price: BTreeMap<Key, Decimal> = BTreeMap::new();
    for ((account, meter, resource), (amount, price)) in amounts {
        let key = (m.clone(), account.clone(), meter.clone(), resource.clone());
        month_rows.entry(key.clone()).or_default().computed += *amount;
        unit_price.insert(key, price.normalize());
    }
    let evidence = Evidence::load(cat, &m).await?;
    // Per (account, meter, resource): the days whose quantities differ, and the first reason.
    let mut daily: BTreeMap<(String, String, String), (usize, String)> = BTreeMap::new();
    for ((period, account, meter, resource), s) in days {
        let mut status = status(rec.billed, s.computed, s.billed, tolerance);
        if cutoff.as_ref().is_some_and(|c| period > *c) {
            status = Status::NoBillYet;
        }
        let reason = match status {
            Status::Matched | Status::NoBillYet => String::new(),
            _ => evidence.explain_quantity(&period, &meter, &resource, s.computed, s.billed),
        };
        if status == Status::Differs {
            let d = daily
                .entry((account.clone(), meter.clone(), resource.clone()))
                .or_default();
            d.0 += 1;
            if d.1.is_empty() {
                d.1 = reason.clone();
            }
        }
        rec.rows.push(Row {
            period,
            account,
            meter,
            resource,
            measure: "quantity",
            computed: s.computed,
            billed: s.billed,
            status,
            reason,
        });
    }
    for (key, s) in month_rows {
        let mut status = status(rec.billed, s.computed, s.billed_cost, tolerance);
        let book = unit_price.get(&key).copied();
        let mut reason = String::new();
        if let Some(c) = &cutoff {
            status = Status::NoBillYet;
            reason = format!("the provisional bill reaches {c} so far");
        }
        if status != Status::Matched && status != Status::NoBillYet {
            reason = match book {
                Some(p) if !s.rates.is_empty() && !s.rates.contains(&p) => format!(
                    "rate differs: billed {} against the price book's {p}",
                    s.rates
                        .iter()
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => match daily.get(&(key.1.clone(), key.2.clone(), key.3.clone())) {
                    Some((n, why)) => format!("the quantities differ on {n} day(s): {why}"),
                    None => {
                        evidence.explain_quantity(&key.0, &key.2, &key.3, s.computed, s.billed_cost)
                    }
                },
            };
        }
        let (period, account, meter, resource) = key;
        rec.rows.push(Row {
            period,
            account,
            meter,
            resource,
            measure: "cost",
            computed: s.computed,
            billed: s.billed_cost,
            status,
            reason,
        });
    }
    Ok(rec)
}

/// The status of a computed figure against a billed one.
pub fn status(
    billed_exists: bool,
    computed: Decimal,
    billed: Decimal,
    tolerance: Decimal,
) -> Status {
    if !billed_exists {
        return Status::NoBillYet;
    }
    let diff = (computed - billed).abs();
    if diff <= EXACT {
        Status::Matched
    } else if diff <= tolerance * computed.abs().max(billed.abs()) {
        Status::WithinTolerance
    } else {
        Status::Differs
    }
}

/// What the warehouse knows that can explain a difference.
#[derive(Debug, Default)]
struct Evidence {
    /// Endpoint ids and cluster ARNs in the inventory.
    known: BTreeSet<String>,
    /// (day, endpoint or cluster) with any flow-log row at an endpoint ENI of it.
    seen: BTreeSet<(String, String)>,
    /// (day, endpoint) with SKIPDATA coverage rows on an ENI of it.
    skipped: BTreeSet<(String, String)>,
}

impl Evidence {
    async fn load(cat: &Catalog, m: &str) -> Result<Evidence, RollupError> {
        let has = |t: &str| cat.tables.contains(&t);
        let mut e = Evidence::default();
        if has("connections") {
            for r in text_rows(
                cat,
                "SELECT endpoint_id FROM connections UNION SELECT cluster_arn FROM clusters",
            )
            .await?
            {
                e.known.insert(r[0].clone());
            }
        }
        let start = format!("{m}-01");
        let end = Month::parse(m)
            .map(|x| x.next().label() + "-01")
            .unwrap_or_default();
        if has("flow_hours") && has("endpoint_enis") {
            let sql = format!(
                "SELECT DISTINCT to_char(f.usage_hour, '%Y-%m-%d'), c.endpoint_id, c.cluster_arn FROM flow_hours f \
                 JOIN endpoint_enis e ON e.endpoint_eni = f.endpoint_eni JOIN connections c ON c.connection_arn = e.connection_arn \
                 WHERE f.date >= '{start}' AND f.date < '{end}'"
            );
            for r in text_rows(cat, &sql).await? {
                e.seen.insert((r[0].clone(), r[1].clone()));
                e.seen.insert((r[0].clone(), r[2].clone()));
            }
        }
        if has("coverage") && has("endpoint_enis") {
            let sql = format!(
                "SELECT DISTINCT to_char(v.window_start, '%Y-%m-%d'), c.endpoint_id FROM coverage v \
                 JOIN endpoint_enis e ON e.endpoint_eni = v.interface_id JOIN connections c ON c.connection_arn = e.connection_arn \
                 WHERE v.log_status = 'SKIPDATA' AND v.date >= '{start}' AND v.date < '{end}'"
            );
            for r in text_rows(cat, &sql).await? {
                e.skipped.insert((r[0].clone(), r[1].clone()));
            }
        }
        Ok(e)
    }

    fn explain_quantity(
        &self,
        period: &str,
        meter: &str,
        resource: &str,
        computed: Decimal,
        billed: Decimal,
    ) -> String {
        if !self.known.contains(resource) {
            return format!("{resource} is billed but not in the inventory: add it (linkmeter inventory import) so its traffic is metered");
        }
        let day = period.len() == 10;
        if day && meter.ends_with("_gb") && billed > computed {
            if !self
                .seen
                .contains(&(period.to_string(), resource.to_string()))
            {
                return "billed bytes on a day without any flow-log record at this endpoint (missing flow-log coverage)".into();
            }
            if self
                .skipped
                .contains(&(period.to_string(), resource.to_string()))
            {
                return "flow logs skipped records this day (SKIPDATA): the meter is short".into();
            }
        }
        if computed.is_zero() && !billed.is_zero() {
            return "billed, but nothing computed: no metered usage for it in this period".into();
        }
        if billed.is_zero() && !computed.is_zero() {
            return "computed, but not on the bill (billed to another account, or not yet billed)"
                .into();
        }
        "unexplained: compare the hours with `linkmeter sql` over bill_lines and usage_hourly"
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn statuses_follow_the_bills_precision_and_the_tolerance() {
        let t = d("0.01");
        assert_eq!(status(false, d("1"), d("0"), t), Status::NoBillYet);
        assert_eq!(status(true, d("24"), d("24"), t), Status::Matched);
        assert_eq!(status(true, d("1.0000004"), d("1"), t), Status::Matched);
        assert_eq!(
            status(true, d("100"), d("100.5"), t),
            Status::WithinTolerance
        );
        assert_eq!(status(true, d("100"), d("102"), t), Status::Differs);
        assert_eq!(status(true, d("0"), d("0.5"), t), Status::Differs);
    }

    #[test]
    fn reasons_name_what_the_warehouse_shows() {
        let mut e = Evidence::default();
        e.known.insert("vpce-1".into());
        e.seen.insert(("2026-10-02".into(), "vpce-1".into()));
        e.skipped.insert(("2026-10-02".into(), "vpce-1".into()));
        assert!(e
            .explain_quantity("2026-10-02", "endpoint_gb", "vpce-9", d("0"), d("1"))
            .contains("not in the inventory"));
        assert!(e
            .explain_quantity("2026-10-03", "endpoint_gb", "vpce-1", d("1"), d("2"))
            .contains("missing flow-log coverage"));
        assert!(e
            .explain_quantity("2026-10-02", "endpoint_gb", "vpce-1", d("1"), d("2"))
            .contains("SKIPDATA"));
        assert!(e
            .explain_quantity("2026-10-02", "endpoint_gb", "vpce-1", d("1"), d("0"))
            .contains("not on the bill"));
    }
}
