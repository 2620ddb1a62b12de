#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_engine::fuzzing::client_cert_headers(data));
