//! The crawler's sniffing and sampling of an object's bytes, whatever they are: every
//! compression (gzip, zstd, snappy, zip, none) and format it recognises. An object is
//! analysed or fails with a reason; the crawl never panics on what landed.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::crawler_sample(data));
