//! Finance CSV, FOCUS CSV, terminal summary and HTML report: arrive with issues #3 and #7.
//! The crate exists now so the workspace layout is fixed; it deliberately has no code yet.
