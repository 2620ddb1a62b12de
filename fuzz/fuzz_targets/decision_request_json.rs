#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_engine::fuzzing::decision_request_json(data));
