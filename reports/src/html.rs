//! The monthly HTML report next to the CSVs: one static file (inline SVG charts and CSS, no
//! script, no server) that a person reads at a glance: cost per account and meter, hourly GB
//! per cluster, and the data-quality picture (unattributed bytes, SKIPDATA, endpoint hours
//! without evidence, hours where flow logs and broker metrics disagree).
//!
//! Amounts in tables are the invoice's exact cents; charts only place them on the page.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use linkmeter_aggregate::invoice::Invoice;
use linkmeter_aggregate::price_book::Meter;
use linkmeter_aggregate::quality::Quality;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

/// Everything the report shows.
pub struct Report<'a> {
    /// `YYYY-MM`.
    pub month: &'a str,
    /// Currency of the amounts.
    pub currency: &'a str,
    /// What AWS bills each account.
    pub aws: &'a Invoice,
    /// Owner-billed meters re-allocated to client accounts.
    pub chargeback: &'a Invoice,
    /// Account id → (name, cost center).
    pub accounts: &'a BTreeMap<String, (String, String)>,
    /// (hour, cluster, billable bytes) of the month.
    pub hourly: &'a [(String, String, u128)],
    /// Data quality.
    pub quality: &'a Quality,
    /// Bytes per GB of the price book.
    pub bytes_per_gb: u64,
    /// The month against the AWS bill (`None`: not computed).
    pub reconciliation: Option<&'a linkmeter_aggregate::reconcile::Reconciliation>,
}

/// Escapes text for HTML content and attributes.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const METERS: [(Meter, &str); 4] = [
    (Meter::MskConnectivityHours, "#4e79a7"),
    (Meter::MskConnectivityGb, "#f28e2b"),
    (Meter::EndpointAzHours, "#59a14f"),
    (Meter::EndpointGb, "#e15759"),
];
const LINES: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1",
];

fn money(d: Decimal) -> String {
    let s = format!("{:.2}", d);
    let (int, frac) = s.split_once('.').unwrap_or((&s, "00"));
    let neg = int.starts_with('-');
    let digits = int.trim_start_matches('-');
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{}{out}.{frac}", if neg { "-" } else { "" })
}

/// Per account: amount per meter, and the total.
fn by_account(inv: &Invoice) -> Vec<(String, BTreeMap<Meter, Decimal>, Decimal)> {
    let mut m: BTreeMap<String, BTreeMap<Meter, Decimal>> = BTreeMap::new();
    for l in &inv.lines {
        *m.entry(l.account.clone())
            .or_default()
            .entry(l.meter)
            .or_default() += l.amount;
    }
    let mut v: Vec<_> = m
        .into_iter()
        .map(|(a, ms)| {
            let t: Decimal = ms.values().copied().sum();
            (a, ms, t)
        })
        .collect();
    v.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    v
}

/// Accounts drawn one per bar; the rest share an "others" bar.
const CHART_ACCOUNTS: usize = 12;

/// The chart's rows: the largest accounts, then one "others" row summing the rest.
fn chart_rows(inv: &Invoice) -> Vec<(String, BTreeMap<Meter, Decimal>, Decimal)> {
    let mut rows = by_account(inv);
    if rows.len() > CHART_ACCOUNTS + 1 {
        let rest = rows.split_off(CHART_ACCOUNTS);
        let mut meters: BTreeMap<Meter, Decimal> = BTreeMap::new();
        for (_, ms, _) in &rest {
            for (m, v) in ms {
                *meters.entry(*m).or_default() += *v;
            }
        }
        let total = rest.iter().map(|x| x.2).sum();
        rows.push((format!("others ({} accounts)", rest.len()), meters, total));
    }
    rows
}

/// The amount a full-width bar stands for. When one bar is over four times the next, the scale
/// is the next one's and the larger bar is drawn broken, so the others stay readable.
fn chart_scale(totals: &[Decimal]) -> (f64, bool) {
    let mut v: Vec<f64> = totals.iter().map(|t| t.to_f64().unwrap_or(0.0)).collect();
    v.sort_by(|a, b| b.total_cmp(a));
    match (v.first(), v.get(1)) {
        (Some(&a), Some(&b)) if b > 0.0 && a > 4.0 * b => (b, true),
        (Some(&a), _) => (a.max(0.01), false),
        _ => (0.01, false),
    }
}

