//! Synthetic estate generator (filled in below).
