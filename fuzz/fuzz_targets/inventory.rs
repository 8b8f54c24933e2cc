//! Any text as an inventory file: no panic; a parsed inventory's index is usable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linkmeter_ingest::inventory::Index;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ix) = Index::from_toml(text, "fuzz.toml") {
        // Every ENI belongs to a connection that exists.
        for e in 0..ix.enis.len() {
            let _ = ix.conn_of(e);
        }
    }
});