fn cost_chart(r: &Report, out: &mut String) {
    let rows = chart_rows(r.chargeback);
    let totals: Vec<Decimal> = rows.iter().map(|x| x.2).collect();
    let (max, broken) = chart_scale(&totals);
    let (label_w, bar_w, row_h) = (220.0, 560.0, 22.0);
    let h = rows.len() as f64 * row_h + 40.0;
    let _ = write!(
        out,
        "<svg role=\"img\" aria-label=\"cost per account and meter\" width=\"{}\" height=\"{h}\" viewBox=\"0 0 {} {h}\">",
        label_w + bar_w + 120.0,
        label_w + bar_w + 120.0
    );
    for (i, (acct, meters, total)) in rows.iter().enumerate() {
        let y = 10.0 + i as f64 * row_h;
        let name = r.accounts.get(acct).map(|a| a.0.as_str()).unwrap_or("");
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"lbl\">{} {}</text>",
            label_w - 6.0,
            y + 14.0,
            esc(name),
            esc(acct)
        );
        let t = total.to_f64().unwrap_or(0.0);
        // A bar over the scale is squeezed to full width, its meters kept in proportion.
        let squeeze = if t > max { max / t } else { 1.0 };
        let mut x = label_w;
        for (m, color) in METERS {
            let v = meters.get(&m).copied().unwrap_or_default();
            let w = v.to_f64().unwrap_or(0.0) / max * bar_w * squeeze;
            if w > 0.0 {
                let _ = write!(
                    out,
                    "<rect x=\"{x:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{color}\"><title>{} {}: {} {}</title></rect>",
                    row_h - 6.0,
                    esc(acct),
                    m,
                    money(v),
                    esc(r.currency)
                );
            }
            x += w;
        }
        if broken && t > max {
            // The axis break: two white slashes across the bar.
            for dx in [-40.0, -34.0] {
                let _ = write!(
                    out,
                    "<path d=\"M{:.1} {} l6 -{}\" stroke=\"#fff\" stroke-width=\"3\"/>",
                    x + dx,
                    y + row_h - 6.0,
                    row_h - 6.0
                );
            }
        }
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" class=\"val\">{} {}</text>",
            x + 6.0,
            y + 14.0,
            money(*total),
            esc(r.currency)
        );
    }
    let ly = h - 14.0;
    let mut lx = label_w;
    for (m, color) in METERS {
        let _ = write!(
            out,
            "<rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{color}\"/><text x=\"{}\" y=\"{ly}\" class=\"lbl\">{m}</text>",
            ly - 10.0,
            lx + 16.0
        );
        lx += 150.0;
    }
    out.push_str("</svg>");
}

