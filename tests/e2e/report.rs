//! The monthly HTML report, rendered by a real browser: `invoice` writes `report.html` next
//! to the CSVs; headless Chromium loads it, its DOM holds every account with the invoice's
//! amounts, and it renders to a PNG without a console error.

use linkmeter_test_support::*;

fn chromium() -> String {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if std::process::Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c.to_string();
        }
    }
    panic!(
        "no headless Chromium found: `apt-get install chromium` (.ci/test installs it when it can)"
    );
}

/// (width, height) from a PNG's IHDR chunk.
fn png_size(b: &[u8]) -> (u32, u32) {
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&b[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn monthly_html_report_renders_in_headless_chromium() {
    let (tmp, e) = ingested_estate();
    ok(&e, &["invoice", "--month", "2026-10"]);
    let dir = e.join("warehouse/reports/month=2026-10");
    let page = dir.join("report.html");
    assert!(page.is_file());
    let browser = chromium();
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let url = format!("file://{}", page.display());
    // The DOM the browser built: every tenant of the chargeback CSV, with its total.
    let dom = std::process::Command::new(&browser)
        .args(flags)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    assert!(dom.status.success());
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    let csv = std::fs::read_to_string(dir.join("finance-chargeback.csv")).unwrap();
    let mut totals: std::collections::BTreeMap<String, rust_decimal::Decimal> = Default::default();
    for f in csv_rows(&csv).iter().skip(1).filter(|r| r[0] != "total") {
        *totals.entry(f[3].to_string()).or_default() +=
            f[11].parse::<rust_decimal::Decimal>().unwrap();
    }
    assert!(totals.len() >= 6, "{totals:?}");
    for (name, total) in &totals {
        let row = dom_text
            .split("<tr>")
            .find(|r| r.contains(&format!("<td>{name}</td>")))
            .unwrap_or_else(|| panic!("no row for {name}"));
        assert!(
            row.contains(&format!(">{:.2}</td></tr>", total))
                || row.contains(&format!(">{}</td></tr>", fmt_thousands(*total))),
            "{name}: {row}"
        );
    }
    assert!(dom_text.contains("aria-label=\"hourly GB per cluster\""));
    assert!(dom_text.contains("Flow logs against broker metrics"));
    // Rendered to a PNG of the window's size, with no console error.
    let png = tmp.path().join("report.png");
    let shot = std::process::Command::new(&browser)
        .args(flags)
        .arg("--window-size=1100,1800")
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&shot.stderr);
    assert!(shot.status.success(), "{log}");
    assert!(
        !log.contains("CONSOLE") && !log.contains("Uncaught"),
        "{log}"
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(png_size(&bytes), (1100, 1800));
    assert!(
        bytes.len() > 30_000,
        "a blank page compresses to far less: {}",
        bytes.len()
    );
}

fn fmt_thousands(d: rust_decimal::Decimal) -> String {
    let s = format!("{d:.2}");
    let (int, frac) = s.split_once('.').unwrap();
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out}.{frac}")
}
