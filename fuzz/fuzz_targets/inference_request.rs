//! The SageMaker DeepAR inference request parser on any body: a request, or an error naming the
//! field, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::inference_request(data));
