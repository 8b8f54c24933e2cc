//! The AWS bill: CUR 2.0 and FOCUS exports (AWS Data Exports, Parquet) read into the
//! `bill_lines` table, so that `reconcile` can hold linkmeter's invoice against what AWS
//! charged.
//!
//! A bill is not a stream of events like flow logs: every delivery of a billing period restates
//! the whole period. So the lines of a period are replaced whole, in one commit, whenever the
//! set of export files for it changes ([`load`]); an unchanged set is not read again. Only the
//! lines of linkmeter's meters and lines that look related are kept ([`decode::relevance`]).

pub mod decode;
#[cfg(feature = "pipeline")]
pub mod load;

/// Decimal places kept of bill quantities, rates and costs (`bill_lines` columns are
/// `Decimal128(38, 12)`).
pub const SCALE: u32 = 12;
