//! Reports for finance: the chargeback CSV (DESIGN §6). FOCUS CSV, terminal summary with
//! data-quality lines and the HTML report follow (issues #3 and #7).

pub mod finance_csv;
pub mod focus_csv;
pub mod html;
