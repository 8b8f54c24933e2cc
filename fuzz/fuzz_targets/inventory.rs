//! Any text as an inventory file: no panic; a valid inventory's index finds each of its ENIs
//! by id and by address.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linkmeter_ingest::inventory::{Inventory, IpMatch};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(ix) = Inventory::from_toml(text, "fuzz.toml") else {
        return;
    };
    for (e, info) in ix.enis.iter().enumerate() {
        assert_eq!(ix.eni_by_id(&info.id), Some(e));
        let conn = ix.conn_of(e);
        for ip in &info.ips {
            assert!(ix.is_endpoint_ip(ip));
            // Validation refuses an address twice in one VPC, so the VPC lookup is exact.
            assert!(matches!(
                ix.eni_by_ip(ip, Some(&conn.vpc_id), None),
                IpMatch::One(x) if x == e
            ));
        }
    }
});
