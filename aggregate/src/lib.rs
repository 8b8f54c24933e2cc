//! Rollups, the price book and invoices (DESIGN §6): the month close runs the rollup SQL over
//! the warehouse ([`rollup`]), loads the month's usage ([`load`]), prices both views with exact
//! decimal money ([`price_book`], [`money`], [`invoice`]), writes `invoice_lines`
//! ([`lines_table`]) and measures data quality ([`quality`]); [`close`] does all of it in order.
//! [`estimate`] prices a planned estate from the price book alone; [`reconcile`] holds a
//! closed month against the AWS bill (`bill_lines`); [`adjust`] carries changes to closed
//! months into the first open month.

#[cfg(feature = "engine")]
pub mod adjust;
#[cfg(feature = "engine")]
pub mod bill_prices;
#[cfg(feature = "engine")]
pub mod close;
pub mod estimate;
pub mod invoice;
#[cfg(feature = "engine")]
pub mod lines_table;
#[cfg(feature = "engine")]
pub mod load;
pub mod money;
pub mod price_book;
#[cfg(feature = "engine")]
pub mod quality;
#[cfg(feature = "engine")]
pub mod reconcile;
#[cfg(feature = "engine")]
pub mod rollup;
