//! Any text as a price book: no panic; a parsed book converts bytes without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linkmeter_aggregate::price_book::PriceBook;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(book) = PriceBook::from_toml(text, "fuzz.toml") {
        let _ = book.gb(u128::from(u64::MAX));
    }
});