fn hourly_chart(r: &Report, out: &mut String) {
    let mut hours: Vec<&str> = r.hourly.iter().map(|x| x.0.as_str()).collect();
    hours.sort_unstable();
    hours.dedup();
    let mut clusters: BTreeMap<&str, BTreeMap<&str, u128>> = BTreeMap::new();
    for (h, c, b) in r.hourly {
        *clusters
            .entry(c.as_str())
            .or_default()
            .entry(h.as_str())
            .or_default() += b;
    }
    let gb = |b: u128| b as f64 / r.bytes_per_gb as f64;
    let max = r
        .hourly
        .iter()
        .map(|x| gb(x.2))
        .fold(0.0f64, f64::max)
        .max(0.001);
    let (w, h, left, bottom) = (900.0, 260.0, 60.0, 30.0);
    let n = hours.len().max(2) as f64 - 1.0;
    let _ = write!(
        out,
        "<svg role=\"img\" aria-label=\"hourly GB per cluster\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\">",
        h + bottom + 30.0,
        h + bottom + 30.0
    );
    let _ = write!(
        out,
        "<line x1=\"{left}\" y1=\"{h}\" x2=\"{w}\" y2=\"{h}\" class=\"axis\"/><line x1=\"{left}\" y1=\"0\" x2=\"{left}\" y2=\"{h}\" class=\"axis\"/><text x=\"{}\" y=\"12\" text-anchor=\"end\" class=\"lbl\">{:.1}</text><text x=\"{}\" y=\"{h}\" text-anchor=\"end\" class=\"lbl\">0 GB</text>",
        left - 4.0,
        max,
        left - 4.0
    );
    if let (Some(first), Some(last)) = (hours.first(), hours.last()) {
        let _ = write!(
            out,
            "<text x=\"{left}\" y=\"{}\" class=\"lbl\">{}</text><text x=\"{w}\" y=\"{}\" text-anchor=\"end\" class=\"lbl\">{}</text>",
            h + 16.0,
            esc(first),
            h + 16.0,
            esc(last)
        );
    }
    for (ci, (cluster, series)) in clusters.iter().enumerate() {
        let color = LINES[ci % LINES.len()];
        let pts: Vec<String> = hours
            .iter()
            .enumerate()
            .map(|(i, hr)| {
                let v = gb(series.get(hr).copied().unwrap_or(0));
                format!(
                    "{:.1},{:.1}",
                    left + i as f64 / n * (w - left),
                    h - v / max * (h - 10.0)
                )
            })
            .collect();
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"><title>{}</title></polyline><rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\" class=\"lbl\">{}</text>",
            pts.join(" "),
            esc(cluster),
            left + ci as f64 * 180.0,
            h + bottom + 6.0,
            left + ci as f64 * 180.0 + 16.0,
            h + bottom + 16.0,
            esc(cluster)
        );
    }
    out.push_str("</svg>");
}

/// The report as one HTML document.
/// The chargeback view per account and meter, with totals.
fn account_table(r: &Report, cur: &str, o: &mut String) {
    o.push_str("<table><tr><th>account</th><th>name</th><th>cost center</th>");
    for (m, _) in METERS {
        let _ = write!(o, "<th class=\"n\">{m}</th>");
    }
    let _ = write!(o, "<th class=\"n\">total {cur}</th></tr>");
    for (acct, meters, total) in by_account(r.chargeback) {
        let (name, cc) = r.accounts.get(&acct).cloned().unwrap_or_default();
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td>",
            esc(&acct),
            esc(&name),
            esc(&cc)
        );
        for (m, _) in METERS {
            let _ = write!(
                o,
                "<td class=\"n\">{}</td>",
                money(meters.get(&m).copied().unwrap_or_default())
            );
        }
        let _ = write!(o, "<td class=\"n\">{}</td></tr>", money(total));
    }
    let _ = write!(
        o,
        "<tr><th colspan=\"7\">total</th><th class=\"n\">{}</th></tr></table>",
        money(r.chargeback.total)
    );
}

