//! libFuzzer wrapper of `sluice_fuzz::modern_envelope` (nightly; see fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sluice_fuzz::modern_envelope(data);
});
