//! AWS Signature Version 4: any Authorization header parses or is refused, and what sluice signs
//! verifies, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::sigv4(data));
