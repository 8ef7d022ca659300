//! The ASL definition parser and validator on any JSON document: it accepts or refuses with a
//! JSON pointer, never panics; what it accepts it accepts again from its own JSON.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::asl_definition(data));
