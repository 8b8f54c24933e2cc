//! Reports of a closed month (DESIGN §6): the finance CSV per view ([`finance_csv`]), the
//! FOCUS CSV ([`focus_csv`]), the HTML report ([`html`]) and the terminal summary
//! ([`summary`]); [`write`] puts the files in the warehouse under `reports/month=YYYY-MM/`;
//! [`reconcile`] writes the comparison with the AWS bill.

pub mod finance_csv;
pub mod focus_csv;
pub mod html;
pub mod reconcile;
pub mod summary;
pub mod write;