/// Unattributed bytes, coverage gaps and the reconciliation against broker metrics.
fn quality(q: &Quality, o: &mut String) {
    o.push_str("<h2>Unattributed bytes and coverage gaps</h2><table><tr><th>what</th><th class=\"n\">count</th><th class=\"n\">bytes</th></tr>");
    if q.unattributed.is_empty() {
        o.push_str("<tr><td class=\"ok\">no unattributed bytes</td><td></td><td></td></tr>");
    }
    for (reason, n, bytes) in &q.unattributed {
        let _ = write!(
            o,
            "<tr><td>unattributed: {}</td><td class=\"n\">{n}</td><td class=\"n\">{bytes}</td></tr>",
            esc(reason)
        );
    }
    let _ = write!(
        o,
        "<tr><td class=\"{}\">SKIPDATA windows (AWS skipped records; the meter is incomplete there)</td><td class=\"n\">{}</td><td></td></tr>\
         <tr><td class=\"{}\">provisioned endpoint-ENI hours without any flow-log record</td><td class=\"n\">{} of {}</td><td></td></tr></table>",
        if q.skipdata_windows > 0 { "warn" } else { "ok" },
        q.skipdata_windows,
        if q.uncovered_endpoint_hours > 0 { "warn" } else { "ok" },
        q.uncovered_endpoint_hours,
        q.endpoint_hours
    );
    o.push_str("<h2>Flow logs against broker metrics</h2>");
    if q.reconciliation.is_empty() {
        o.push_str("<p>No broker metrics for this month.</p>");
    } else {
        o.push_str("<table><tr><th>cluster</th><th>direction</th><th class=\"n\">typical flow/broker ratio</th><th class=\"n\">hours compared</th><th class=\"n\">hours off</th><th>first hours off</th></tr>");
        for rc in &q.reconciliation {
            let first: Vec<String> = rc.flagged.iter().take(3).map(|f| esc(&f.0)).collect();
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{:.3}</td><td class=\"n\">{}</td><td class=\"n {}\">{}</td><td>{}</td></tr>",
                esc(&rc.cluster),
                esc(&rc.direction),
                rc.median_ratio,
                rc.hours,
                if rc.flagged.is_empty() { "ok" } else { "warn" },
                rc.flagged.len(),
                first.join(", ")
            );
        }
        o.push_str("</table>");
    }
}

/// The month against the AWS bill: its state, counts per status, and what differs with why.
fn bill_section(rec: Option<&linkmeter_aggregate::reconcile::Reconciliation>, o: &mut String) {
    use linkmeter_aggregate::reconcile::Status;
    o.push_str("<h2>Against the AWS bill</h2>");
    let Some(rec) = rec.filter(|r| r.billed) else {
        o.push_str("<p class=\"warn\">No AWS bill for this month yet: every line is provisional (no_bill_yet).</p>");
        return;
    };
    let state = if rec.provisional() {
        "<span class=\"warn\">provisional</span> (no invoice id yet)".to_string()
    } else {
        format!(
            "<span class=\"ok\">final</span> (invoice {})",
            esc(&rec
                .invoice_ids
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "))
        )
    };
    let counts: Vec<String> = rec
        .counts()
        .iter()
        .map(|(k, v)| format!("{v} {}", k.as_str()))
        .collect();
    let _ = write!(
        o,
        "<p>The bill is {state}; {} comparisons: {}.</p>",
        rec.rows.len(),
        counts.join(", ")
    );
    let differs: Vec<_> = rec
        .rows
        .iter()
        .filter(|x| x.status == Status::Differs && x.measure == "cost")
        .collect();
    if differs.is_empty() {
        o.push_str("<p class=\"ok\">Every account, meter and resource matches the bill.</p>");
        return;
    }
    o.push_str("<table><tr><th>account</th><th>meter</th><th>resource</th><th class=\"n\">computed</th><th class=\"n\">billed</th><th>why</th></tr>");
    for x in differs {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n warn\">{}</td><td>{}</td></tr>",
            esc(&x.account),
            esc(&x.meter),
            esc(&x.resource),
            x.computed.round_dp(4).normalize(),
            x.billed.round_dp(4).normalize(),
            esc(&x.reason)
        );
    }
    o.push_str("</table>");
}

