//! Rollups, the price book and invoices (DESIGN §6). So far: the price book and the exact
//! money arithmetic (tiers, allocation to lines, rounding to cents); the rollup SQL and the
//! invoice lines follow (see docs/state-of-play.md).

pub mod estimate;
pub mod invoice;
pub mod lines_table;
pub mod load;
pub mod money;
pub mod price_book;
pub mod quality;
pub mod rollup;
