//! Rollups, the price book and invoices (DESIGN §6): arrives with issue #3. The crate exists
//! now so the workspace layout and the one-way data flow (ingest → aggregate → reports) are
//! fixed from the start; it deliberately has no code yet.
