//! linkmeter ingest: sources, decoders, attribution and the Parquet warehouse writer.
//!
//! A record's path: [`source`] → [`decode`] → [`attribute`] → [`warehouse`]; [`pipeline`]
//! drives it and keeps the conservation balance in a [`summary::Tally`].

pub mod attribute;
pub mod decode;
pub mod fields;
pub mod generate;
pub mod hours;
pub mod inventory;
pub mod inventory_import;
pub mod pipeline;
pub mod source;
pub mod summary;
pub mod warehouse;
