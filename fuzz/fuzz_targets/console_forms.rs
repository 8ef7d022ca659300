//! The console's forms and query strings: refused with the field at fault, or typed, and never
//! an address outside the console, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::console_forms(data));
