//! Writes a closed month's report files into the warehouse: `reports/month=YYYY-MM/`
//! `finance-{aws,chargeback}.csv`, `focus-{aws,chargeback}.csv` and `report.html`. Each is
//! replaced whole (an object PUT, a rename on disk), so a reader never sees half a file.

use bytes::Bytes;
use linkmeter_aggregate::close::MonthClose;
use linkmeter_aggregate::price_book::PriceBook;
use linkmeter_warehouse::Warehouse;

/// Where the files went.
#[derive(Debug, Clone)]
pub struct Written {
    /// The finance CSV of the `aws` view (path or URL).
    pub finance_aws: String,
    /// The finance CSV of the `chargeback` view.
    pub finance_chargeback: String,
    /// The HTML report.
    pub html: String,
}

/// Writes every report file of the month.
pub async fn write_month(
    wh: &Warehouse,
    close: &MonthClose,
    book: &PriceBook,
) -> Result<Written, linkmeter_warehouse::Error> {
    let month = close.month;
    let dir = format!("reports/month={}", month.label());
    // A single-region price book names its region in FOCUS; several leave it to the lines.
    let regions: std::collections::BTreeSet<&str> =
        book.rates.keys().map(|k| k.1.as_str()).collect();
    let region = match regions.len() {
        1 => regions.iter().next().copied().unwrap_or(""),
        _ => "",
    };
    for (view, v) in [("aws", &close.invoice), ("chargeback", &close.chargeback)] {
        let provisional = close.reconciliation.provisional();
        let csv = crate::finance_csv::finance_csv(
            v,
            &month.label(),
            &book.currency,
            &close.accounts,
            provisional,
        );
        wh.put_file(&format!("{dir}/finance-{view}.csv"), Bytes::from(csv))
            .await?;
        let focus = crate::focus_csv::focus_csv(
            v,
            &month.start(),
            &month.end(),
            &book.currency,
            book.bytes_per_gb,
            &close.accounts,
            region,
            provisional,
        );
        wh.put_file(&format!("{dir}/focus-{view}.csv"), Bytes::from(focus))
            .await?;
    }
    let page = crate::html::html(&crate::html::Report {
        month: &month.label(),
        currency: &book.currency,
        aws: &close.invoice,
        chargeback: &close.chargeback,
        accounts: &close.accounts,
        hourly: &close.hourly,
        quality: &close.quality,
        bytes_per_gb: book.bytes_per_gb,
        reconciliation: Some(&close.reconciliation),
    });
    wh.put_file(&format!("{dir}/report.html"), Bytes::from(page))
        .await?;
    Ok(Written {
        finance_aws: wh.join(&format!("{dir}/finance-aws.csv")),
        finance_chargeback: wh.join(&format!("{dir}/finance-chargeback.csv")),
        html: wh.join(&format!("{dir}/report.html")),
    })
}
