//! JSONPath, reference paths, intrinsic functions and JSONata on arbitrary documents: the first
//! line is the expression, the rest the input document. Each evaluates or fails with an ASL
//! error (`States.Runtime`, `States.IntrinsicFailure`, `States.QueryEvaluationError`), never
//! panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::asl_paths(data));
