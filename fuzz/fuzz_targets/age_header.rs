#![no_main]
// The invariants live in src/lib.rs, shared with the seed replay test.
libfuzzer_sys::fuzz_target!(|data: &[u8]| meldkluis_fuzz::age_header(data));
