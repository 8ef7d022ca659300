//! The Firehose API's request bodies and an HTTP endpoint delivery's: refused with the field at
//! fault, or decoded exactly, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::firehose_request(data));
