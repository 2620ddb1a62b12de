#![no_main]
// The harness is shared with the server's corpus-replay test.
#[path = "../harness/forward_auth.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = harness::forward_auth_headers(data);
});
