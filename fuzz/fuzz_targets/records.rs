#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| duet::check::records(data));
