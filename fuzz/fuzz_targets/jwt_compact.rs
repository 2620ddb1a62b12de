#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_engine::fuzzing::jwt_compact(data));