pub fn html(r: &Report) -> String {
    let mut o = String::new();
    let cur = esc(r.currency);
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>linkmeter {m}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}}\
         h1{{font-size:22px}}h2{{font-size:17px;margin-top:28px}}\
         table{{border-collapse:collapse;font-size:13px}}td,th{{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}}\
         td.n,th.n{{text-align:right;font-variant-numeric:tabular-nums}}\
         .lbl{{font-size:11px;fill:#333}}.val{{font-size:11px;fill:#555}}.axis{{stroke:#999}}\
         .ok{{color:#2a7a2a}}.warn{{color:#b35900}}.kpi{{display:inline-block;margin-right:28px}}.kpi b{{font-size:20px;display:block}}\
         </style></head><body><h1>MSK private connectivity — {m}</h1>",
        m = esc(r.month)
    );
    let _ = write!(
        o,
        "<div class=\"kpi\"><b>{} {cur}</b>billed by AWS (aws view)</div><div class=\"kpi\"><b>{} {cur}</b>charged back to tenants</div><div class=\"kpi\"><b>{}</b>accounts</div>",
        money(r.aws.total),
        money(r.chargeback.total),
        by_account(r.chargeback).len()
    );
    o.push_str("<h2>Cost per account and meter (chargeback view)</h2>");
    cost_chart(r, &mut o);
    account_table(r, &cur, &mut o);

    o.push_str("<h2>Hourly GB per cluster (billable, both directions)</h2>");
    if r.hourly.is_empty() {
        o.push_str("<p>No billable traffic this month.</p>");
    } else {
        hourly_chart(r, &mut o);
    }

    quality(r.quality, &mut o);
    bill_section(r.reconciliation, &mut o);
    let _ = write!(
        o,
        "<p style=\"font-size:12px;color:#777\">linkmeter {} · amounts in {cur}, rounded to cents per line; lines sum to the totals · GB = {} bytes</p></body></html>",
        env!("CARGO_PKG_VERSION"),
        r.bytes_per_gb
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_money_has_separators() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(money(Decimal::new(123456789, 2)), "1,234,567.89");
        assert_eq!(money(Decimal::new(-5, 2)), "-0.05");
    }

    #[test]
    fn one_dominant_account_and_many_small_ones_stay_readable() {
        let line = |acct: String, amount: i64| linkmeter_aggregate::invoice::Line {
            account: acct,
            meter: Meter::EndpointGb,
            cluster: "c1".into(),
            auth: "TLS".into(),
            endpoint_id: "vpce-1".into(),
            quantity: Decimal::ONE,
            exact: Decimal::new(amount, 2),
            scaled: Decimal::new(amount, 2),
            amount: Decimal::new(amount, 2),
            allocation_basis: "owner",
            reconciled: None,
            adjusts: None,
        };
        // One account at 1,000,000.00 and 19 at 1.00 to 19.00.
        let mut lines = vec![line("big".into(), 100_000_000)];
        lines.extend((1..20).map(|i| line(format!("a{i:02}"), i * 100)));
        let total: Decimal = lines.iter().map(|l| l.amount).sum();
        let inv = Invoice {
            lines,
            scaled_total: Decimal::ZERO,
            exact_total: total,
            total,
        };
        let rows = chart_rows(&inv);
        assert_eq!(rows.len(), CHART_ACCOUNTS + 1);
        assert_eq!(rows[0].0, "big");
        assert_eq!(rows[CHART_ACCOUNTS].0, "others (8 accounts)");
        // The others are a01..a08: 1 + 2 + … + 8 = 36.00.
        assert_eq!(rows[CHART_ACCOUNTS].2, Decimal::new(3600, 2));
        assert_eq!(rows.iter().map(|r| r.2).sum::<Decimal>(), total);
        let (scale, broken) = chart_scale(&rows.iter().map(|r| r.2).collect::<Vec<_>>());
        assert!(broken);
        assert_eq!(scale, 36.0, "the scale is the second bar's");
        let (scale, broken) = chart_scale(&[Decimal::new(300, 0), Decimal::new(100, 0)]);
        assert!(!broken);
        assert_eq!(scale, 300.0);
    }

    #[test]
    fn an_empty_month_still_renders() {
        let empty = Invoice {
            lines: Vec::new(),
            scaled_total: Decimal::ZERO,
            exact_total: Decimal::ZERO,
            total: Decimal::ZERO,
        };
        let q = Quality::default();
        let accounts = BTreeMap::new();
        let page = html(&Report {
            month: "2026-10",
            currency: "USD",
            aws: &empty,
            chargeback: &empty,
            accounts: &accounts,
            hourly: &[],
            quality: &q,
            bytes_per_gb: 1 << 30,
            reconciliation: None,
        });
        assert!(page.starts_with("<!doctype html>") && page.ends_with("</html>"));
        assert!(page.contains("No billable traffic this month."));
        assert!(page.contains("No broker metrics for this month."));
        assert!(page.contains("No AWS bill for this month yet"));
    }
}
