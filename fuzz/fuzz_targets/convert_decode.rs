//! The conversion's record decoders on any object text against a telemetry schema: the direct
//! decoder, where it accepts records, decodes exactly what arrow-json (the reference) decodes;
//! the whole object decodes with every record written or quarantined, none lost.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::convert_decode(data));
