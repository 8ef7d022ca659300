//! The dataset's JSON lines reader (a series per line: start, target, cat, dynamic_feat) on any
//! line: a series, or an error naming the line and field, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::dataset_series(data));
