//! linkmeter ingest: sources, decoders, attribution, and the pipeline that writes their rows
//! into the warehouse.
//!
//! A record's path: [`source`] → [`decode`] → [`attribute`] (with the [`inventory`]) →
//! [`rows`] → the warehouse (`linkmeter_warehouse`); [`pipeline`] drives it and keeps the
//! conservation balance in a [`summary::Tally`]; [`run`] is a whole run over every source.

pub mod attribute;
pub mod bill;
pub mod decode;
pub mod fields;
pub mod hours;
pub mod inventory;
pub mod inventory_import;
#[cfg(feature = "pipeline")]
pub mod inventory_tables;
pub mod limits;
#[cfg(feature = "pipeline")]
pub mod pipeline;
#[cfg(feature = "pipeline")]
pub mod reattribute;
#[cfg(feature = "pipeline")]
pub mod rows;
#[cfg(feature = "pipeline")]
pub mod run;
#[cfg(feature = "pipeline")]
pub mod source;
#[cfg(feature = "pipeline")]
pub mod summary;
